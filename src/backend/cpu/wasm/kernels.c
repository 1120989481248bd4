// WebAssembly SIMD (128-bit) kernels of the 'wasm' provider. Reference: ../kernels/js.ts.
// Built by scripts/build-wasm.mjs: clang --target=wasm32 -msimd128 -matomics, freestanding (no libc),
// shared imported memory. Every op is cut into tasks on a grid that depends only on the shapes
// (plan()); pool.ts hands tasks to threads, and a task computes the same bits on any thread.
// The code keeps no data on the C stack and has no static data, so instances on several threads
// can share one memory without per-thread stacks. exp/log are written here (no libm).
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))

// The job block, written by pool.ts (see CTRL_* there): one per pool, at a fixed address.
typedef struct {
  int32_t gen, op, ntasks, next, done, error, ready, scratch_bytes;
  int32_t a[16];  // op arguments: byte addresses and sizes
  double eps;
} Job;

enum { OP_GEMM = 1, OP_RMSNORM, OP_ROPE, OP_ATTENTION, OP_SILU_MUL, OP_NLL,
       OP_GEMM_F64, OP_CHOL_DIAG, OP_CHOL_PANEL, OP_CHOL_UPDATE, OP_TRI_TRMM, OP_TRI_TRSM, OP_TRI_DIAG, OP_TRI_TRANS, OP_GRAM_TRANS, OP_GRAM };
enum { W_F32 = 0, W_BF16 = 1, W_F16 = 2 };

#define ROWS_PER_TASK 8
#define ELEMS_PER_TASK 65536
#define GEMM_MB 64  // rows of x per task
#define LA_TILE 64  // float64 linear algebra: the trailing update's square tiles, rows per panel task

static inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
static inline int min_i(int a, int b) { return a < b ? a : b; }

// ---- math: exp and log in double, exp in float (no libm in a freestanding wasm build) -------------

static inline double bits_f64(uint64_t b) { union { uint64_t u; double d; } v = {b}; return v.d; }
static inline double pow2i(int k) { return bits_f64((uint64_t)(k + 1023) << 52); }  // -1022 <= k <= 1023

// exp(x) = 2^k · exp(r), r = x − k·ln2 in [−ln2/2, ln2/2], Taylor series to r¹³ (error < 1 ulp-ish).
static double exp_f64(double x) {
  if (x != x) return x;
  if (x > 709.782712893384) return __builtin_inf();
  if (x < -745.1332191019412) return 0.0;
  const double k = __builtin_nearbyint(x * 1.4426950408889634);
  const double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const int ki = (int)k;
  if (ki < -1000) return p * pow2i(ki + 1000) * pow2i(-1000);  // gradual underflow
  if (ki > 1000) return p * pow2i(ki - 1000) * pow2i(1000);
  return p * pow2i(ki);
}

// log(x) = e·ln2 + 2·atanh(s), x = m·2^e with m in [√½, √2), s = (m−1)/(m+1).
static double log_f64(double x) {
  if (x != x || x < 0) return __builtin_nan("");
  if (x == 0) return -__builtin_inf();
  if (x == __builtin_inf()) return x;
  union { double d; uint64_t u; } v = {x};
  int e = 0;
  if ((v.u >> 52) == 0) { v.d *= 18014398509481984.0; e = -54; }  // subnormal: scale by 2^54
  e += (int)(v.u >> 52) - 1023;
  v.u = (v.u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
  if (v.d > 1.4142135623730951) { v.d *= 0.5; e++; }
  const double s = (v.d - 1) / (v.d + 1), s2 = s * s;
  double p = 1.0 / 23;
  for (int i = 21; i >= 1; i -= 2) p = p * s2 + 1.0 / i;
  return e * 6.93147180369123816490e-01 + (e * 1.90821492927058770002e-10 + 2 * s * p);
}

static inline float exp_f32(float x) { return (float)exp_f64((double)x); }

// ---- gemm ------------------------------------------------------------------------------------------
// y[m,n] = Σ_k x[m,k]·w[n,k]: four f32 lanes over k (k ≡ lane mod 4), lanes summed as
// (l0 + l1) + (l2 + l3), then the K mod 4 tail added in order. Every kernel below computes each
// output exactly this way, so tiles and tails give the same bits.

static inline float hsum(v128_t a) {
  return (wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 1)) +
         (wasm_f32x4_extract_lane(a, 2) + wasm_f32x4_extract_lane(a, 3));
}

static float dot1(const float* x, const float* w, int K) {
  v128_t acc = wasm_f32x4_splat(0);
  int k = 0;
  for (; k + 4 <= K; k += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(x + k), wasm_v128_load(w + k)));
  float s = hsum(acc);
  for (; k < K; k++) s += x[k] * w[k];
  return s;
}

// 2 rows of x by 4 rows of w.
static void dot2x4(const float* x0, const float* w0, float* y0, int K, int N) {
  const float *x1 = x0 + K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
  v128_t a00 = wasm_f32x4_splat(0), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  int k = 0;
  for (; k + 4 <= K; k += 4) {
    const v128_t p = wasm_v128_load(x0 + k), q = wasm_v128_load(x1 + k);
    const v128_t b0 = wasm_v128_load(w0 + k), b1 = wasm_v128_load(w1 + k);
    const v128_t b2 = wasm_v128_load(w2 + k), b3 = wasm_v128_load(w3 + k);
    a00 = wasm_f32x4_add(a00, wasm_f32x4_mul(p, b0)); a01 = wasm_f32x4_add(a01, wasm_f32x4_mul(p, b1));
    a02 = wasm_f32x4_add(a02, wasm_f32x4_mul(p, b2)); a03 = wasm_f32x4_add(a03, wasm_f32x4_mul(p, b3));
    a10 = wasm_f32x4_add(a10, wasm_f32x4_mul(q, b0)); a11 = wasm_f32x4_add(a11, wasm_f32x4_mul(q, b1));
    a12 = wasm_f32x4_add(a12, wasm_f32x4_mul(q, b2)); a13 = wasm_f32x4_add(a13, wasm_f32x4_mul(q, b3));
  }
  float s00 = hsum(a00), s01 = hsum(a01), s02 = hsum(a02), s03 = hsum(a03);
  float s10 = hsum(a10), s11 = hsum(a11), s12 = hsum(a12), s13 = hsum(a13);
  for (; k < K; k++) {
    s00 += x0[k] * w0[k]; s01 += x0[k] * w1[k]; s02 += x0[k] * w2[k]; s03 += x0[k] * w3[k];
    s10 += x1[k] * w0[k]; s11 += x1[k] * w1[k]; s12 += x1[k] * w2[k]; s13 += x1[k] * w3[k];
  }
  float* y1 = y0 + N;
  y0[0] = s00; y0[1] = s01; y0[2] = s02; y0[3] = s03;
  y1[0] = s10; y1[1] = s11; y1[2] = s12; y1[3] = s13;
}

// w rows per task: a block of w that stays in L2 while the task's rows of x pass over it.
static int gemm_nb(int K) {
  int nb = (256 * 1024 / 4) / (K > 0 ? K : 1);
  nb = nb < 4 ? 4 : nb > 256 ? 256 : nb;
  return nb & ~3;
}

static void decode_rows(const uint16_t* src, int dtype, float* dst, int n) {
  int i = 0;
  if (dtype == W_BF16) {
    for (; i + 8 <= n; i += 8) {
      const v128_t h = wasm_v128_load(src + i);
      wasm_v128_store(dst + i, wasm_i32x4_shl(wasm_u32x4_extend_low_u16x8(h), 16));
      wasm_v128_store(dst + i + 4, wasm_i32x4_shl(wasm_u32x4_extend_high_u16x8(h), 16));
    }
    for (; i < n; i++) ((uint32_t*)dst)[i] = (uint32_t)src[i] << 16;
    return;
  }
  for (; i < n; i++) {
    const uint32_t h = src[i], sign = (h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) { const float v = (float)m * 5.9604644775390625e-8f; dst[i] = sign ? -v : v; }
    else ((uint32_t*)dst)[i] = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e + 112) << 23) | (m << 13));
  }
}

static void gemm_task(const Job* j, int task, float* scratch) {
  const float* x = (const float*)j->a[0];
  const int M = j->a[3], N = j->a[4], K = j->a[5], dtype = j->a[6];
  float* y = (float*)j->a[2];
  const int nb = gemm_nb(K), mblocks = ceil_div(M, GEMM_MB);
  const int n0 = (task / mblocks) * nb, m0 = (task % mblocks) * GEMM_MB;
  const int n1 = min_i(N, n0 + nb), m1 = min_i(M, m0 + GEMM_MB);
  const float* w;
  if (dtype == W_F32) w = (const float*)j->a[1] + (int64_t)n0 * K;
  else { decode_rows((const uint16_t*)j->a[1] + (int64_t)n0 * K, dtype, scratch, (n1 - n0) * K); w = scratch; }
  int n = n0;
  for (; n + 4 <= n1; n += 4) {
    const float* wn = w + (int64_t)(n - n0) * K;
    int m = m0;
    for (; m + 2 <= m1; m += 2) dot2x4(x + (int64_t)m * K, wn, y + (int64_t)m * N + n, K, N);
    for (; m < m1; m++)
      for (int c = 0; c < 4; c++) y[(int64_t)m * N + n + c] = dot1(x + (int64_t)m * K, wn + (int64_t)c * K, K);
  }
  for (; n < n1; n++)
    for (int m = m0; m < m1; m++) y[(int64_t)m * N + n] = dot1(x + (int64_t)m * K, w + (int64_t)(n - n0) * K, K);
}

// ---- row-wise ops ------------------------------------------------------------------------------------

static void rmsnorm_task(const Job* j, int task) {
  const float *x = (const float*)j->a[0], *g = (const float*)j->a[1];
  float* y = (float*)j->a[2];
  const int M = j->a[3], D = j->a[4];
  for (int m = task * ROWS_PER_TASK, m1 = min_i(M, m + ROWS_PER_TASK); m < m1; m++) {
    const float* xr = x + (int64_t)m * D;
    float* yr = y + (int64_t)m * D;
    v128_t s0 = wasm_f64x2_splat(0), s1 = s0;  // float64 sums, as in js
    int i = 0;
    for (; i + 4 <= D; i += 4) {
      const v128_t v = wasm_v128_load(xr + i);
      const v128_t lo = wasm_f64x2_promote_low_f32x4(v), hi = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
      s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(lo, lo));
      s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(hi, hi));
    }
    double ss = (wasm_f64x2_extract_lane(s0, 0) + wasm_f64x2_extract_lane(s0, 1)) +
                (wasm_f64x2_extract_lane(s1, 0) + wasm_f64x2_extract_lane(s1, 1));
    for (; i < D; i++) ss += (double)xr[i] * xr[i];
    const double r = 1.0 / __builtin_sqrt(ss / D + j->eps);
    for (int c = 0; c < D; c++) yr[c] = (float)((double)(float)(xr[c] * r) * g[c]);
  }
}

static void rope_task(const Job* j, int task) {
  float* x = (float*)j->a[0];
  const int T = j->a[1], H = j->a[2], hd = j->a[3], half = hd / 2;
  const float *cs = (const float*)j->a[4], *sn = (const float*)j->a[5];
  for (int t = task * ROWS_PER_TASK, t1 = min_i(T, t + ROWS_PER_TASK); t < t1; t++)
    for (int h = 0; h < H; h++) {
      float* o = x + (int64_t)t * H * hd + (int64_t)h * hd;
      const float *c = cs + (int64_t)t * half, *s = sn + (int64_t)t * half;
      for (int i = 0; i < half; i++) {  // float products are exact in double: the same bits as js
        const double a = o[i], b = o[i + half];
        o[i] = (float)(a * c[i] - b * s[i]);
        o[i + half] = (float)(b * c[i] + a * s[i]);
      }
    }
}

// One (head, query row) per task; scratch holds the S scores.
static void attention_task(const Job* j, int task, float* p) {
  const float *q = (const float*)j->a[0], *k = (const float*)j->a[1], *v = (const float*)j->a[2];
  float* out = (float*)j->a[3];
  const int T = j->a[4], offset = j->a[6], H = j->a[7], KVH = j->a[8], hd = j->a[9];
  const int h = task / T, t = task % T, kh = h / (H / KVH), qw = H * hd, kw = KVH * hd, last = offset + t;
  const float scale = (float)(1.0 / __builtin_sqrt((double)hd));
  const float* qr = q + (int64_t)t * qw + (int64_t)h * hd;
  float mx = -__builtin_inff();
  for (int s = 0; s <= last; s++) {
    const float d = dot1(qr, k + (int64_t)s * kw + (int64_t)kh * hd, hd) * scale;
    p[s] = d;
    if (d > mx) mx = d;
  }
  double sum = 0;
  for (int s = 0; s <= last; s++) { p[s] = exp_f32(p[s] - mx); sum += p[s]; }
  const float inv = (float)(1.0 / sum);
  float* o = out + (int64_t)t * qw + (int64_t)h * hd;
  int i = 0;
  for (; i + 4 <= hd; i += 4) {
    v128_t acc = wasm_f32x4_splat(0);
    for (int s = 0; s <= last; s++)
      acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_splat(p[s] * inv), wasm_v128_load(v + (int64_t)s * kw + (int64_t)kh * hd + i)));
    wasm_v128_store(o + i, acc);
  }
  for (; i < hd; i++) {
    float acc = 0;
    for (int s = 0; s <= last; s++) acc += (p[s] * inv) * v[(int64_t)s * kw + (int64_t)kh * hd + i];
    o[i] = acc;
  }
}

static void silu_task(const Job* j, int task) {
  const float *g = (const float*)j->a[0], *u = (const float*)j->a[1];
  float* out = (float*)j->a[2];
  const int n = j->a[3];
  for (int i = task * ELEMS_PER_TASK, i1 = min_i(n, i + ELEMS_PER_TASK); i < i1; i++) {
    const double x = g[i];
    out[i] = (float)((x / (1.0 + exp_f64(-x))) * u[i]);
  }
}

static void nll_task(const Job* j, int task) {
  const float* logits = (const float*)j->a[0];
  const int32_t* targets = (const int32_t*)j->a[1];
  double* out = (double*)j->a[2];
  const int T = j->a[3], V = j->a[4];
  for (int t = task * ROWS_PER_TASK, t1 = min_i(T, t + ROWS_PER_TASK); t < t1; t++) {
    const float* l = logits + (int64_t)t * V;
    v128_t m4 = wasm_f32x4_splat(-__builtin_inff());
    int i = 0;
    for (; i + 4 <= V; i += 4) m4 = wasm_f32x4_pmax(m4, wasm_v128_load(l + i));  // pmax = (m < l ? l : m): NaN skipped like js
    const float e0 = wasm_f32x4_extract_lane(m4, 0), e1 = wasm_f32x4_extract_lane(m4, 1);
    const float e2 = wasm_f32x4_extract_lane(m4, 2), e3 = wasm_f32x4_extract_lane(m4, 3);
    float mx = -__builtin_inff();
    if (e0 > mx) mx = e0;
    if (e1 > mx) mx = e1;
    if (e2 > mx) mx = e2;
    if (e3 > mx) mx = e3;
    for (; i < V; i++) if (l[i] > mx) mx = l[i];
    double sum = 0;
    for (i = 0; i < V; i++) sum += exp_f64((double)l[i] - mx);
    out[t] = (double)mx + log_f64(sum) - (double)l[targets[t]];
  }
}


// ---- float64 linear algebra (GPTQ's Hinv and lazy update; reference: ../kernels/jsLinalg.ts) ------
// Dot products of float64 rows: two lanes over k (k ≡ lane mod 2), lanes summed, then the odd tail.
// Every kernel below computes each dot product this way, so tiles, tails and threads give the same bits.
// Matrices are row-major; the square ones have n columns (lda = n). Blocked as LAPACK's dpotrf and
// dtrtri (block size: the caller's), each step an op whose tasks are cut by shape only.

static inline double hsum2(v128_t a) { return wasm_f64x2_extract_lane(a, 0) + wasm_f64x2_extract_lane(a, 1); }

static double ddot1(const double* x, const double* w, int K) {
  v128_t acc = wasm_f64x2_splat(0);
  int k = 0;
  for (; k + 2 <= K; k += 2) acc = wasm_f64x2_add(acc, wasm_f64x2_mul(wasm_v128_load(x + k), wasm_v128_load(w + k)));
  double s = hsum2(acc);
  if (k < K) s += x[k] * w[k];
  return s;
}

// y[0..1][0..3] (row stride ys) = dot(x row 0..1, w row 0..3) (mode 0), y −= it (mode −1) or y += it (mode 1);
// x rows xs apart, w rows ws apart.
static void ddot2x4(const double* x0, int64_t xs, const double* w0, int64_t ws, double* y0, int64_t ys, int K, int mode) {
  const double *x1 = x0 + xs, *w1 = w0 + ws, *w2 = w1 + ws, *w3 = w2 + ws;
  v128_t a00 = wasm_f64x2_splat(0), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  int k = 0;
  for (; k + 2 <= K; k += 2) {
    const v128_t p = wasm_v128_load(x0 + k), q = wasm_v128_load(x1 + k);
    const v128_t b0 = wasm_v128_load(w0 + k), b1 = wasm_v128_load(w1 + k);
    const v128_t b2 = wasm_v128_load(w2 + k), b3 = wasm_v128_load(w3 + k);
    a00 = wasm_f64x2_add(a00, wasm_f64x2_mul(p, b0)); a01 = wasm_f64x2_add(a01, wasm_f64x2_mul(p, b1));
    a02 = wasm_f64x2_add(a02, wasm_f64x2_mul(p, b2)); a03 = wasm_f64x2_add(a03, wasm_f64x2_mul(p, b3));
    a10 = wasm_f64x2_add(a10, wasm_f64x2_mul(q, b0)); a11 = wasm_f64x2_add(a11, wasm_f64x2_mul(q, b1));
    a12 = wasm_f64x2_add(a12, wasm_f64x2_mul(q, b2)); a13 = wasm_f64x2_add(a13, wasm_f64x2_mul(q, b3));
  }
  double s00 = hsum2(a00), s01 = hsum2(a01), s02 = hsum2(a02), s03 = hsum2(a03);
  double s10 = hsum2(a10), s11 = hsum2(a11), s12 = hsum2(a12), s13 = hsum2(a13);
  if (k < K) {
    s00 += x0[k] * w0[k]; s01 += x0[k] * w1[k]; s02 += x0[k] * w2[k]; s03 += x0[k] * w3[k];
    s10 += x1[k] * w0[k]; s11 += x1[k] * w1[k]; s12 += x1[k] * w2[k]; s13 += x1[k] * w3[k];
  }
  double* y1 = y0 + ys;
  if (mode > 0) {
    y0[0] += s00; y0[1] += s01; y0[2] += s02; y0[3] += s03;
    y1[0] += s10; y1[1] += s11; y1[2] += s12; y1[3] += s13;
  } else if (mode < 0) {
    y0[0] -= s00; y0[1] -= s01; y0[2] -= s02; y0[3] -= s03;
    y1[0] -= s10; y1[1] -= s11; y1[2] -= s12; y1[3] -= s13;
  } else {
    y0[0] = s00; y0[1] = s01; y0[2] = s02; y0[3] = s03;
    y1[0] = s10; y1[1] = s11; y1[2] = s12; y1[3] = s13;
  }
}

// w rows per task of gemm_f64: a block of w that stays in L2 (256 KiB) while the task's rows of x pass.
static int gemm_f64_nb(int K) {
  int nb = (256 * 1024 / 8) / (K > 0 ? K : 1);
  nb = nb < 4 ? 4 : nb > 256 ? 256 : nb;
  return nb & ~3;
}

// y[M,N] = x[M,K] · w[N,K]ᵀ.
static void gemm_f64_task(const Job* j, int task) {
  const double *x = (const double*)j->a[0], *w = (const double*)j->a[1];
  double* y = (double*)j->a[2];
  const int M = j->a[3], N = j->a[4], K = j->a[5];
  const int nb = gemm_f64_nb(K), mblocks = ceil_div(M, GEMM_MB);
  const int n0 = (task / mblocks) * nb, m0 = (task % mblocks) * GEMM_MB;
  const int n1 = min_i(N, n0 + nb), m1 = min_i(M, m0 + GEMM_MB);
  int n = n0;
  for (; n + 4 <= n1; n += 4) {
    int m = m0;
    for (; m + 2 <= m1; m += 2) ddot2x4(x + (int64_t)m * K, K, w + (int64_t)n * K, K, y + (int64_t)m * N + n, N, K, 0);
    for (; m < m1; m++)
      for (int c = 0; c < 4; c++) y[(int64_t)m * N + n + c] = ddot1(x + (int64_t)m * K, w + (int64_t)(n + c) * K, K);
  }
  for (; n < n1; n++)
    for (int m = m0; m < m1; m++) y[(int64_t)m * N + n] = ddot1(x + (int64_t)m * K, w + (int64_t)n * K, K);
}

// Gram step 1: xT[a, r] = x[r, a] in float64 (x float32 [N, K]; xT after S in the call's arrays), 64 columns a task.
static void gram_trans_task(const Job* j, int task) {
  const float* x = (const float*)j->a[0];
  double* xT = (double*)j->a[2];
  const int N = j->a[3], K = j->a[4];
  const int a0 = task * LA_TILE, a1 = min_i(K, a0 + LA_TILE);
  for (int r = 0; r < N; r++)
    for (int a = a0; a < a1; a++) xT[(int64_t)a * N + r] = (double)x[(int64_t)r * K + a];
}

// Gram step 2: S[a, b] += Σ_r xT[a, r]·xT[b, r] for b >= a (the upper triangle), LA_TILE-square tiles
// (tasks below the diagonal do nothing). float32 products are exact in float64.
static void gram_task(const Job* j, int task) {
  double* S = (double*)j->a[1];
  const double* xT = (const double*)j->a[2];
  const int N = j->a[3], K = j->a[4];
  const int tiles = ceil_div(K, LA_TILE), ta = task / tiles, tb = task % tiles;
  if (tb < ta) return;
  const int a0 = ta * LA_TILE, a1 = min_i(K, a0 + LA_TILE), b1 = min_i(K, tb * LA_TILE + LA_TILE);
  int a = a0;
  for (; a + 2 <= a1; a += 2) {
    int b = tb * LA_TILE > a + 1 ? tb * LA_TILE : a + 1;  // both rows have b..b+3 (row a also has b = a, below)
    if (b == a + 1) S[(int64_t)a * K + a] += ddot1(xT + (int64_t)a * N, xT + (int64_t)a * N, N);
    for (; b + 4 <= b1; b += 4)
      ddot2x4(xT + (int64_t)a * N, N, xT + (int64_t)b * N, N, S + (int64_t)a * K + b, K, N, 1);
    for (int r = a; r < a + 2; r++)
      for (int c = b; c < b1; c++) S[(int64_t)r * K + c] += ddot1(xT + (int64_t)r * N, xT + (int64_t)c * N, N);
  }
  for (; a < a1; a++)
    for (int c = tb * LA_TILE > a ? tb * LA_TILE : a; c < b1; c++) S[(int64_t)a * K + c] += ddot1(xT + (int64_t)a * N, xT + (int64_t)c * N, N);
}

// Cholesky step 1 (one task): the diagonal block A[k0:k0+b, k0:k0+b], its trailing updates in, factored
// in place row by row (Cholesky–Banachiewicz); *status = 0 at a pivot that is not > 0 (NaN included).
static void chol_diag_task(const Job* j) {
  double* A = (double*)j->a[0];
  const int n = j->a[1], k0 = j->a[2], b = j->a[3];
  int32_t* status = (int32_t*)j->a[4];
  for (int i = 0; i < b; i++) {
    double* ri = A + (int64_t)(k0 + i) * n + k0;
    for (int c = 0; c <= i; c++) {
      const double* rc = A + (int64_t)(k0 + c) * n + k0;
      const double s = ri[c] - ddot1(ri, rc, c);
      if (c == i) {
        if (!(s > 0)) { *status = 0; return; }
        ri[i] = __builtin_sqrt(s);
      } else {
        ri[c] = s / rc[c];
      }
    }
  }
}

// Cholesky step 2: rows [k0+b, n) of the panel, L[i, k0:k0+b] = A[i, k0:k0+b] · L_kkᵀ⁻¹, LA_TILE rows a task.
static void chol_panel_task(const Job* j, int task) {
  double* A = (double*)j->a[0];
  const int n = j->a[1], k0 = j->a[2], b = j->a[3];
  const int i0 = k0 + b + task * LA_TILE, i1 = min_i(n, i0 + LA_TILE);
  for (int i = i0; i < i1; i++) {
    double* ri = A + (int64_t)i * n + k0;
    for (int c = 0; c < b; c++) {
      const double* rc = A + (int64_t)(k0 + c) * n + k0;
      ri[c] = (ri[c] - ddot1(ri, rc, c)) / rc[c];
    }
  }
}

// Cholesky step 3: the trailing lower triangle, A[i, c] -= L[i, k0:k0+b] · L[c, k0:k0+b] for
// k0+b <= c <= i < n, on a grid of LA_TILE-square tiles (tasks above the diagonal do nothing).
static void chol_update_task(const Job* j, int task) {
  double* A = (double*)j->a[0];
  const int n = j->a[1], k0 = j->a[2], b = j->a[3], r0 = k0 + b;
  const int tiles = ceil_div(n - r0, LA_TILE), ti = task / tiles, tc = task % tiles;
  if (tc > ti) return;
  const int i0 = r0 + ti * LA_TILE, i1 = min_i(n, i0 + LA_TILE), c0 = r0 + tc * LA_TILE, c1 = min_i(n, c0 + LA_TILE);
  int i = i0;
  for (; i + 2 <= i1; i += 2) {
    const int ce = min_i(c1, i + 1);  // row i's columns end here; row i + 1 has one more
    int c = c0;
    for (; c + 4 <= ce; c += 4)
      ddot2x4(A + (int64_t)i * n + k0, n, A + (int64_t)c * n + k0, n, A + (int64_t)i * n + c, n, b, -1);
    for (int r = i; r < i + 2; r++)
      for (int cc = c, e = min_i(c1, r + 1); cc < e; cc++) A[(int64_t)r * n + cc] -= ddot1(A + (int64_t)r * n + k0, A + (int64_t)cc * n + k0, b);
  }
  for (; i < i1; i++)
    for (int cc = c0, e = min_i(c1, i + 1); cc < e; cc++) A[(int64_t)i * n + cc] -= ddot1(A + (int64_t)i * n + k0, A + (int64_t)cc * n + k0, b);
}

// Triangular inverse step 1a: At[c, k] = A[r0+k, j0+c] (the block column below the diagonal block,
// transposed into scratch after T: At = T + m·jb, m = n − r0), so that step 1b reads it by rows.
static void tri_trans_task(const Job* j, int task) {
  const double* A = (const double*)j->a[0];
  const int n = j->a[1], j0 = j->a[2], jb = j->a[3], r0 = j0 + jb, m = n - r0;
  double* At = (double*)j->a[4] + (int64_t)m * jb;
  for (int k = task * LA_TILE, k1 = min_i(m, k + LA_TILE); k < k1; k++)
    for (int c = 0; c < jb; c++) At[(int64_t)c * m + k] = A[(int64_t)(r0 + k) * n + j0 + c];
}

// Triangular inverse step 1b: T[i, c] = Σ_{k<=i'} X[r0+i, r0+k] · At[c, k] for i in [0, m), r0 = j0 + jb,
// X the trailing lower triangle already inverted in place (its strict upper triangle is 0, so rows
// are taken in pairs with the pair's longer length i' = the second row's); LA_TILE rows a task.
static void tri_trmm_task(const Job* j, int task) {
  const double* A = (const double*)j->a[0];
  const int n = j->a[1], j0 = j->a[2], jb = j->a[3], r0 = j0 + jb, m = n - r0;
  double* T = (double*)j->a[4];
  const double* At = T + (int64_t)m * jb;
  const int i0 = task * LA_TILE, i1 = min_i(m, i0 + LA_TILE);
  int i = i0;
  for (; i + 2 <= i1; i += 2) {
    const double* xi = A + (int64_t)(r0 + i) * n + r0;
    int c = 0;
    for (; c + 4 <= jb; c += 4) ddot2x4(xi, n, At + (int64_t)c * m, m, T + (int64_t)i * jb + c, jb, i + 2, 0);
    for (; c < jb; c++) {
      T[(int64_t)i * jb + c] = ddot1(xi, At + (int64_t)c * m, i + 2);
      T[(int64_t)(i + 1) * jb + c] = ddot1(xi + n, At + (int64_t)c * m, i + 2);
    }
  }
  for (; i < i1; i++)
    for (int c = 0; c < jb; c++) T[(int64_t)i * jb + c] = ddot1(A + (int64_t)(r0 + i) * n + r0, At + (int64_t)c * m, i + 1);
}

// Triangular inverse step 2: A[r0+i, j0:j0+jb] = Y with Y · L11 = −T[i, :] (L11 = A[j0:j0+jb, j0:j0+jb], not
// yet inverted), solved from the last column back; LA_TILE rows a task.
static void tri_trsm_task(const Job* j, int task) {
  double* A = (double*)j->a[0];
  const int n = j->a[1], j0 = j->a[2], jb = j->a[3], r0 = j0 + jb;
  const double* T = (const double*)j->a[4];
  const int i0 = task * LA_TILE, i1 = min_i(n - r0, i0 + LA_TILE);
  for (int i = i0; i < i1; i++) {
    double* y = A + (int64_t)(r0 + i) * n + j0;
    const double* t = T + (int64_t)i * jb;
    for (int c = jb - 1; c >= 0; c--) {
      double s = -t[c];
      for (int u = c + 1; u < jb; u++) s -= y[u] * A[(int64_t)(j0 + u) * n + j0 + c];
      y[c] = s / A[(int64_t)(j0 + c) * n + j0 + c];
    }
  }
}

// Triangular inverse step 3 (one task): the diagonal block inverted in place, column by column as
// jsLinalg's triangularInverse: X[c,c] = 1 / L[c,c], then X[i,c] = (−Σ_{k=c}^{i−1} L[i,k]·X[k,c]) / L[i,i]
// (column c's X[k,c] are above row i, columns k > c of row i still hold L).
static void tri_diag_task(const Job* j) {
  double* A = (double*)j->a[0];
  const int n = j->a[1], j0 = j->a[2], jb = j->a[3];
  double* D = A + (int64_t)j0 * n + j0;
  for (int c = 0; c < jb; c++) {
    D[(int64_t)c * n + c] = 1 / D[(int64_t)c * n + c];
    for (int i = c + 1; i < jb; i++) {
      double s = 0;
      for (int k = c; k < i; k++) s -= D[(int64_t)i * n + k] * D[(int64_t)k * n + c];
      D[(int64_t)i * n + c] = s / D[(int64_t)i * n + i];
    }
  }
}

// ---- entry points ----------------------------------------------------------------------------------

// Number of tasks of the job, and the scratch bytes each thread needs (in j->scratch_bytes).
EXPORT(plan) int plan(Job* j) {
  j->scratch_bytes = 0;
  switch (j->op) {
    case OP_GEMM: {
      const int nb = gemm_nb(j->a[5]);
      if (j->a[6] != W_F32) j->scratch_bytes = nb * j->a[5] * 4;
      return ceil_div(j->a[4], nb) * ceil_div(j->a[3], GEMM_MB);
    }
    case OP_RMSNORM: return ceil_div(j->a[3], ROWS_PER_TASK);
    case OP_ROPE: return ceil_div(j->a[1], ROWS_PER_TASK);
    case OP_ATTENTION: j->scratch_bytes = j->a[5] * 4; return j->a[7] * j->a[4];
    case OP_SILU_MUL: return ceil_div(j->a[3], ELEMS_PER_TASK);
    case OP_NLL: return ceil_div(j->a[3], ROWS_PER_TASK);
    case OP_GEMM_F64: return ceil_div(j->a[4], gemm_f64_nb(j->a[5])) * ceil_div(j->a[3], GEMM_MB);
    case OP_CHOL_DIAG: case OP_TRI_DIAG: return 1;
    case OP_CHOL_PANEL: return ceil_div(j->a[1] - j->a[2] - j->a[3], LA_TILE);
    case OP_CHOL_UPDATE: { const int t = ceil_div(j->a[1] - j->a[2] - j->a[3], LA_TILE); return t * t; }
    case OP_TRI_TRMM: case OP_TRI_TRSM: case OP_TRI_TRANS: return ceil_div(j->a[1] - j->a[2] - j->a[3], LA_TILE);
    case OP_GRAM_TRANS: return ceil_div(j->a[4], LA_TILE);
    case OP_GRAM: { const int t = ceil_div(j->a[4], LA_TILE); return t * t; }
  }
  return 0;
}

EXPORT(run_task) void run_task(Job* j, int task, float* scratch) {
  switch (j->op) {
    case OP_GEMM: gemm_task(j, task, scratch); break;
    case OP_RMSNORM: rmsnorm_task(j, task); break;
    case OP_ROPE: rope_task(j, task); break;
    case OP_ATTENTION: attention_task(j, task, scratch); break;
    case OP_SILU_MUL: silu_task(j, task); break;
    case OP_NLL: nll_task(j, task); break;
    case OP_GEMM_F64: gemm_f64_task(j, task); break;
    case OP_CHOL_DIAG: chol_diag_task(j); break;
    case OP_CHOL_PANEL: chol_panel_task(j, task); break;
    case OP_CHOL_UPDATE: chol_update_task(j, task); break;
    case OP_TRI_TRMM: tri_trmm_task(j, task); break;
    case OP_TRI_TRSM: tri_trsm_task(j, task); break;
    case OP_TRI_DIAG: tri_diag_task(j); break;
    case OP_TRI_TRANS: tri_trans_task(j, task); break;
    case OP_GRAM_TRANS: gram_trans_task(j, task); break;
    case OP_GRAM: gram_task(j, task); break;
  }
}

// Test hooks for the math above (test/backend checks them against Math.exp / Math.log).
EXPORT(exp_f64) double exp_f64_export(double x) { return exp_f64(x); }
EXPORT(log_f64) double log_f64_export(double x) { return log_f64(x); }
