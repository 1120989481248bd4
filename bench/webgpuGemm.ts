/**
 * WebGPU `linear` throughput (y[M, N] = x[M, K]·w[N, K]ᵀ, 2·M·N·K flops) per stored weight dtype:
 * f32, bf16, f16 (decoded from u32 words in the shader) and GPTQ-packed W4 g128 codes, on whatever
 * adapter exists (Mesa's lavapipe on a machine without a GPU). Prints; asserts nothing. Each
 * figure is the best of a few timed runs after one warm-up; a run is `reps` linears enqueued, then
 * one read of the last output (so the figure includes one small read back). Without an adapter it
 * prints why and exits 0.
 *   node dist/bench/webgpuGemm.js [--tokens M] [--sizes 256,1024]
 */
import { jsKernels } from '../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../src/backend/webgpu/webgpuBackend.js';
import type { BTensor } from '../src/backend/backend.js';
import { Tensor } from '../src/tensor/tensor.js';
import { encodeHalf } from '../src/tensor/codecs.js';
import { packGptq } from '../src/tensor/gptqPack.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const M = Number(arg('--tokens', '128'));
const sizes = arg('--sizes', '256,1024').split(',').map(Number);
const GROUP = 128, BITS = 4;

/** Deterministic values in [−0.5, 0.5). */
function values(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (((i + seed) * 7919) % 1000) / 1000 - 0.5);
}

function gptqWeight(N: number, K: number) {
  const groups = Math.ceil(K / GROUP), maxq = 2 ** BITS - 1;
  return packGptq({
    codes: Uint8Array.from({ length: N * K }, (_, i) => (i * 31) % (maxq + 1)),
    gIdx: Int32Array.from({ length: K }, (_, c) => Math.floor(c / GROUP)),
    zeros: Uint8Array.from({ length: N * groups }, (_, i) => i % (maxq + 1)),
    scales: Float32Array.from({ length: N * groups }, (_, i) => 0.01 + (i % 7) * 0.001),
  }, N, K, BITS).tensors;
}

const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
if (!made.ok) {
  console.log(`webgpu GEMM: no adapter (${made.reason}); nothing measured`);
} else {
  const be = made.backend;
  console.log(`webgpu linear GFLOP/s, M = ${M} tokens, on ${be.caps.adapterName} (${be.caps.runtime})`);
  console.log('| N = K | f32 | bf16 | f16 | gptq w4 g128 |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const n of sizes) {
    const flops = 2 * M * n * n;
    const x = be.upload(values(M * n, 1), [M, n]);
    const w32 = values(n * n, 2);
    const weights: [string, () => BTensor][] = [
      ['f32', () => be.uploadWeight(new Tensor('f32', [n, n], w32))],
      ['bf16', () => be.uploadWeight(new Tensor('bf16', [n, n], encodeHalf('bf16', w32)))],
      ['f16', () => be.uploadWeight(new Tensor('f16', [n, n], encodeHalf('f16', w32)))],
      ['gptq', () => be.uploadQuantized(gptqWeight(n, n))],
    ];
    // reps: about a second of work per timed run on this adapter (from the first run), at least one
    const cells: string[] = [];
    let reps = 1;
    for (const [, make] of weights) {
      const w = make();
      const warm = be.linear(x, w); // warm-up: pipeline compiled, buffers resident
      await be.read(warm);
      be.free(warm);
      let best = Infinity;
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        const last = be.scope(() => { let y = be.linear(x, w); for (let i = 1; i < reps; i++) { be.free(y); y = be.linear(x, w); } return y; });
        await be.read(last);
        be.free(last);
        const dt = (performance.now() - t0) / 1000 / reps;
        best = Math.min(best, dt);
        if (r === 0) reps = Math.max(1, Math.min(50, Math.round(1 / Math.max(dt, 1e-4))));
      }
      cells.push((flops / best / 1e9).toFixed(2));
      be.free(w);
    }
    be.free(x);
    console.log(`| ${n} | ${cells.join(' | ')} |`);
  }
}
