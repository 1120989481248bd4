/**
 * Float64 dense linear algebra in plain TypeScript: the reference for the optional linalg methods of
 * CpuKernels (gram, cholesky, triangularInverse, choleskyInverse, gemmF64, symmetricEigen, qr),
 * written as the textbook loops. The native provider calls LAPACK (dpotrf, dtrtri, dpotri, dsyevd,
 * dgeqrf + dorgqr) and BLAS (dgemm) for the same contract. All matrices are row-major.
 */
import type { CpuKernels, QrFactors, SymmetricEigen } from './kernels.js';

/**
 * S[K,K] += x[n,K]ᵀ · x[n,K] in float64 on the upper triangle (S[a,b], b ≥ a; the GPTQ Hessian
 * update without the 2/n scaling). The strict lower triangle is not touched.
 */
function gram(x: Float32Array, S: Float64Array, n: number, K: number): void {
  const row = new Float64Array(K);
  for (let r = 0; r < n; r++) {
    for (let k = 0; k < K; k++) row[k] = x[r * K + k]!;
    for (let i = 0; i < K; i++) {
      const xi = row[i]!, o = i * K;
      for (let j = i; j < K; j++) S[o + j]! += xi * row[j]!;
    }
  }
}

/** Cholesky–Banachiewicz, row by row: L[i,j] = (A[i,j] − Σ_{k<j} L[i,k]·L[j,k]) / L[j,j]. */
function cholesky(A: Float64Array, n: number): boolean {
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
function triangularInverse(L: Float64Array, n: number): void {
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
function choleskyInverse(A: Float64Array, n: number): boolean {
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

/** y[M,N] = x[M,K] · w[N,K]ᵀ in float64, each entry one left-to-right dot product. */
export function gemmF64(x: Float64Array, w: Float64Array, y: Float64Array, M: number, N: number, K: number): void {
  for (let m = 0; m < M; m++) {
    const xo = m * K;
    for (let n = 0; n < N; n++) {
      const wo = n * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += x[xo + k]! * w[wo + k]!;
      y[m * N + n] = s;
    }
  }
}

/**
 * Symmetric eigendecomposition by cyclic Jacobi rotations (Rutishauser's formulas), reading the lower
 * triangle: values ascending, column j of the row-major vectors the eigenvector of values[j] with its
 * largest-magnitude component (the first of equals) positive. O(n³) per sweep; meant for n ≤ a few hundred.
 */
export function symmetricEigen(A: Float64Array, n: number): SymmetricEigen {
  const a = new Float64Array(n * n), V = new Float64Array(n * n);
  let norm2 = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const v = A[i * n + j]!;
      if (!Number.isFinite(v)) throw new RangeError(`symmetricEigen: A[${i},${j}] = ${v} is not finite`);
      a[i * n + j] = v; a[j * n + i] = v;
      norm2 += i === j ? v * v : 2 * v * v;
    }
    V[i * n + i] = 1;
  }
  const tiny = 1e-20 * Math.sqrt(norm2); // off-diagonal entries below this are already exact enough
  for (let sweep = 0; ; sweep++) {
    let rotations = 0;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        const app = a[p * n + p]!, aqq = a[q * n + q]!, g = 100 * Math.abs(apq);
        if (Math.abs(apq) <= tiny || (Math.abs(app) + g === Math.abs(app) && Math.abs(aqq) + g === Math.abs(aqq))) {
          a[p * n + q] = 0; a[q * n + p] = 0;
          continue;
        }
        rotations++;
        const theta = (aqq - app) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) { // columns p, q of a and of V
          const ko = k * n, akp = a[ko + p]!, akq = a[ko + q]!;
          a[ko + p] = c * akp - s * akq; a[ko + q] = s * akp + c * akq;
          const vkp = V[ko + p]!, vkq = V[ko + q]!;
          V[ko + p] = c * vkp - s * vkq; V[ko + q] = s * vkp + c * vkq;
        }
        const po = p * n, qo = q * n;
        for (let k = 0; k < n; k++) { // rows p, q of a
          const apk = a[po + k]!, aqk = a[qo + k]!;
          a[po + k] = c * apk - s * aqk; a[qo + k] = s * apk + c * aqk;
        }
        a[po + q] = 0; a[qo + p] = 0;
      }
    }
    if (rotations === 0) break;
    if (sweep >= 100) throw new Error(`symmetricEigen: Jacobi did not converge in 100 sweeps (n = ${n})`);
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[i * n + i]! - a[j * n + j]! || i - j);
  const values = new Float64Array(n), vectors = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const src = order[j]!;
    values[j] = a[src * n + src]!;
    let best = 0;
    for (let i = 1; i < n; i++) if (Math.abs(V[i * n + src]!) > Math.abs(V[best * n + src]!)) best = i;
    const sign = V[best * n + src]! < 0 ? -1 : 1;
    for (let i = 0; i < n; i++) vectors[i * n + j] = sign * V[i * n + src]!;
  }
  return { values, vectors };
}

/**
 * Thin QR of A[m,n], m ≥ n, by Householder reflections: Q[m,n] = H₀…H_{n−1}·I[:, :n], R[n,n] upper,
 * signs chosen so that R's diagonal is non-negative.
 */
export function qr(A: Float64Array, m: number, n: number): QrFactors {
  if (m < n) throw new RangeError(`qr: m = ${m} < n = ${n}`);
  const a = A.slice(0, m * n), vs: Float64Array[] = [], betas: number[] = [];
  for (let k = 0; k < n; k++) {
    const v = new Float64Array(m - k);
    let norm2 = 0;
    for (let i = k; i < m; i++) { const x = a[i * n + k]!; v[i - k] = x; norm2 += x * x; }
    const norm = Math.sqrt(norm2), x0 = v[0]!;
    const alpha = x0 >= 0 ? -norm : norm;
    v[0] = x0 - alpha;
    const vv = norm2 - x0 * x0 + v[0] * v[0];
    const beta = vv > 0 ? 2 / vv : 0;
    vs.push(v); betas.push(beta);
    if (beta === 0) continue;
    for (let j = k; j < n; j++) {
      let d = 0;
      for (let i = k; i < m; i++) d += v[i - k]! * a[i * n + j]!;
      d *= beta;
      for (let i = k; i < m; i++) a[i * n + j]! -= d * v[i - k]!;
    }
  }
  const Q = new Float64Array(m * n);
  for (let i = 0; i < n; i++) Q[i * n + i] = 1;
  for (let k = n - 1; k >= 0; k--) {
    const v = vs[k]!, beta = betas[k]!;
    if (beta === 0) continue;
    for (let j = 0; j < n; j++) {
      let d = 0;
      for (let i = k; i < m; i++) d += v[i - k]! * Q[i * n + j]!;
      d *= beta;
      for (let i = k; i < m; i++) Q[i * n + j]! -= d * v[i - k]!;
    }
  }
  const R = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const sign = a[i * n + i]! < 0 ? -1 : 1;
    for (let j = i; j < n; j++) R[i * n + j] = sign * a[i * n + j]!;
    if (sign < 0) for (let r = 0; r < m; r++) Q[r * n + i] = -Q[r * n + i]!;
  }
  return { Q, R };
}

/**
 * The references a provider without its own takes (`withLinalg`, and the js and wasm providers).
 * gemmF64 is left out on purpose: without it GPTQ runs its own float64 TypeScript lazy update,
 * which is faster than routing the same loops through gemmF64 (transposed copies, ~1.3×).
 */
export const jsLinalg = Object.freeze({ gram, cholesky, triangularInverse, choleskyInverse, symmetricEigen, qr });

/** A provider completed with the js references for the linalg methods it lacks (gemmF64 stays optional, see jsLinalg). */
export function withLinalg(k: CpuKernels): CpuKernels {
  return Object.freeze({
    ...k,
    gram: k.gram ?? gram,
    cholesky: k.cholesky ?? cholesky,
    triangularInverse: k.triangularInverse ?? triangularInverse,
    choleskyInverse: k.choleskyInverse ?? choleskyInverse,
    symmetricEigen: k.symmetricEigen ?? symmetricEigen,
    qr: k.qr ?? qr,
  });
}
