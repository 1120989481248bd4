/**
 * Results do not depend on the thread count: every op of every available provider gives the same bits
 * with 1, 2 and 3 threads, on shapes cut into many tasks.
 */
import { describe, it } from 'node:test';
import { encodeHalf } from '../../src/tensor/codecs.js';
import type { CpuKernels } from '../../src/backend/cpu/kernels/kernels.js';
import { PROVIDERS, assertSameBits, availability, kernelsOf, randF32, rng } from './kernelCases.js';

const THREADS = [1, 2, 3];

/** Runs every op once on fixed inputs; returns the outputs by name. */
function runAll(k: CpuKernels): Record<string, Float32Array | Float64Array> {
  const out: Record<string, Float32Array | Float64Array> = {};
  const [M, N, K] = [600, 600, 129]; // several tiles in both directions for native (512×256) and wasm (64×W rows)
  const x = randF32(M * K, 1), w = randF32(N * K, 2);
  k.gemm(x, w, (out.gemm = new Float32Array(M * N)), M, N, K);
  k.gemm(x.subarray(0, K), w, (out.gemv = new Float32Array(N)), 1, N, K);
  k.gemmHalf(x, encodeHalf('bf16', w), 'bf16', (out.gemmBf16 = new Float32Array(M * N)), M, N, K);
  k.gemmHalf(x, encodeHalf('f16', w), 'f16', (out.gemmF16 = new Float32Array(M * N)), M, N, K);
  k.rmsnorm(x, randF32(K, 3), (out.rmsnorm = new Float32Array(M * K)), M, K, 1e-6);
  const rope = (out.rope = x.slice(0, 37 * 4 * 64));
  k.rope(rope, 37, 4, 64, randF32(37 * 32, 4), randF32(37 * 32, 5));
  const [T, S, H, KVH, hd] = [33, 40, 4, 2, 64];
  k.attention(randF32(T * H * hd, 6), randF32(S * KVH * hd, 7), randF32(S * KVH * hd, 8), (out.attention = new Float32Array(T * H * hd)), T, S, 7, H, KVH, hd);
  const n = 200_000;
  k.siluMul(randF32(n, 9, 8), randF32(n, 10), (out.siluMul = new Float32Array(n)), n);
  const [R, V] = [37, 3001], r = rng(11);
  k.nll(randF32(R * V, 12, 10), Int32Array.from({ length: R }, () => Math.floor(r() * V)), (out.nll = new Float64Array(R)), R, V);
  if (k.gram) {
    const H = (out.gram = new Float64Array(300 * 300));
    k.gram(randF32(600 * 300, 13), H, 600, 300);
  }
  if (k.gramF32) {
    const S = (out.gramF32 = new Float64Array(300 * 300));
    k.gramF32(randF32(2100 * 300, 14), S, 2100, 300);
  }
  return out;
}

for (const p of PROVIDERS) {
  describe(`${p.name}: bit-identical across thread counts ${THREADS.join('/')}`, availability(p), () => {
    it('every op', () => {
      const results = THREADS.map((t) => runAll(kernelsOf(p, t)));
      for (const name of Object.keys(results[0]!)) {
        for (let i = 1; i < THREADS.length; i++) {
          assertSameBits(results[i]![name]!, results[0]![name]!, `${p.name} ${name}: ${THREADS[i]} threads vs 1`);
        }
      }
    });
  });
}
