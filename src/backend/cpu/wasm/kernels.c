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

enum { OP_GEMM = 1, OP_RMSNORM, OP_ROPE, OP_ATTENTION, OP_SILU_MUL, OP_NLL };
enum { W_F32 = 0, W_BF16 = 1, W_F16 = 2 };

#define ROWS_PER_TASK 8
#define ELEMS_PER_TASK 65536
#define GEMM_MB 64  // rows of x per task

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
  }
}

// Test hooks for the math above (test/backend checks them against Math.exp / Math.log).
EXPORT(exp_f64) double exp_f64_export(double x) { return exp_f64(x); }
EXPORT(log_f64) double log_f64_export(double x) { return log_f64(x); }
