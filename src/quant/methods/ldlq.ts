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
 * The work is organised as GPTQ's lazy batches, from the right: inside a block of `block` columns each
 * quantized column pushes its error to the block's earlier columns (row-contiguous axpys); after the block
 * its errors reach every column to its left in one GEMM (the provider's gemmF64 when it has one). All
 * float64 (the reference: float32 on the GPU).
 */
import { LowbitError } from '../../errors.js';
import { cholesky as choleskyTs } from '../core/linalg.js';
import type { QuantLinalg } from '../core/linalgProvider.js';
import { gemmF64Plain, type GemmF64 } from '../../tensor/quipTransform.js';

export interface LdlqOptions {
  /** columns per lazy block (128) */
  readonly block?: number;
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
  const B = Math.max(1, Math.min(o.block ?? 128, d));
  // V = X + feedback from the blocks already done (float64)
  const V = Float64Array.from(X);
  const codes = new Uint8Array(rows * d);
  const P = new Float64Array(B * rows), E = new Float64Array(B * rows), Ex = new Float64Array(rows * B);
  for (let i1 = d; i1 > 0; i1 -= B) {
    const i0 = Math.max(0, i1 - B), K = i1 - i0;
    // the block's columns, column-major: P[k][r] = V[r, i0 + k]
    for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) P[k * rows + r] = V[r * d + i0 + k]!;
    for (let i = i1 - 1; i >= i0; i--) {
      const k = i - i0, pk = k * rows;
      for (let r = 0; r < rows; r++) {
        let q = Math.floor(P[pk + r]! + 0.5);
        q = q < 0 ? 0 : q > maxq ? maxq : q;
        codes[r * d + i] = q;
        E[pk + r] = X[r * d + i]! - q;
      }
      // push e_i · L̃[i, t] to the block's columns t < i
      const lo = i * d;
      for (let t = i0; t < i; t++) {
        const c = H[lo + t]!;
        if (c === 0) continue;
        const pt = (t - i0) * rows;
        for (let r = 0; r < rows; r++) P[pt + r]! += E[pk + r]! * c;
      }
    }
    if (i0 === 0) break;
    // V[:, 0:i0] += E_B · L̃[B, 0:i0]: y[r, t] = Σ_k Ex[r, k] · w[t, k], w[t, k] = L̃[i0 + k, t]
    for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) Ex[r * K + k] = E[k * rows + r]!;
    const w = new Float64Array(i0 * K);
    for (let k = 0; k < K; k++) {
      const lo = (i0 + k) * d;
      for (let t = 0; t < i0; t++) w[t * K + k] = H[lo + t]!;
    }
    const chunk = Math.max(1, Math.min(rows, Math.floor((1 << 22) / i0)));
    const y = new Float64Array(chunk * i0);
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const R = Math.min(chunk, rows - r0);
      gemm(Ex.subarray(r0 * K, (r0 + R) * K), w, y.subarray(0, R * i0), R, i0, K);
      for (let r = 0; r < R; r++) {
        const vo = (r0 + r) * d, yo = r * i0;
        for (let t = 0; t < i0; t++) V[vo + t]! += y[yo + t]!;
      }
    }
  }
  return codes;
}
