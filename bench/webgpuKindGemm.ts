/**
 * WebGPU `linear` throughput (2·M·N·K flops per y = x·Wᵀ) with the stored kinds decoded in the shader
 * (kernels/kindDecoders.wgsl.ts), and QuIP W2 with its weight rebuilt on the device for every call
 * (kernels/quipRebuild.ts: the rebuild is most of its time; the cache of rebuilt weights is off here), next to a float32 weight, on whatever
 * adapter exists. Layers are quantized from deterministic weights by the real quantizers (PB-LLM,
 * BiLLM and QuIP with an identity Hessian). Each figure is the best of three timed runs after a warm-up, a run being `reps` linears
 * then one read. Prints; asserts nothing. Without an adapter it prints why and exits 0.
 *   node dist/bench/webgpuKindGemm.js [--tokens M] [--sizes 256,1024]
 */
import { jsKernels } from '../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../src/backend/webgpu/webgpuBackend.js';
import type { BTensor } from '../src/backend/backend.js';
import { Tensor } from '../src/tensor/tensor.js';
import { PACKED_KINDS } from '../src/tensor/kinds.js';
import { packNf4 } from '../src/tensor/nf4Pack.js';
import { packPbllm } from '../src/tensor/pbllmPack.js';
import { billmTensors } from '../src/tensor/billmPack.js';
import { dbllmTensors } from '../src/tensor/dbllmPack.js';
import { nf4 } from '../src/quant/methods/nf4.js';
import { pbllm } from '../src/quant/methods/pbllm.js';
import { billm } from '../src/quant/methods/billm.js';
import { fdbInit } from '../src/quant/methods/dbllm.js';
import { quip } from '../src/quant/methods/quip.js';
import { quipTensors } from '../src/tensor/quipPack.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const M = Number(arg('--tokens', '128'));
const sizes = arg('--sizes', '256,1024').split(',').map(Number);

/** Deterministic values in [−0.05, 0.05). */
function values(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => ((((i + seed) * 7919) % 1000) / 1000 - 0.5) / 10);
}
function identity(n: number): Float64Array { const h = new Float64Array(n * n); for (let i = 0; i < n; i++) h[i * n + i] = 1; return h; }

const made = await createWebGpuBackend(jsKernels, 'js, 1 thread', { quipCacheBytes: 0 });
if (!made.ok) {
  console.log(`webgpu kind GEMM: no adapter (${made.reason}); nothing measured`);
} else {
  const be = made.backend;
  console.log(`webgpu linear GFLOP/s with in-shader kind decoders, M = ${M} tokens, on ${be.caps.adapterName} (${be.caps.runtime})`);
  console.log('| N = K | f32 | nf4 | nf4dq | pbllm 1.7b | billm | dbllm | quip W2 |\n| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const n of sizes) {
    const w = values(n * n, 2), H = identity(n);
    const open = (kind: string, parts: Record<string, Tensor>, bits: number) => () => be.uploadQuantized(PACKED_KINDS[kind]!.open(parts, bits));
    const r4 = nf4(w, false), r4dq = nf4(w, true);
    const pb = pbllm(w, n, n, H, { lowFrac: 0.9, groupSize: 128 });
    const weights: (() => BTensor)[] = [
      () => be.uploadWeight(new Tensor('f32', [n, n], w)),
      open('nf4', packNf4({ rows: n, cols: n, codes: r4.codes, absmax: r4.absmax }), 4),
      open('nf4dq', packNf4({ rows: n, cols: n, codes: r4dq.codes, absmax: r4dq.absmax }), 4),
      open('pbllm', packPbllm({ rows: n, cols: n, ...pb, paramDtype: 'f32' }), 1),
      open('billm', billmTensors(billm(w, n, n, H, { blockSize: 128 }).parts), 1),
      open('dbllm', dbllmTensors(fdbInit(w, n, n, 128).parts), 2),
      open('quip', quipTensors(quip(w, n, n, H, { bits: 2, seed: 1, linalg: jsKernels }).parts), 2),
    ];
    const x = be.upload(values(M * n, 1), [M, n]);
    const cells: string[] = [];
    for (const make of weights) {
      const wt = make();
      const warm = be.linear(x, wt);
      await be.read(warm);
      be.free(warm);
      let best = Infinity, reps = 1;
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        const last = be.scope(() => { let y = be.linear(x, wt); for (let i = 1; i < reps; i++) { be.free(y); y = be.linear(x, wt); } return y; });
        await be.read(last);
        be.free(last);
        const dt = (performance.now() - t0) / 1000 / reps;
        best = Math.min(best, dt);
        if (r === 0) reps = Math.max(1, Math.min(50, Math.round(1 / Math.max(dt, 1e-4))));
      }
      cells.push((2 * M * n * n / best / 1e9).toFixed(2));
      be.free(wt);
    }
    be.free(x);
    console.log(`| ${n} | ${cells.join(' | ')} |`);
  }
}
