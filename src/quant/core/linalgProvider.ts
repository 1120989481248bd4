/**
 * The linear algebra the quantizers may borrow from a CPU kernel provider. Every method is optional:
 * what a provider lacks is done by the plain TypeScript of hessian.ts, linalg.ts and gptq.ts, which
 * stays the reference. A `CpuKernels` (src/backend/cpu/kernels/kernels.ts, e.g. from
 * `selectKernels('auto', threads).kernels`) fits this interface as it is; the quantizers never name a
 * particular provider.
 *
 * Precision of each method, as the quantizers rely on it:
 * - gram: float64 products and sums of float32 inputs (x·y of two float32 values is exact in
 *   float64), so H matches the TypeScript accumulator up to summation order (~1e-15 relative).
 * - gramF32: gptq.py's precision: float32 sums over each calibration sequence (≤ 2048 rows, BLAS
 *   sgemm), float64 across sequences.
 * - cholesky, triangularInverse: float64 (LAPACK dpotrf, dtrtri in the native provider; blocked the
 *   same way in the wasm provider's kernels.c).
 * - gemmF64: float64 throughout (BLAS dgemm on a fixed tile grid in the native provider, two-lane dot
 *   products in the wasm provider, the plain dot-product loop of jsLinalg.ts otherwise). GPTQ's lazy
 *   batch update uses it when present.
 * - gemm: float32 in, float32 out, float32 accumulation (BLAS sgemm): the precision gptq.py works in
 *   throughout, not the float64 of our reference; GPTQ uses it only when asked (see gptq.ts for why).
 */
import { upperCholeskyOfInverse as upperCholeskyOfInverseTs } from './linalg.js';

export interface QuantLinalg {
  /** Provider name for notes and logs ('native', 'wasm', 'js'). */
  readonly name: string;
  /** S[K,K] += x[n,K]ᵀ · x[n,K] in float64 on the upper triangle (b ≥ a); below it unspecified. */
  gram?(x: Float32Array, S: Float64Array, n: number, K: number): void;
  /** The same with float32 sums over runs of ≤ 2048 rows, added into S in float64; upper triangle. */
  gramF32?(x: Float32Array, S: Float64Array, n: number, K: number): void;
  /** In place lower Cholesky factor (strict upper triangle set to 0); false if not positive definite. */
  cholesky?(A: Float64Array, n: number): boolean;
  /** In place inverse of a lower-triangular L (strict upper triangle set to 0). */
  triangularInverse?(L: Float64Array, n: number): void;
  /** y[M,N] = x[M,K] · w[N,K]ᵀ in float32. */
  gemm?(x: Float32Array, w: Float32Array, y: Float32Array, M: number, N: number, K: number): void;
  /** y[M,N] = x[M,K] · w[N,K]ᵀ in float64. */
  gemmF64?(x: Float64Array, w: Float64Array, y: Float64Array, M: number, N: number, K: number): void;
}

/**
 * U upper with UᵀU = A⁻¹, in place, by the route of linalg.ts (J A J = L Lᵀ, U = J L⁻¹ J, with J
 * the reversal), through the provider's cholesky and triangularInverse when it has both, else through
 * linalg.ts. Same contract as linalg.ts: on failure A is restored and the result is false. A provider
 * may overwrite any part of A before it reports failure, so the strict lower triangle is kept packed
 * (n(n−1)/2 values, half of A) together with the diagonal while it works.
 */
export function upperCholeskyOfInverse(A: Float64Array, n: number, linalg?: QuantLinalg): boolean {
  const chol = linalg?.cholesky, triInv = linalg?.triangularInverse;
  if (!chol || !triInv) return upperCholeskyOfInverseTs(A, n);
  const saved = new Float64Array((n * (n + 1)) / 2); // rows of the lower triangle, diagonal included
  for (let i = 0, o = 0; i < n; i++, o += i) saved.set(A.subarray(i * n, i * n + i + 1), o);
  A.reverse();
  if (!chol(A, n)) {
    for (let i = 0, o = 0; i < n; i++, o += i) {
      for (let j = 0; j <= i; j++) { const v = saved[o + j]!; A[i * n + j] = v; A[j * n + i] = v; }
    }
    return false;
  }
  triInv(A, n); // lower L⁻¹ with zeros above the diagonal
  A.reverse();
  return true;
}
