// The native kernels: same contract as src/backend/cpu/kernels/kernels.ts (row-major, outputs
// preallocated by the caller, lengths already checked by the N-API glue in addon.cc).
#pragma once
#include <cstdint>

void lb_set_threads(int threads);
int lb_threads();

void lb_gemm(const float* x, const float* w, float* y, int M, int N, int K);
void lb_gemm_half(const float* x, const uint16_t* w, bool bf16, float* y, int M, int N, int K);
// training's gradient products (src/train): y[M,K] = dy[M,N]·w[N,K] (w f32, or bf16/f16 bits) and
// y[N,K] = a[M,N]ᵀ·b[M,K], on fixed tile grids like lb_gemm (results independent of the thread count)
void lb_gemm_nn(const float* dy, const float* w, float* y, int M, int N, int K);
void lb_gemm_nn_half(const float* dy, const uint16_t* w, bool bf16, float* y, int M, int N, int K);
void lb_gemm_tn(const float* a, const float* b, float* y, int M, int N, int K);
void lb_rmsnorm(const float* x, const float* gamma, float* y, int M, int D, double eps);
void lb_rope(float* x, int T, int nHeads, int headDim, const float* cos, const float* sin);
void lb_attention(const float* q, const float* k, const float* v, float* out,
                  int T, int S, int offset, int nHeads, int nKvHeads, int headDim);
void lb_silu_mul(const float* gate, const float* up, float* out, int64_t n);
void lb_nll(const float* logits, const int32_t* targets, double* out, int T, int V);

void lb_gram(const float* x, double* S, int n, int K);
void lb_gram_f32(const float* x, double* S, int n, int K);
bool lb_cholesky(double* A, int n);
void lb_triangular_inverse(double* L, int n);
bool lb_cholesky_inverse(double* A, int n);
