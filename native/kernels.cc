// Native CPU kernels. gemm goes to OpenBLAS sgemm on a fixed grid of tiles (each tile one
// single-threaded BLAS call, tiles spread over our own pool), so results never depend on the thread
// count; bf16/f16 weights are decoded a tile's rows at a time into a panel and go through the very
// same sgemm call. The other ops are plain loops written so that GCC vectorizes them (partial sums
// in fixed lanes, no -ffast-math), threaded over fixed chunks of rows. Float64 factorizations call
// LAPACK. Reference: src/backend/cpu/kernels/js.ts and jsLinalg.ts.
#include "kernels.h"
#include "linalg64.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "pool.h"

extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dtrtri_(const char* uplo, const char* diag, const int* n, double* a, const int* lda, int* info);
void openblas_set_num_threads(int);
}

namespace {
Pool pool;

// Tile sizes of the fixed work grid. Changing them changes results (in the last bits); changing
// the thread count does not.
constexpr int GEMM_MC = 512;   // rows of x per gemm tile
constexpr int GEMM_NC = 256;   // rows of w per gemm tile
constexpr int ROWS_PER_TASK = 8;  // rmsnorm / rope / nll rows per task
constexpr int64_t ELEMS_PER_TASK = 1 << 16;  // siluMul
constexpr int GRAM_ROWS = 256;  // rows of x converted to float64 at once
constexpr int GRAM_TILE = 256;  // H tile edge
constexpr int GRAM_F32_ROWS = 2048;  // longest float32 sum of gram_f32 (gptq.py: one 2048-token sequence)
constexpr int LANES = 16;       // partial sums of the dot products

int ceil_div(int64_t a, int64_t b) { return (int)((a + b - 1) / b); }

// One gemm tile, always the same single-threaded BLAS call for the same (M, N, K) sub-problem.
void gemm_tile(const float* x, const float* w, float* y, int mr, int nr, int K, int ldy) {
  if (mr == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, nr, K, 1.0f, w, K, x, 1, 0.0f, y, 1);
  else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mr, nr, K, 1.0f, x, K, w, K, 0.0f, y, ldy);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
  if (e == 0) {
    float v = (float)m * 5.9604644775390625e-8f;  // m · 2⁻²⁴, exact
    return sign ? -v : v;
  }
  if (e == 31) bits = sign | 0x7f800000u | (m << 13);
  else bits = sign | ((e + 112) << 23) | (m << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void decode_half(const uint16_t* src, bool bf16, float* dst, int64_t n) {
  if (bf16) {
    uint32_t* d = reinterpret_cast<uint32_t*>(dst);
    for (int64_t i = 0; i < n; i++) d[i] = (uint32_t)src[i] << 16;
  } else {
    for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(src[i]);
  }
}

float dot(const float* a, const float* b, int n) {
  float acc[LANES] = {0};
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int j = 0; j < LANES; j++) acc[j] += a[i + j] * b[i + j];
  for (int j = 0; i < n; i++, j++) acc[j] += a[i] * b[i];
  for (int s = LANES / 2; s > 0; s /= 2)
    for (int j = 0; j < s; j++) acc[j] += acc[j + s];
  return acc[0];
}
}  // namespace

void lb_set_threads(int threads) {
  openblas_set_num_threads(1);  // BLAS runs single-threaded inside each of our tiles
  pool.resize(std::max(1, threads));
}
int lb_threads() { return pool.size(); }

void lb_gemm(const float* x, const float* w, float* y, int M, int N, int K) {
  const int mt = ceil_div(M, GEMM_MC), nt = ceil_div(N, GEMM_NC);
  pool.run(mt * nt, [&](int task) {
    const int m0 = (task / nt) * GEMM_MC, n0 = (task % nt) * GEMM_NC;
    const int mr = std::min(GEMM_MC, M - m0), nr = std::min(GEMM_NC, N - n0);
    gemm_tile(x + (int64_t)m0 * K, w + (int64_t)n0 * K, y + (int64_t)m0 * N + n0, mr, nr, K, N);
  });
}

void lb_gemm_half(const float* x, const uint16_t* w, bool bf16, float* y, int M, int N, int K) {
  // Tiles over w rows first (decode once per tile row block), then all row blocks of x.
  const int mt = ceil_div(M, GEMM_MC), nt = ceil_div(N, GEMM_NC);
  pool.run(nt, [&](int nb) {
    const int n0 = nb * GEMM_NC, nr = std::min(GEMM_NC, N - n0);
    thread_local std::vector<float> panel;
    panel.resize((size_t)nr * K);
    decode_half(w + (int64_t)n0 * K, bf16, panel.data(), (int64_t)nr * K);
    for (int mb = 0; mb < mt; mb++) {
      const int m0 = mb * GEMM_MC, mr = std::min(GEMM_MC, M - m0);
      gemm_tile(x + (int64_t)m0 * K, panel.data(), y + (int64_t)m0 * N + n0, mr, nr, K, N);
    }
  });
}

void lb_gemm_nn(const float* dy, const float* w, float* y, int M, int N, int K) {
  // tiles of GEMM_MC rows of dy × GEMM_NC columns of w: one single-threaded sgemm each, w read in place
  const int mt = ceil_div(M, GEMM_MC), kt = ceil_div(K, GEMM_NC);
  pool.run(mt * kt, [&](int task) {
    const int m0 = (task / kt) * GEMM_MC, k0 = (task % kt) * GEMM_NC;
    const int mr = std::min(GEMM_MC, M - m0), kr = std::min(GEMM_NC, K - k0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mr, kr, N, 1.0f, dy + (int64_t)m0 * N, N, w + k0, K, 0.0f,
                y + (int64_t)m0 * K + k0, K);
  });
}

void lb_gemm_nn_half(const float* dy, const uint16_t* w, bool bf16, float* y, int M, int N, int K) {
  // a column panel w[:, k0:k0+kr] decoded once per task, then every row block of dy
  const int mt = ceil_div(M, GEMM_MC), kt = ceil_div(K, GEMM_NC);
  pool.run(kt, [&](int kb) {
    const int k0 = kb * GEMM_NC, kr = std::min(GEMM_NC, K - k0);
    thread_local std::vector<float> panel;
    panel.resize((size_t)N * kr);
    for (int n = 0; n < N; n++) decode_half(w + (int64_t)n * K + k0, bf16, panel.data() + (int64_t)n * kr, kr);
    for (int mb = 0; mb < mt; mb++) {
      const int m0 = mb * GEMM_MC, mr = std::min(GEMM_MC, M - m0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mr, kr, N, 1.0f, dy + (int64_t)m0 * N, N, panel.data(), kr, 0.0f,
                  y + (int64_t)m0 * K + k0, K);
    }
  });
}

void lb_gemm_tn(const float* a, const float* b, float* y, int M, int N, int K) {
  // tiles of GEMM_MC rows of y (columns of a) × GEMM_NC columns of b, each summing over all M rows
  const int nt = ceil_div(N, GEMM_MC), kt = ceil_div(K, GEMM_NC);
  pool.run(nt * kt, [&](int task) {
    const int n0 = (task / kt) * GEMM_MC, k0 = (task % kt) * GEMM_NC;
    const int nr = std::min(GEMM_MC, N - n0), kr = std::min(GEMM_NC, K - k0);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nr, kr, M, 1.0f, a + n0, N, b + k0, K, 0.0f,
                y + (int64_t)n0 * K + k0, K);
  });
}

void lb_rmsnorm(const float* x, const float* gamma, float* y, int M, int D, double eps) {
  pool.run(ceil_div(M, ROWS_PER_TASK), [&](int task) {
    const int m1 = std::min(M, (task + 1) * ROWS_PER_TASK);
    for (int m = task * ROWS_PER_TASK; m < m1; m++) {
      const float* xr = x + (int64_t)m * D;
      float* yr = y + (int64_t)m * D;
      double acc[LANES] = {0};
      int i = 0;
      for (; i + LANES <= D; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += (double)xr[i + j] * xr[i + j];
      for (int j = 0; i < D; i++, j++) acc[j] += (double)xr[i] * xr[i];
      for (int s = LANES / 2; s > 0; s /= 2)
        for (int j = 0; j < s; j++) acc[j] += acc[j + s];
      const double r = 1.0 / std::sqrt(acc[0] / D + eps);
      for (int c = 0; c < D; c++) yr[c] = (float)((double)(float)(xr[c] * r) * gamma[c]);
    }
  });
}

void lb_rope(float* x, int T, int nHeads, int headDim, const float* cos, const float* sin) {
  const int half = headDim / 2, width = nHeads * headDim;
  pool.run(ceil_div(T, ROWS_PER_TASK), [&](int task) {
    const int t1 = std::min(T, (task + 1) * ROWS_PER_TASK);
    for (int t = task * ROWS_PER_TASK; t < t1; t++) {
      const float* c = cos + (int64_t)t * half;
      const float* s = sin + (int64_t)t * half;
      for (int h = 0; h < nHeads; h++) {
        float* o = x + (int64_t)t * width + (int64_t)h * headDim;
        for (int i = 0; i < half; i++) {  // products of floats are exact in double: same as js
          const double a = o[i], b = o[i + half];
          o[i] = (float)(a * c[i] - b * s[i]);
          o[i + half] = (float)(b * c[i] + a * s[i]);
        }
      }
    }
  });
}

void lb_attention(const float* q, const float* k, const float* v, float* out,
                  int T, int S, int offset, int nHeads, int nKvHeads, int headDim) {
  const int group = nHeads / nKvHeads, qw = nHeads * headDim, kw = nKvHeads * headDim;
  const float scale = (float)(1.0 / std::sqrt((double)headDim));
  pool.run(nHeads * T, [&](int task) {  // one (head, query row) per task
    const int h = task / T, t = task % T, kh = h / group, last = offset + t;
    thread_local std::vector<float> p;
    p.resize(S);
    const float* qr = q + (int64_t)t * qw + (int64_t)h * headDim;
    float mx = -INFINITY;
    for (int s = 0; s <= last; s++) {
      const float d = dot(qr, k + (int64_t)s * kw + (int64_t)kh * headDim, headDim) * scale;
      p[s] = d;
      if (d > mx) mx = d;
    }
    double sum = 0;
    for (int s = 0; s <= last; s++) { p[s] = std::exp(p[s] - mx); sum += p[s]; }
    const float inv = (float)(1.0 / sum);
    float* o = out + (int64_t)t * qw + (int64_t)h * headDim;
    for (int i = 0; i < headDim; i++) o[i] = 0;
    for (int s = 0; s <= last; s++) {
      const float ps = p[s] * inv;
      const float* vr = v + (int64_t)s * kw + (int64_t)kh * headDim;
      for (int i = 0; i < headDim; i++) o[i] += ps * vr[i];
    }
  });
}

void lb_silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  pool.run(ceil_div(n, ELEMS_PER_TASK), [&](int task) {
    const int64_t i1 = std::min(n, (int64_t)(task + 1) * ELEMS_PER_TASK);
    for (int64_t i = (int64_t)task * ELEMS_PER_TASK; i < i1; i++) {
      const double g = gate[i];
      out[i] = (float)((g / (1.0 + std::exp(-g))) * up[i]);
    }
  });
}

void lb_nll(const float* logits, const int32_t* targets, double* out, int T, int V) {
  pool.run(ceil_div(T, ROWS_PER_TASK), [&](int task) {
    const int t1 = std::min(T, (task + 1) * ROWS_PER_TASK);
    for (int t = task * ROWS_PER_TASK; t < t1; t++) {
      const float* l = logits + (int64_t)t * V;
      float mx = -INFINITY;
      for (int i = 0; i < V; i++) if (l[i] > mx) mx = l[i];
      double acc[4] = {0, 0, 0, 0};
      int i = 0;
      for (; i + 4 <= V; i += 4)
        for (int j = 0; j < 4; j++) acc[j] += std::exp((double)l[i + j] - mx);
      for (int j = 0; i < V; i++, j++) acc[j] += std::exp((double)l[i] - mx);
      const double sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
      out[t] = (double)mx + std::log(sum) - (double)l[targets[t]];
    }
  });
}

// Upper-triangle tile `task` of a kt × kt tile grid: tiles (bi, bj) with bj >= bi, in a fixed order.
static void upper_tile(int task, int K, int& i0, int& j0, int& ni, int& nj) {
  int b = 0;
  while ((b + 1) * (b + 2) / 2 <= task) b++;
  const int a = task - b * (b + 1) / 2;  // a <= b
  i0 = a * GRAM_TILE;
  j0 = b * GRAM_TILE;
  ni = std::min(GRAM_TILE, K - i0);
  nj = std::min(GRAM_TILE, K - j0);
}

void lb_gram(const float* x, double* S, int n, int K) {
  // S += xᵀx on the upper triangle's tiles (float64 products and sums: x is widened GRAM_ROWS rows at
  // a time, each tile one dgemm per block of rows). Below the diagonal only diagonal tiles are written.
  std::vector<double> xd((size_t)std::min(n, GRAM_ROWS) * K);
  const int kt = ceil_div(K, GRAM_TILE), ntiles = kt * (kt + 1) / 2;
  for (int r0 = 0; r0 < n; r0 += GRAM_ROWS) {
    const int rows = std::min(GRAM_ROWS, n - r0);
    for (int64_t i = 0; i < (int64_t)rows * K; i++) xd[i] = x[(int64_t)r0 * K + i];
    pool.run(ntiles, [&](int task) {
      int i0, j0, ni, nj;
      upper_tile(task, K, i0, j0, ni, nj);
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, nj, rows, 1.0, xd.data() + i0, K,
                  xd.data() + j0, K, 1.0, S + (int64_t)i0 * K + j0, K);
    });
  }
}

void lb_gram_f32(const float* x, double* S, int n, int K) {
  // gptq.py's precision: per run of at most GRAM_F32_ROWS rows (one calibration sequence), xᵀx is one
  // float32 sgemm per upper tile, and the tile is added into S in float64. No widened copy of x.
  const int kt = ceil_div(K, GRAM_TILE), ntiles = kt * (kt + 1) / 2;
  for (int r0 = 0; r0 < n; r0 += GRAM_F32_ROWS) {
    const int rows = std::min(GRAM_F32_ROWS, n - r0);
    const float* xr = x + (int64_t)r0 * K;
    pool.run(ntiles, [&](int task) {
      thread_local std::vector<float> tile;
      tile.resize((size_t)GRAM_TILE * GRAM_TILE);
      int i0, j0, ni, nj;
      upper_tile(task, K, i0, j0, ni, nj);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, nj, rows, 1.0f, xr + i0, K, xr + j0, K, 0.0f,
                  tile.data(), nj);
      for (int i = 0; i < ni; i++) {
        double* s = S + (int64_t)(i0 + i) * K + j0;
        const float* t = tile.data() + (int64_t)i * nj;
        for (int j = 0; j < nj; j++) s[j] += (double)t[j];
      }
    });
  }
}

// Row-major lower triangle == column-major upper triangle: LAPACK is called with uplo 'U'.
static void zero_strict_upper(double* A, int n) {
  for (int i = 0; i < n; i++) std::fill(A + (int64_t)i * n + i + 1, A + (int64_t)(i + 1) * n, 0.0);
}

// OpenBLAS's potrf lets a NaN pivot through; the contract (and js) say "not positive definite".
static bool pivots_ok(const double* L, int n) {
  for (int i = 0; i < n; i++) if (!(L[(int64_t)i * n + i] > 0)) return false;
  return true;
}

bool lb_cholesky(double* A, int n) {
  int info = 0;
  if (n == 0) return true;
  dpotrf_("U", &n, A, &n, &info);
  if (info != 0 || !pivots_ok(A, n)) return false;
  zero_strict_upper(A, n);
  return true;
}

void lb_triangular_inverse(double* L, int n) {
  int info = 0;
  if (n == 0) return;
  dtrtri_("U", "N", &n, L, &n, &info);  // info > 0: exactly singular; leaves inf/nan like the js loop
  zero_strict_upper(L, n);
}

bool lb_cholesky_inverse(double* A, int n) {
  int info = 0;
  if (n == 0) return true;
  dpotrf_("U", &n, A, &n, &info);
  if (info != 0 || !pivots_ok(A, n)) return false;
  dpotri_("U", &n, A, &n, &info);
  if (info != 0) return false;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++) A[(int64_t)j * n + i] = A[(int64_t)i * n + j];
  return true;
}
