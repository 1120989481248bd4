/**
 * Every kernel of every available provider against the js reference, on seeded inputs with awkward
 * shapes, NaN/inf placed in the inputs, and guard words after each output (test-backend-ops style).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { decodeHalf, encodeHalf } from '../../src/tensor/codecs.js';
import {
  NMSE_MAX, PROVIDERS, assertClose, assertGuards, assertSameBits, availability, guarded, kernelsOf, randF32, rng,
} from './kernelCases.js';

/** [M, N, K]: ones, primes, one past a power of two, and a long K. */
const GEMM_SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 3, 127], [3, 129, 4097], [127, 129, 3], [129, 127, 64], [4, 4, 4], [2, 5, 129], [1, 4097, 3], [67, 33, 257],
];

function poison(a: Float32Array, seed: number): Float32Array {
  const r = rng(seed), out = a.slice();
  const specials = [NaN, Infinity, -Infinity];
  for (let i = 0; i < 3 && out.length > 0; i++) out[Math.floor(r() * out.length)] = specials[i]!;
  return out;
}

for (const p of PROVIDERS) {
  describe(`${p.name} kernels vs js`, availability(p), () => {
    it('gemm on awkward shapes, with NaN/inf inputs', () => {
      const k = kernelsOf(p);
      for (const [M, N, K] of GEMM_SHAPES) {
        for (const bad of [false, true]) {
          let x = randF32(M * K, M * 7 + N), w = randF32(N * K, K * 3 + 1);
          if (bad) { x = poison(x, 11); w = poison(w, 12); }
          const y = guarded(Float32Array, M * N), ref = new Float32Array(M * N);
          k.gemm(x, w, y, M, N, K);
          jsKernels.gemm(x, w, ref, M, N, K);
          const what = `gemm ${M}x${N}x${K}${bad ? ' with NaN/inf' : ''}`;
          assertGuards(y, what);
          assertClose(y, ref, NMSE_MAX.gemm, what);
        }
      }
    });

    it('gemmHalf equals decoding first, then the same provider\'s f32 gemm, bit for bit', () => {
      const k = kernelsOf(p);
      for (const dtype of ['bf16', 'f16'] as const) {
        for (const [M, N, K] of GEMM_SHAPES) {
          const x = randF32(M * K, N + 5);
          const w16 = encodeHalf(dtype, randF32(N * K, K + 9, 4));
          const r = rng(N * K); // specials and f16 subnormals among the weights
          for (const bits of [0x7c00, 0xfc00, 0x0001, 0x03ff, 0x8001, 0x7f80, 0x7fc1]) w16[Math.floor(r() * w16.length)] = bits;
          const y = guarded(Float32Array, M * N), viaF32 = new Float32Array(M * N);
          k.gemmHalf(x, w16, dtype, y, M, N, K);
          k.gemm(x, decodeHalf(dtype, w16), viaF32, M, N, K);
          assertGuards(y, `gemmHalf ${dtype}`);
          assertSameBits(y, viaF32, `gemmHalf ${dtype} ${M}x${N}x${K}`);
        }
      }
    });

    it('rmsnorm', () => {
      const k = kernelsOf(p);
      for (const [M, D] of [[1, 1], [3, 127], [5, 4097], [129, 64]] as const) {
        for (const bad of [false, true]) {
          const x = bad ? poison(randF32(M * D, D), 3) : randF32(M * D, D, 3), g = randF32(D, 1 + D);
          const y = guarded(Float32Array, M * D), ref = new Float32Array(M * D);
          k.rmsnorm(x, g, y, M, D, 1e-5);
          jsKernels.rmsnorm(x, g, ref, M, D, 1e-5);
          assertGuards(y, 'rmsnorm');
          assertClose(y, ref, NMSE_MAX.rmsnorm, `rmsnorm ${M}x${D}${bad ? ' with NaN/inf' : ''}`);
        }
      }
    });

    it('rope', () => {
      const k = kernelsOf(p);
      for (const [T, H, hd] of [[1, 1, 2], [3, 5, 64], [129, 2, 6], [7, 3, 128]] as const) {
        for (const bad of [false, true]) {
          const x0 = bad ? poison(randF32(T * H * hd, hd), 4) : randF32(T * H * hd, hd);
          const c = randF32(T * hd / 2, 3), s = randF32(T * hd / 2, 4);
          const x = guarded(Float32Array, x0.length);
          x.set(x0);
          const ref = x0.slice();
          k.rope(x, T, H, hd, c, s);
          jsKernels.rope(ref, T, H, hd, c, s);
          assertGuards(x, 'rope');
          assertClose(x, ref, NMSE_MAX.rope, `rope T=${T} H=${H} hd=${hd}`);
        }
      }
    });

    it('attention (causal GQA with offset)', () => {
      const k = kernelsOf(p);
      // [T, S, offset, nHeads, nKvHeads, headDim]
      const cases = [[1, 1, 0, 1, 1, 1], [3, 5, 2, 4, 2, 3], [1, 129, 128, 8, 2, 64], [127, 127, 0, 2, 1, 16], [5, 9, 4, 6, 3, 129]] as const;
      for (const [T, S, off, H, KVH, hd] of cases) {
        for (const bad of [false, true]) {
          const q = bad ? poison(randF32(T * H * hd, 1), 5) : randF32(T * H * hd, 1);
          const kk = randF32(S * KVH * hd, 2), v = randF32(S * KVH * hd, 3);
          const o = guarded(Float32Array, T * H * hd), ref = new Float32Array(T * H * hd);
          k.attention(q, kk, v, o, T, S, off, H, KVH, hd);
          jsKernels.attention(q, kk, v, ref, T, S, off, H, KVH, hd);
          assertGuards(o, 'attention');
          assertClose(o, ref, NMSE_MAX.attention, `attention T=${T} S=${S} off=${off} H=${H}/${KVH} hd=${hd}${bad ? ' NaN/inf' : ''}`);
        }
      }
    });

    it('siluMul, including large |gate| and NaN/inf', () => {
      const k = kernelsOf(p);
      for (const n of [1, 3, 127, 4097, 70000]) {
        const g = poison(randF32(n, n, 30), 6), u = randF32(n, n + 1);
        const o = guarded(Float32Array, n), ref = new Float32Array(n);
        k.siluMul(g, u, o, n);
        jsKernels.siluMul(g, u, ref, n);
        assertGuards(o, 'siluMul');
        assertClose(o, ref, NMSE_MAX.siluMul, `siluMul n=${n}`);
      }
    });

    it('nll (float64), including inf/NaN logits', () => {
      const k = kernelsOf(p);
      for (const [T, V] of [[1, 1], [3, 127], [9, 4097], [2, 32000]] as const) {
        for (const bad of [false, true]) {
          const l = bad ? poison(randF32(T * V, V, 20), 7) : randF32(T * V, V, 20);
          const r = rng(T), tg = Int32Array.from({ length: T }, () => Math.floor(r() * V));
          const o = guarded(Float64Array, T), ref = new Float64Array(T);
          k.nll(l, tg, o, T, V);
          jsKernels.nll(l, tg, ref, T, V);
          assertGuards(o, 'nll');
          assertClose(o, ref, NMSE_MAX.nll, `nll T=${T} V=${V}${bad ? ' NaN/inf' : ''}`);
        }
      }
    });

    it('a shape mismatch throws before any kernel runs', () => {
      const k = kernelsOf(p);
      const y = new Float32Array(6).fill(7);
      assert.throws(() => k.gemm(new Float32Array(5), new Float32Array(6), y, 2, 3, 3), /gemm: x has 5 elements, expected 6/);
      assert.throws(() => k.gemmHalf(new Float32Array(6), new Uint16Array(8), 'bf16', y, 2, 3, 3), /gemmHalf: w has 8 elements/);
      assert.throws(() => k.rmsnorm(new Float32Array(6), new Float32Array(2), y, 2, 3, 1e-5), /rmsnorm: gamma/);
      assert.throws(() => k.rope(y, 1, 2, 3, new Float32Array(1), new Float32Array(1)), /rope: headDim 3 is odd/);
      assert.throws(() => k.attention(y, y, y, y, 1, 1, 1, 2, 1, 3), /attention: 1 keys cannot cover/);
      assert.throws(() => k.attention(y, y, y, y, 1, 6, 0, 3, 2, 2), /not a multiple/);
      assert.throws(() => k.siluMul(y, new Float32Array(5), y, 6), /siluMul: up/);
      assert.throws(() => k.nll(y, Int32Array.of(0, 3), new Float64Array(2), 2, 3), /nll: target 3 at row 1/);
      assert.throws(() => k.gemm(y, y, y, -1, 1, 1), /not a non-negative int32/);
      assert.deepEqual([...y], [7, 7, 7, 7, 7, 7], 'an output was written before the error');
    });
  });
}
