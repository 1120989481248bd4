/**
 * LDLQ rounding, as Cornell-RelaxML/QuIP's `round_ldl` runs it (vector_balance.py:155-199, `--quant ldlq`,
 * `--npasses 0`, `unbiased` off):
 *   L = cholesky(H) (lower), L̃ = L·diag(1/diag L) (unit lower: H = L̃·diag(L_ii²)·L̃ᵀ);
 *   for i from the last column to the first:
 *     ŵ_i = clamp(floor(x_i + Σ_{j>i} (x_j − ŵ_j)·L̃_{j,i} + 1/2), 0, maxq)
 * on targets x already in grid units (0..maxq). Rounding is half up (floor(x + 0.5)), every step is
 * clamped, and the error fed back is against the targets x, not against updated values. No greedy passes.
 * This is GPTQ/OPTQ run on the reversed column order (the QuIP paper's equivalence; test/quant/quip.test.ts
 * checks it against gptq()).
 *
 * The work is organised as GPTQ's nested lazy batches, from the right: inside a sub-block of `subBlock`
 * columns each quantized column pushes its error to the sub-block's earlier columns (row-contiguous axpys);
 * a finished sub-block pushes its errors to the rest of its lazy block, and a finished lazy block of `block`
 * columns to every column on its left, each in one GEMM (the provider's gemmF64 when it has one, else a
 * TypeScript loop). The same sums in another order: all float64 (the reference: float32 on the GPU).
 */
import { LowbitError } from '../../errors.js';
import { cholesky as choleskyTs } from '../core/linalg.js';
import type { QuantLinalg } from '../core/linalgProvider.js';
import { gemmF64Plain, type GemmF64 } from '../../tensor/quipTransform.js';

export interface LdlqOptions {
  /** columns per lazy block, pushed to every column on its left in one GEMM (512) */
  readonly block?: number;
  /** columns per sub-block inside a lazy block, pushed to the rest of the lazy block in one GEMM (32) */
  readonly subBlock?: number;
  readonly linalg?: QuantLinalg | undefined;
  /** layer name for errors */
  readonly where?: string;
}

/**
 * Codes [rows, d] of targets X [rows, d] (grid units) under H [d, d] (float64, SPD; destroyed: it holds L
 * afterwards). Throws a LowbitError when H is not positive definite.
 */
export function ldlq(X: Float32Array, rows: number, d: number, H: Float64Array, maxq: number, o: LdlqOptions = {}): Uint8Array {
  const at = o.where ? `${o.where}: ` : '';
  const ok = o.linalg?.cholesky ? o.linalg.cholesky(H, d) : choleskyTs(H, d);
  if (!ok) throw new LowbitError(`${at}LDLQ: the processed Hessian is not positive definite (non-finite or degenerate calibration inputs?)`);
  // L̃ below the diagonal, in place (the strict upper triangle is never read)
  for (let i = 0; i < d; i++) {
    const dii = H[i * d + i]!;
    for (let j = i + 1; j < d; j++) H[j * d + i]! /= dii;
  }
  const gemm: GemmF64 = o.linalg?.gemmF64?.bind(o.linalg) ?? gemmF64Plain;
  const Bo = Math.max(1, Math.min(o.block ?? 512, d)), Bi = Math.max(1, Math.min(o.subBlock ?? 32, Bo));
  // V = X + the feedback of the lazy blocks already done (float64)
  const V = Float64Array.from(X);
  const codes = new Uint8Array(rows * d);
  // the lazy block's columns and errors, column-major: P[k][r] = V[r, o0 + k] plus pushes, E[k][r] = x − ŵ
  const P = new Float64Array(Bo * rows), E = new Float64Array(Bo * rows);
  const Et = new Float64Array(rows * Bo), coef = new Float64Array(Bo * Bo);
  const yChunk = 1 << 22, y = new Float64Array(Math.min(yChunk, Math.max(rows, Bo) * Math.max(Bo, d)));
  for (let o1 = d; o1 > 0; o1 -= Bo) {
    const o0 = Math.max(0, o1 - Bo), K = o1 - o0;
    for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) P[k * rows + r] = V[r * d + o0 + k]!;
    for (let j1 = o1; j1 > o0; j1 -= Bi) {
      const j0 = Math.max(o0, j1 - Bi);
      for (let i = j1 - 1; i >= j0; i--) {
        const pk = (i - o0) * rows;
        for (let r = 0; r < rows; r++) {
          let q = Math.floor(P[pk + r]! + 0.5);
          q = q < 0 ? 0 : q > maxq ? maxq : q;
          codes[r * d + i] = q;
          E[pk + r] = X[r * d + i]! - q;
        }
        // e_i · L̃[i, t] to the sub-block's columns t < i
        const lo = i * d;
        for (let t = j0; t < i; t++) {
          const c = H[lo + t]!;
          if (c === 0) continue;
          const pt = (t - o0) * rows;
          for (let r = 0; r < rows; r++) P[pt + r]! += E[pk + r]! * c;
        }
      }
      if (j0 === o0) continue;
      // the sub-block's errors to the lazy block's columns [o0, j0): P[t][r] += Σ_k L̃[j0 + k, t] · E[k][r]
      const M = j0 - o0, Ks = j1 - j0;
      for (let t = 0; t < M; t++) for (let k = 0; k < Ks; k++) coef[t * Ks + k] = H[(j0 + k) * d + o0 + t]!;
      for (let r = 0; r < rows; r++) for (let k = 0; k < Ks; k++) Et[r * Ks + k] = E[(j0 - o0 + k) * rows + r]!;
      const mChunk = Math.max(1, Math.min(M, Math.floor(y.length / rows)));
      for (let t0 = 0; t0 < M; t0 += mChunk) {
        const m = Math.min(mChunk, M - t0);
        gemm(coef.subarray(t0 * Ks, (t0 + m) * Ks), Et.subarray(0, rows * Ks), y.subarray(0, m * rows), m, rows, Ks);
        const base = t0 * rows, len = m * rows;
        for (let i = 0; i < len; i++) P[base + i]! += y[i]!;
      }
    }
    if (o0 === 0) break;
    // V[:, 0:o0] += E_block · L̃[block, 0:o0]: y[r, t] = Σ_k Et[r, k] · w[t, k], w[t, k] = L̃[o0 + k, t]
    for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) Et[r * K + k] = E[k * rows + r]!;
    const w = new Float64Array(o0 * K);
    for (let k = 0; k < K; k++) {
      const lo = (o0 + k) * d;
      for (let t = 0; t < o0; t++) w[t * K + k] = H[lo + t]!;
    }
    const chunk = Math.max(1, Math.min(rows, Math.floor(y.length / o0)));
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const R = Math.min(chunk, rows - r0);
      gemm(Et.subarray(r0 * K, (r0 + R) * K), w, y.subarray(0, R * o0), R, o0, K);
      for (let r = 0; r < R; r++) {
        const vo = (r0 + r) * d, yo = r * o0;
        for (let t = 0; t < o0; t++) V[vo + t]! += y[yo + t]!;
      }
    }
  }
  return codes;
}
