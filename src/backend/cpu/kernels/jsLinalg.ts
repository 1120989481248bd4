/**
 * Float64 dense linear algebra in plain TypeScript: the reference for the optional linalg methods of
 * CpuKernels (gram, cholesky, triangularInverse, choleskyInverse), written as the textbook loops.
 * The native provider calls LAPACK (dpotrf, dtrtri, dpotri) and BLAS (dsyrk) for the same contract.
 * All matrices are row-major [n, n].
 */
import type { CpuKernels } from './kernels.js';

/** H[K,K] += x[n,K]ᵀ · x[n,K] in float64 (the GPTQ Hessian update, without the 2/n scaling). */
export function gram(x: Float32Array, H: Float64Array, n: number, K: number): void {
  const row = new Float64Array(K);
  for (let r = 0; r < n; r++) {
    for (let k = 0; k < K; k++) row[k] = x[r * K + k]!;
    for (let i = 0; i < K; i++) {
      const xi = row[i]!, o = i * K;
      for (let j = 0; j <= i; j++) H[o + j] += xi * row[j]!;
    }
  }
  for (let i = 0; i < K; i++) for (let j = 0; j < i; j++) H[j * K + i] = H[i * K + j]!;
}

/** Cholesky–Banachiewicz, row by row: L[i,j] = (A[i,j] − Σ_{k<j} L[i,k]·L[j,k]) / L[j,j]. */
export function cholesky(A: Float64Array, n: number): boolean {
  for (let i = 0; i < n; i++) {
    const oi = i * n;
    for (let j = 0; j <= i; j++) {
      const oj = j * n;
      let s = A[oi + j]!;
      for (let k = 0; k < j; k++) s -= A[oi + k]! * A[oj + k]!;
      if (i === j) {
        if (!(s > 0)) return false; // also false for NaN
        A[oi + i] = Math.sqrt(s);
      } else {
        A[oi + j] = s / A[oj + j]!;
      }
    }
    for (let j = i + 1; j < n; j++) A[oi + j] = 0;
  }
  return true;
}

/** Inverse of lower-triangular L by forward substitution, column by column of the result. */
export function triangularInverse(L: Float64Array, n: number): void {
  const X = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    X[j * n + j] = 1 / L[j * n + j]!;
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s -= L[i * n + k]! * X[k * n + j]!;
      X[i * n + j] = s / L[i * n + i]!;
    }
  }
  L.set(X);
}

/** A⁻¹ = L⁻ᵀ · L⁻¹ with A = L·Lᵀ. */
export function choleskyInverse(A: Float64Array, n: number): boolean {
  if (!cholesky(A, n)) return false;
  triangularInverse(A, n);
  const X = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0; // Σ_k Linv[k,i]·Linv[k,j], k ≥ max(i, j) = i
      for (let k = i; k < n; k++) s += A[k * n + i]! * A[k * n + j]!;
      X[i * n + j] = s;
      X[j * n + i] = s;
    }
  }
  A.set(X);
  return true;
}

export const jsLinalg = Object.freeze({ gram, cholesky, triangularInverse, choleskyInverse });

/** A provider completed with the js references for the linalg methods it lacks. */
export function withLinalg(k: CpuKernels): CpuKernels {
  return Object.freeze({
    ...k,
    gram: k.gram ?? gram,
    cholesky: k.cholesky ?? cholesky,
    triangularInverse: k.triangularInverse ?? triangularInverse,
    choleskyInverse: k.choleskyInverse ?? choleskyInverse,
  });
}
