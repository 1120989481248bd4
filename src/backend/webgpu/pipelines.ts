/// <reference types="@webgpu/types" />
/**
 * Compiled compute pipelines, one per op variant. A kernel family's TypeScript file names the
 * variant (its key, e.g. `linear_gptq`, `attention_hd64`) and gives the WGSL text for it; the text
 * is compiled once per key and reused for the process. Entry point: `main`; bind group 0 with an
 * automatic layout (uniforms at binding 0, storage buffers from binding 1). A kernel's text may say
 * `enable <extension>;` wherever it composes it: such lines are moved to the top, where WGSL wants them.
 */
export class PipelineCache {
  private readonly cache = new Map<string, GPUComputePipeline>();
  constructor(private readonly device: GPUDevice) {}

  get(key: string, code: () => string): GPUComputePipeline {
    let p = this.cache.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ label: key, code: directivesFirst(code()) });
      p = this.device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint: 'main' } });
      this.cache.set(key, p);
    }
    return p;
  }

  get size(): number { return this.cache.size; }
}

/** WGSL text with its `enable …;` lines moved to the front (each once), the rest unchanged. */
export function directivesFirst(code: string): string {
  const lines = code.split('\n'), isEnable = (l: string) => /^\s*enable\s+[\w\s,]+;\s*$/.test(l);
  const enables = [...new Set(lines.filter(isEnable).map((l) => l.trim()))];
  return enables.length ? [...enables, ...lines.filter((l) => !isEnable(l))].join('\n') : code;
}
