// Float64 linear algebra of linalg64.cc (row-major; lengths checked by the N-API glue in addon.cc).
#pragma once

// y[M,N] = x[M,K] · w[N,K]ᵀ in float64 (dgemm on a fixed tile grid).
void lb_gemm_f64(const double* x, const double* w, double* y, int M, int N, int K);
// In place: A (symmetric, lower triangle read) becomes the eigenvectors (column j = eigenvector j,
// largest |component| positive), values the ascending eigenvalues. False if dsyevd fails.
bool lb_symmetric_eigen(double* A, double* values, int n);
// Thin QR of A[m,n], m ≥ n: Q[m,n] with orthonormal columns, R[n,n] upper with diagonal ≥ 0.
bool lb_qr(const double* A, int m, int n, double* Q, double* R);
