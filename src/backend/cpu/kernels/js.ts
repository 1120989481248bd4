/**
 * Plain TypeScript kernels: the reference every other provider is tested against, and the fallback
 * that needs nothing but a JavaScript engine. Written for clarity first, with simple register
 * tiling in gemm so the bundled models evaluate in seconds.
 */
import { decodeHalf } from '../../../tensor/codecs.js';
import type { CpuKernels } from './kernels.js';
import { jsLinalg } from './jsLinalg.js';
import { gemmQPanels } from './qgemm.js';
import type { GptqPacked } from '../../../tensor/packed.js';

/** y[M,N] = x[M,K] · w[N,K]ᵀ, tiles of 4 rows of x by 4 rows of w. */
function gemm(x: Float32Array, w: Float32Array, y: Float32Array, M: number, N: number, K: number): void {
  let m = 0;
  for (; m + 4 <= M; m += 4) {
    const x0 = m * K, x1 = x0 + K, x2 = x1 + K, x3 = x2 + K;
    let n = 0;
    for (; n + 4 <= N; n += 4) {
      const w0 = n * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K;
      let a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
      let a20 = 0, a21 = 0, a22 = 0, a23 = 0, a30 = 0, a31 = 0, a32 = 0, a33 = 0;
      for (let k = 0; k < K; k++) {
        const b0 = w[w0 + k]!, b1 = w[w1 + k]!, b2 = w[w2 + k]!, b3 = w[w3 + k]!;
        const c0 = x[x0 + k]!, c1 = x[x1 + k]!, c2 = x[x2 + k]!, c3 = x[x3 + k]!;
        a00 += c0 * b0; a01 += c0 * b1; a02 += c0 * b2; a03 += c0 * b3;
        a10 += c1 * b0; a11 += c1 * b1; a12 += c1 * b2; a13 += c1 * b3;
        a20 += c2 * b0; a21 += c2 * b1; a22 += c2 * b2; a23 += c2 * b3;
        a30 += c3 * b0; a31 += c3 * b1; a32 += c3 * b2; a33 += c3 * b3;
      }
      const y0 = m * N + n, y1 = y0 + N, y2 = y1 + N, y3 = y2 + N;
      y[y0] = a00; y[y0 + 1] = a01; y[y0 + 2] = a02; y[y0 + 3] = a03;
      y[y1] = a10; y[y1 + 1] = a11; y[y1 + 2] = a12; y[y1 + 3] = a13;
      y[y2] = a20; y[y2 + 1] = a21; y[y2 + 2] = a22; y[y2 + 3] = a23;
      y[y3] = a30; y[y3 + 1] = a31; y[y3 + 2] = a32; y[y3 + 3] = a33;
    }
    for (; n < N; n++) {
      const w0 = n * K;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let k = 0; k < K; k++) {
        const b = w[w0 + k]!;
        a0 += x[x0 + k]! * b; a1 += x[x1 + k]! * b; a2 += x[x2 + k]! * b; a3 += x[x3 + k]! * b;
      }
      y[m * N + n] = a0; y[(m + 1) * N + n] = a1; y[(m + 2) * N + n] = a2; y[(m + 3) * N + n] = a3;
    }
  }
  for (; m < M; m++) {
    const x0 = m * K;
    for (let n = 0; n < N; n++) {
      const w0 = n * K;
      let a = 0;
      for (let k = 0; k < K; k++) a += x[x0 + k]! * w[w0 + k]!;
      y[m * N + n] = a;
    }
  }
}

/** Weight rows decoded in panels of PANEL rows, then the f32 gemm on each panel. */
const PANEL = 64;
function gemmHalf(x: Float32Array, w: Uint16Array, dtype: 'bf16' | 'f16', y: Float32Array, M: number, N: number, K: number): void {
  const rows = Math.min(PANEL, N);
  const panel = new Float32Array(rows * K);
  const yp = new Float32Array(M * rows);
  for (let n0 = 0; n0 < N; n0 += rows) {
    const nr = Math.min(rows, N - n0);
    decodeHalf(dtype, w.subarray(n0 * K, (n0 + nr) * K), panel.subarray(0, nr * K));
    gemm(x, panel, yp, M, nr, K);
    for (let m = 0; m < M; m++) y.set(yp.subarray(m * nr, m * nr + nr), m * N + n0);
  }
}

/** GPTQ-packed weight: panels of output rows decoded (qgemm.ts), then the gemm above; bit-identical to gemm on dequantizeGptq(q). */
function gemmQ(x: Float32Array, q: GptqPacked, y: Float32Array, M: number): void {
  gemmQPanels(gemm, x, q, y, M);
}

function rmsnorm(x: Float32Array, gamma: Float32Array, y: Float32Array, M: number, D: number, eps: number): void {
  for (let m = 0; m < M; m++) {
    const o = m * D;
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[o + i]! * x[o + i]!;
    const r = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) y[o + i] = Math.fround(x[o + i]! * r) * gamma[i]!;
  }
}

function rope(x: Float32Array, T: number, nHeads: number, headDim: number, cos: Float32Array, sin: Float32Array): void {
  const half = headDim >> 1, width = nHeads * headDim;
  for (let t = 0; t < T; t++) {
    const c0 = t * half;
    for (let h = 0; h < nHeads; h++) {
      const o = t * width + h * headDim;
      for (let i = 0; i < half; i++) {
        const a = x[o + i]!, b = x[o + i + half]!, c = cos[c0 + i]!, s = sin[c0 + i]!;
        x[o + i] = a * c - b * s;
        x[o + i + half] = b * c + a * s;
      }
    }
  }
}

function attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array,
  T: number, S: number, offset: number, nHeads: number, nKvHeads: number, headDim: number): void {
  const group = nHeads / nKvHeads, qw = nHeads * headDim, kw = nKvHeads * headDim;
  const scale = 1 / Math.sqrt(headDim);
  const p = new Float32Array(S);
  for (let h = 0; h < nHeads; h++) {
    const kh = Math.floor(h / group);
    for (let t = 0; t < T; t++) {
      const qo = t * qw + h * headDim, last = offset + t;
      let mx = -Infinity;
      for (let s = 0; s <= last; s++) {
        const ko = s * kw + kh * headDim;
        let d = 0;
        for (let i = 0; i < headDim; i++) d += q[qo + i]! * k[ko + i]!;
        d *= scale;
        p[s] = d;
        if (d > mx) mx = d;
      }
      let sum = 0;
      for (let s = 0; s <= last; s++) { const e = Math.exp(p[s]! - mx); p[s] = e; sum += p[s]!; }
      const inv = 1 / sum;
      for (let i = 0; i < headDim; i++) out[qo + i] = 0;
      for (let s = 0; s <= last; s++) {
        const ps = p[s]! * inv, vo = s * kw + kh * headDim;
        for (let i = 0; i < headDim; i++) out[qo + i]! += ps * v[vo + i]!;
      }
    }
  }
}

function siluMul(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    out[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

function nll(logits: Float32Array, targets: Int32Array, out: Float64Array, T: number, V: number): void {
  for (let t = 0; t < T; t++) {
    const o = t * V;
    let mx = -Infinity;
    for (let i = 0; i < V; i++) if (logits[o + i]! > mx) mx = logits[o + i]!;
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(logits[o + i]! - mx);
    const tgt = targets[t]!;
    if (tgt < 0 || tgt >= V) throw new RangeError(`nll: target ${tgt} at row ${t} outside the vocabulary of ${V}`);
    out[t] = mx + Math.log(sum) - logits[o + tgt]!;
  }
}

export const jsKernels: CpuKernels = Object.freeze({
  name: 'js' as const, gemm, gemmHalf, gemmQ, rmsnorm, rope, attention, siluMul, nll, ...jsLinalg,
});
