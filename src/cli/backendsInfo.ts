/**
 * `lowbit info --backends`: what this machine offers to compute on, as the other commands would find it: the CPU
 * kernels `--cpu-kernels auto` picks (and why), the WebGPU adapter (or why there is none) with what the kernels
 * read from it (software or hardware, the limits they plan with, subgroups, the fma probe's verdict, the GEMM design
 * and how it was chosen), and which of the two `--backend auto` takes.
 */
import { selectKernels } from '../backend/cpu/kernels/select.js';
import { acquireGpu, autoPicksWebGpu, findAdapter, type GpuCapabilities } from '../backend/webgpu/capabilities.js';

/** The features lowbit looks at: subgroups (the shuffle GEMM), timestamp-query (device time), shader-f16 (present or not: not needed). */
const FEATURES = ['subgroups', 'timestamp-query', 'shader-f16'] as const;

/** The limits the kernels plan with, by name. */
const LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup'] as const;

export interface BackendsReport {
  readonly cpu: { readonly kernels: string; readonly note: string };
  readonly webgpu:
    | { readonly ok: false; readonly reason: string }
    | {
      readonly ok: true; readonly adapter: string; readonly runtime: string; readonly software: boolean; readonly features: readonly string[];
      readonly limits: Readonly<Record<string, number>>; readonly subgroups: GpuCapabilities['subgroups'] | null; readonly fma: string;
      readonly gemm: string; readonly gemmChosen: string;
    };
  /** what `--backend auto` runs on, and why when it is the CPU */
  readonly auto: { readonly backend: 'webgpu' | 'cpu'; readonly reason?: string };
}

export async function backendsReport(threads: number): Promise<BackendsReport> {
  const { kernels, note } = selectKernels('auto', threads);
  const cpu = { kernels: kernels.name, note };
  const found = await findAdapter();
  if (!found.ok) return { cpu, webgpu: { ok: false, reason: found.reason }, auto: { backend: 'cpu', reason: found.reason } };
  const pick = autoPicksWebGpu(found);
  const g = await acquireGpu();
  if (!g.ok) return { cpu, webgpu: { ok: false, reason: g.reason }, auto: { backend: 'cpu', reason: g.reason } };
  const c = g.caps;
  return {
    cpu,
    webgpu: {
      ok: true, adapter: c.adapterName, runtime: c.runtime, software: c.software, features: FEATURES.filter((f) => c.features.includes(f)),
      limits: Object.fromEntries(LIMITS.filter((k) => c.limits[k] !== undefined).map((k) => [k, c.limits[k]!])),
      subgroups: c.subgroups ?? null, fma: c.fmaProbe, gemm: c.gemm,
      gemmChosen: c.gemmChosen,
    },
    auto: pick.ok ? { backend: 'webgpu' } : { backend: 'cpu', reason: pick.reason },
  };
}

const bytes = (n: number) => (n >= 2 ** 30 ? `${+(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${+(n / 2 ** 20).toFixed(1)} MiB` : `${+(n / 1024).toFixed(1)} KiB`);

/** The report as the lines `lowbit info --backends` prints. */
export function backendsLines(r: BackendsReport): string[] {
  const lines = [`cpu          ${r.cpu.note}`];
  const w = r.webgpu;
  if (!w.ok) {
    lines.push(`webgpu       none: ${w.reason}`);
  } else {
    lines.push(
      `webgpu       ${w.adapter} (${w.runtime}), ${w.software ? 'a software adapter (isFallbackAdapter)' : 'a hardware adapter'}`,
      `  limits     ${Object.entries(w.limits).map(([k, v]) => `${k} ${k === 'maxComputeInvocationsPerWorkgroup' ? v : bytes(v)}`).join(', ')}`,
      `  features   ${w.features.join(', ') || 'none'} (of ${FEATURES.join(', ')})`,
      `  subgroups  ${w.subgroups ? `${w.subgroups.minSize}..${w.subgroups.maxSize} lanes (shuffle GEMM groups of ${w.subgroups.shuffleLanes})` : 'none'}`,
      `  fma        ${w.fma}`,
      `  GEMM       ${w.gemm}: ${w.gemmChosen}`,
    );
  }
  lines.push(`auto         ${r.auto.backend === 'webgpu' ? 'webgpu' : `cpu${r.auto.reason ? `: ${r.auto.reason}` : ''}`}`);
  return lines;
}
