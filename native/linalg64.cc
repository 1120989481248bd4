// Float64 dense linear algebra for the quantizers beyond Cholesky (kernels.cc): an exact float64
// GEMM for GPTQ's lazy batch update (BLAS dgemm on a fixed grid of tiles, like lb_gemm, so results
// never depend on the thread count), the symmetric eigendecomposition (LAPACK dsyevd) and the thin
// QR factorization (LAPACK dgeqrf + dorgqr). Row-major in and out; LAPACK is column-major, so a
// row-major symmetric matrix is passed as it is (uplo 'U' of the column-major view is our lower
// triangle) and the rectangular ones are transposed on the way in and out.
// Reference: src/backend/cpu/kernels/jsLinalg.ts (gemmF64, symmetricEigen, qr).
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "linalg64.h"
#include "kernels.h"

extern "C" {
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
             double* work, const int* lwork, int* iwork, const int* liwork, int* info);
void dgeqrf_(const int* m, const int* n, double* a, const int* lda, double* tau, double* work,
             const int* lwork, int* info);
void dorgqr_(const int* m, const int* n, const int* k, double* a, const int* lda, const double* tau,
             double* work, const int* lwork, int* info);
}

namespace {

constexpr int DGEMM_MC = 256;  // rows of x per tile
constexpr int DGEMM_NC = 256;  // rows of w per tile
constexpr int TILE = 64;       // transpose tile edge

int ceil_div(int64_t a, int64_t b) { return (int)((a + b - 1) / b); }

// Runs f(0..n-1) on up to lb_threads() threads; what task i computes never depends on who runs it.
template <typename F>
void parallel(int n, const F& f) {
  const int t = std::min(n, lb_threads());
  if (t <= 1) {
    for (int i = 0; i < n; i++) f(i);
    return;
  }
  std::atomic<int> next{0};
  auto work = [&] {
    for (int i; (i = next.fetch_add(1)) < n;) f(i);
  };
  std::vector<std::thread> th;
  for (int i = 1; i < t; i++) th.emplace_back(work);
  work();
  for (auto& x : th) x.join();
}

// dst[c, r] = src[r, c] for src rows × cols (row-major), in cache-sized tiles.
void transpose(const double* src, double* dst, int rows, int cols) {
  for (int r0 = 0; r0 < rows; r0 += TILE)
    for (int c0 = 0; c0 < cols; c0 += TILE) {
      const int r1 = std::min(rows, r0 + TILE), c1 = std::min(cols, c0 + TILE);
      for (int r = r0; r < r1; r++)
        for (int c = c0; c < c1; c++) dst[(int64_t)c * rows + r] = src[(int64_t)r * cols + c];
    }
}

// LAPACK runs with OpenBLAS single-threaded (lb_set_threads keeps it so): threaded OpenBLAS sums
// level-2 partial results in an order that depends on the thread count (dsymv inside dsytrd), and
// the contract wants the same bits for any thread count.

}  // namespace

void lb_gemm_f64(const double* x, const double* w, double* y, int M, int N, int K) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    std::fill(y, y + (int64_t)M * N, 0.0);
    return;
  }
  const int mt = ceil_div(M, DGEMM_MC), nt = ceil_div(N, DGEMM_NC);
  parallel(mt * nt, [&](int task) {
    const int m0 = (task / nt) * DGEMM_MC, n0 = (task % nt) * DGEMM_NC;
    const int mr = std::min(DGEMM_MC, M - m0), nr = std::min(DGEMM_NC, N - n0);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mr, nr, K, 1.0, x + (int64_t)m0 * K, K,
                w + (int64_t)n0 * K, K, 0.0, y + (int64_t)m0 * N + n0, N);
  });
}

bool lb_symmetric_eigen(double* A, double* values, int n) {
  if (n == 0) return true;
  for (int i = 0; i < n; i++)
    for (int j = 0; j <= i; j++) if (!std::isfinite(A[(int64_t)i * n + j])) return false;
  int info = 0, lwork = -1, liwork = -1, iq = 0;
  double wq = 0;
  dsyevd_("V", "U", &n, A, &n, values, &wq, &lwork, &iq, &liwork, &info);
  if (info != 0) return false;
  lwork = (int)wq;
  liwork = iq;
  std::vector<double> work((size_t)std::max(1, lwork));
  std::vector<int> iwork((size_t)std::max(1, liwork));
  dsyevd_("V", "U", &n, A, &n, values, work.data(), &lwork, iwork.data(), &liwork, &info);
  if (info != 0) return false;
  // Column-major Z: eigenvector j is row j of our buffer. Fix its sign (largest |component|, the
  // first of equals, positive), then transpose so that column j holds it.
  for (int j = 0; j < n; j++) {
    double* v = A + (int64_t)j * n;
    int best = 0;
    for (int i = 1; i < n; i++) if (std::fabs(v[i]) > std::fabs(v[best])) best = i;
    if (v[best] < 0) for (int i = 0; i < n; i++) v[i] = -v[i];
  }
  std::vector<double> t((size_t)n * n);
  transpose(A, t.data(), n, n);
  std::memcpy(A, t.data(), sizeof(double) * (size_t)n * n);
  return true;
}

bool lb_qr(const double* A, int m, int n, double* Q, double* R) {
  if (n == 0) return true;
  if (m < n) return false;
  std::vector<double> a((size_t)m * n), tau((size_t)n);
  transpose(A, a.data(), m, n);  // column-major m × n
  int info = 0, lwork = -1;
  double wq = 0;
  dgeqrf_(&m, &n, a.data(), &m, tau.data(), &wq, &lwork, &info);
  if (info != 0) return false;
  lwork = std::max(1, (int)wq);
  std::vector<double> work((size_t)lwork);
  dgeqrf_(&m, &n, a.data(), &m, tau.data(), work.data(), &lwork, &info);
  if (info != 0) return false;
  // R (row-major n × n) from the upper triangle of the column-major factor; diagonal made ≥ 0.
  std::vector<double> sign((size_t)n);
  for (int i = 0; i < n; i++) {
    const double d = a[(size_t)i * m + i];
    sign[i] = d < 0 ? -1.0 : 1.0;
    double* r = R + (int64_t)i * n;
    std::fill(r, r + i, 0.0);
    for (int j = i; j < n; j++) r[j] = sign[i] * a[(size_t)j * m + i];
  }
  lwork = -1;
  dorgqr_(&m, &n, &n, a.data(), &m, tau.data(), &wq, &lwork, &info);
  if (info != 0) return false;
  lwork = std::max(1, (int)wq);
  work.assign((size_t)lwork, 0.0);
  dorgqr_(&m, &n, &n, a.data(), &m, tau.data(), work.data(), &lwork, &info);
  if (info != 0) return false;
  for (int j = 0; j < n; j++)
    if (sign[j] < 0) for (int i = 0; i < m; i++) a[(size_t)j * m + i] = -a[(size_t)j * m + i];
  transpose(a.data(), Q, n, m);  // column-major m × n (= row-major n × m) to row-major m × n
  return true;
}
