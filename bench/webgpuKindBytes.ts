/**
 * Device bytes per weight of a quantized checkpoint's linear layers on WebGPU: every block's seven
 * projections uploaded as `eval --backend webgpu` uploads them, then WebGpuBackend.deviceBytes summed
 * (stored parts, decoded in the shader; QuIP's codes, grid values and D, its weight rebuilt on the device
 * per multiply and not counted, as it is freed after; or float32 for a layer kept on the host path). Prints; asserts
 * nothing. Without an adapter it prints why and exits 0.
 *   node dist/bench/webgpuKindBytes.js DIR [DIR ...]
 */
import { jsKernels } from '../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../src/backend/webgpu/webgpuBackend.js';
import { openModel } from '../src/io/open.js';
import { NAMES, type LayerPart } from '../src/io/source.js';

const PROJECTIONS: LayerPart[] = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
if (!made.ok) {
  console.log(`webgpuKindBytes: no WebGPU adapter (${made.reason})`);
} else {
  const be = made.backend;
  console.log('| checkpoint | kind | weights | device bytes | bytes/weight | stored bytes/weight |\n| --- | --- | --- | --- | --- | --- |');
  for (const dir of process.argv.slice(2)) {
    const ckpt = openModel(dir);
    let weights = 0, bytes = 0, stored = 0;
    const kinds = new Set<string>();
    for (let i = 0; i < ckpt.config.numLayers; i++) {
      for (const part of PROJECTIONS) {
        const q = ckpt.weights.readQuantized?.(NAMES.layer(i, part));
        if (!q) continue;
        kinds.add(q.kind);
        const w = be.uploadQuantized(q);
        weights += q.rows * q.cols;
        bytes += be.deviceBytes(w);
        if ('parts' in q && q.parts) stored += Object.values(q.parts).reduce((a, t) => a + t.data.byteLength, 0);
        be.free(w);
      }
    }
    console.log(`| ${dir} | ${[...kinds].join(', ')} | ${weights} | ${bytes} | ${(bytes / Math.max(weights, 1)).toFixed(3)} | ${(stored / Math.max(weights, 1)).toFixed(3)} |`);
  }
}
