/**
 * Dense float64 linear algebra for GPTQ, row-major [n, n] Float64Arrays, in plain TypeScript
 * (a later issue adds a native BLAS path behind the same functions).
 *
 * GPTQ needs Hinv = cholesky(cholesky_inverse(cholesky(H)), upper=True): the upper Cholesky factor U
 * of H⁻¹ (UᵀU = H⁻¹). upperCholeskyOfInverse gets the same U (the factor is unique) in two O(n³/3)
 * passes instead of four: with J the reversal permutation, J H J = L Lᵀ gives H = Ũ Ũᵀ with
 * Ũ = J L J upper, so H⁻¹ = Ũ⁻ᵀ Ũ⁻¹ and U = Ũ⁻¹ = J L⁻¹ J. Reversing both indices of a row-major
 * matrix is reversing its flat array.
 *
 * Loops are row-oriented (dot products and axpys over contiguous rows), two rows at a time so each
 * row read from memory serves two outputs.
 */

/**
 * Lower Cholesky factor in place: reads the lower triangle and diagonal, writes L there, never
 * touches the strict upper triangle. Returns false (A's lower part then partly overwritten) if A is
 * not numerically positive definite.
 */
export function cholesky(A: Float64Array, n: number): boolean {
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const ri = i * n, rk = ri + n; // rows i and k = i + 1
    for (let j = 0; j < i; j++) {
      const rj = j * n;
      let s0 = A[ri + j]!, s1 = A[rk + j]!;
      for (let m = 0; m < j; m++) {
        const l = A[rj + m]!;
        s0 -= A[ri + m]! * l;
        s1 -= A[rk + m]! * l;
      }
      const d = A[rj + j]!;
      A[ri + j] = s0 / d;
      A[rk + j] = s1 / d;
    }
    let dii = A[ri + i]!, ski = A[rk + i]!;
    for (let m = 0; m < i; m++) {
      const l = A[ri + m]!;
      dii -= l * l;
      ski -= A[rk + m]! * l;
    }
    if (!(dii > 0)) return false;
    const lii = Math.sqrt(dii);
    A[ri + i] = lii;
    const lki = ski / lii;
    A[rk + i] = lki;
    let dkk = A[rk + i + 1]!;
    for (let m = 0; m <= i; m++) { const l = A[rk + m]!; dkk -= l * l; }
    if (!(dkk > 0)) return false;
    A[rk + i + 1] = Math.sqrt(dkk);
  }
  if (i < n) { // odd n: last row alone
    const ri = i * n;
    for (let j = 0; j < i; j++) {
      const rj = j * n;
      let s = A[ri + j]!;
      for (let m = 0; m < j; m++) s -= A[ri + m]! * A[rj + m]!;
      A[ri + j] = s / A[rj + j]!;
    }
    let d = A[ri + i]!;
    for (let m = 0; m < i; m++) { const l = A[ri + m]!; d -= l * l; }
    if (!(d > 0)) return false;
    A[ri + i] = Math.sqrt(d);
  }
  return true;
}

/** Inverse of a lower-triangular L in place (lower triangle only; the strict upper part is left alone). */
export function invertLower(L: Float64Array, n: number): void {
  const t = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    t.fill(0, 0, i);
    // X[i][:] = (e_i - Σ_{k<i} L[i][k] X[k][:]) / L[i][i]; rows k < i already hold X, X[k][m] = 0 for m > k.
    let k = 0;
    for (; k + 1 < i; k += 2) {
      const c0 = L[ri + k]!, c1 = L[ri + k + 1]!;
      const r0 = k * n, r1 = r0 + n;
      for (let m = 0; m <= k; m++) t[m]! -= c0 * L[r0 + m]! + c1 * L[r1 + m]!;
      t[k + 1]! -= c1 * L[r1 + k + 1]!;
    }
    for (; k < i; k++) {
      const c = L[ri + k]!, r = k * n;
      for (let m = 0; m <= k; m++) t[m]! -= c * L[r + m]!;
    }
    const inv = 1 / L[ri + i]!;
    for (let m = 0; m < i; m++) L[ri + m] = t[m]! * inv;
    L[ri + i] = inv;
  }
}

/**
 * U upper with UᵀU = A⁻¹, in place (A: SPD, full symmetric). On success A holds U (zeros below the
 * diagonal) and the result is true; on failure A is restored to its input and the result is false.
 */
export function upperCholeskyOfInverse(A: Float64Array, n: number): boolean {
  const diag = new Float64Array(n);
  for (let i = 0; i < n; i++) diag[i] = A[i * n + i]!;
  A.reverse();
  if (!cholesky(A, n)) {
    // The strict upper triangle is untouched: rebuild the lower one from it, and the diagonal.
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < i; j++) A[i * n + j] = A[j * n + i]!;
      A[i * n + i] = diag[n - 1 - i]!;
    }
    A.reverse();
    return false;
  }
  invertLower(A, n);
  for (let i = 0; i < n; i++) A.fill(0, i * n + i + 1, (i + 1) * n);
  A.reverse();
  return true;
}

/** A⁻¹ (full, symmetric, new array) from A's lower Cholesky factor L: A⁻¹ = L⁻ᵀ L⁻¹ (torch.cholesky_inverse). */
export function choleskyInverse(L: Float64Array, n: number): Float64Array {
  const X = L.slice();
  invertLower(X, n);
  const R = new Float64Array(n * n);
  // R[i][j] = Σ_{k ≥ i} X[k][i] X[k][j] for j ≤ i: rank-1 updates by rows k of X.
  for (let k = 0; k < n; k++) {
    const rk = k * n;
    for (let i = 0; i <= k; i++) {
      const x = X[rk + i]!, ri = i * n;
      for (let j = 0; j <= i; j++) R[ri + j]! += x * X[rk + j]!;
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) R[j * n + i] = R[i * n + j]!;
  return R;
}
