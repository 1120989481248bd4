// The fused dequantize-and-multiply for GPTQ-packed integer weights (the QuantWeight layout of
// src/quant/pack/gptqPack.ts): y[M,N] = x[M,K] · W'ᵀ, W'[r,c] = scale[g_idx[c], r] · (q[r,c] − zero[g_idx[c], r]).
// Like lb_gemm_half, the weight is decoded a tile of GEMM_NC rows at a time into a float32 panel
// (exactly as dequantizeGptq: the float32 scale times (q − zero), one correctly rounded f32 product) and each
// (GEMM_MC × GEMM_NC) tile goes through the same single-threaded BLAS call lb_gemm makes, so the
// result equals lb_gemm(x, dequantizeGptq(q)) bit for bit. Tiles are fixed, so results do not
// depend on the thread count. Keep GEMM_MC / GEMM_NC / gemm_tile equal to kernels.cc's.
// The N-API glue is here too (exported as lb_napi_gemm_q, registered in addon.cc as "gemmQ").
#include <cblas.h>
#include <node_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels.h"
#include "pool.h"

namespace {

constexpr int GEMM_MC = 512;  // = kernels.cc
constexpr int GEMM_NC = 256;  // = kernels.cc

// The pool of this file, kept at lb_threads() threads (kernels.cc's pool is private to it).
Pool& qpool() {
  static Pool p;
  const int want = std::max(1, lb_threads());
  if (p.size() != want) p.resize(want);
  return p;
}

int ceil_div(int64_t a, int64_t b) { return (int)((a + b - 1) / b); }
int64_t packed_words(int64_t n, int bits) { return (n * bits + 31) / 32; }

void gemm_tile(const float* x, const float* w, float* y, int mr, int nr, int K, int ldy) {
  if (mr == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, nr, K, 1.0f, w, K, x, 1, 0.0f, y, 1);
  else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mr, nr, K, 1.0f, x, K, w, K, 0.0f, y, ldy);
}

struct QW {
  const int32_t* qweight;  // [ceil(K·bits/32), N]
  const int32_t* qzeros;   // [groups, ceil(N·bits/32)]
  const float* scales;     // float32 [groups, N] (stored fp16 scales are decoded when read)
  const int32_t* gidx;     // [K]
  int N, K, groups, bits;
};

inline uint32_t get_bits(const int32_t* src, int64_t base, int64_t stride, int64_t pos, int bits, uint32_t mask) {
  const int64_t w = pos >> 5;
  const int off = (int)(pos & 31);
  uint32_t v = (uint32_t)src[base + w * stride] >> off;
  if (off + bits > 32) v |= (uint32_t)src[base + (w + 1) * stride] << (32 - off);
  return v & mask;
}

// Rows [r0, r0+nr) of W' into out[nr, K].
void decode_rows(const QW& q, int r0, int nr, float* out, std::vector<float>& sc, std::vector<int>& ze) {
  const uint32_t mask = (1u << q.bits) - 1;
  const int64_t zw = packed_words(q.N, q.bits);
  const int G = q.groups;
  sc.resize((size_t)nr * G);
  ze.resize((size_t)nr * G);
  for (int g = 0; g < G; g++)
    for (int i = 0; i < nr; i++) {
      const int r = r0 + i;
      ze[(size_t)i * G + g] = (int)((get_bits(q.qzeros, (int64_t)g * zw, 1, (int64_t)r * q.bits, q.bits, mask) + 1) & mask);
      sc[(size_t)i * G + g] = q.scales[(int64_t)g * q.N + r];
    }
  const int K = q.K;
  for (int c = 0; c < K; c++) {
    const int64_t pos = (int64_t)c * q.bits;
    const int64_t w = pos >> 5;
    const int off = (int)(pos & 31), g = q.gidx[c];
    const bool split = off + q.bits > 32;
    const int32_t* a = q.qweight + w * q.N + r0;
    const int32_t* b = split ? a + q.N : a;
    for (int i = 0; i < nr; i++) {
      uint32_t v = (uint32_t)a[i] >> off;
      if (split) v |= (uint32_t)b[i] << (32 - off);
      const size_t p = (size_t)i * G + g;
      out[(int64_t)i * K + c] = sc[p] * (float)((int)(v & mask) - ze[p]);
    }
  }
}

void gemm_q(const float* x, const QW& q, float* y, int M) {
  const int N = q.N, K = q.K;
  const int mt = ceil_div(M, GEMM_MC), nt = ceil_div(N, GEMM_NC);
  if (M == 0 || N == 0) return;
  qpool().run(nt, [&](int nb) {
    const int n0 = nb * GEMM_NC, nr = std::min(GEMM_NC, N - n0);
    thread_local std::vector<float> panel;
    thread_local std::vector<float> sc;
    thread_local std::vector<int> ze;
    panel.resize((size_t)nr * K);
    decode_rows(q, n0, nr, panel.data(), sc, ze);
    for (int mb = 0; mb < mt; mb++) {
      const int m0 = mb * GEMM_MC, mr = std::min(GEMM_MC, M - m0);
      gemm_tile(x + (int64_t)m0 * K, panel.data(), y + (int64_t)m0 * N + n0, mr, nr, K, N);
    }
  });
}

// ---- N-API glue: gemmQ(x, qweight, qzeros, scales, gIdx, y, M, N, K, groups, bits) ----

bool fail(napi_env env, const std::string& msg, bool type = false) {
  if (type) napi_throw_type_error(env, nullptr, msg.c_str());
  else napi_throw_range_error(env, nullptr, msg.c_str());
  return false;
}

bool int_arg(napi_env env, napi_value v, const char* name, int* out) {
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok) return fail(env, "native kernels: expected a number", true);
  if (!(d >= 0 && d <= 2147483647.0 && d == (int)d))
    return fail(env, std::string("native kernels: ") + name + " is not a non-negative int32");
  *out = (int)d;
  return true;
}

template <typename T>
bool array_arg(napi_env env, napi_value v, napi_typedarray_type want, const char* name, int64_t need, T** out) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (is) napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr);
  if (!is || type != want) return fail(env, std::string("native kernels: ") + name + " has the wrong array type", true);
  if ((int64_t)length != need) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "native kernels: gemmQ %s has %zu elements, the shape needs %lld", name, length, (long long)need);
    return fail(env, buf);
  }
  *out = static_cast<T*>(data);
  return true;
}

}  // namespace

napi_value lb_napi_gemm_q(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  size_t argc = 11;
  napi_value undef;
  napi_get_undefined(env, &undef);
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 11) {
    fail(env, "native kernels: too few arguments", true);
    return undef;
  }
  int M, N, K, G, bits;
  if (!int_arg(env, argv[6], "M", &M) || !int_arg(env, argv[7], "N", &N) || !int_arg(env, argv[8], "K", &K) ||
      !int_arg(env, argv[9], "groups", &G) || !int_arg(env, argv[10], "bits", &bits))
    return undef;
  if (bits < 1 || bits > 8 || (G < 1 && K > 0)) {
    fail(env, "native kernels: gemmQ needs bits in 1..8 and at least one group");
    return undef;
  }
  float *x, *y;
  int32_t *qw, *qz, *gi;
  float* sc;
  if (!(array_arg(env, argv[0], napi_float32_array, "x", (int64_t)M * K, &x) &&
        array_arg(env, argv[1], napi_int32_array, "qweight", packed_words(K, bits) * N, &qw) &&
        array_arg(env, argv[2], napi_int32_array, "qzeros", (int64_t)G * packed_words(N, bits), &qz) &&
        array_arg(env, argv[3], napi_float32_array, "scales", (int64_t)G * N, &sc) &&
        array_arg(env, argv[4], napi_int32_array, "gIdx", K, &gi) &&
        array_arg(env, argv[5], napi_float32_array, "y", (int64_t)M * N, &y)))
    return undef;
  for (int c = 0; c < K; c++)
    if (gi[c] < 0 || gi[c] >= G) {
      fail(env, "gemmQ: g_idx[" + std::to_string(c) + "] = " + std::to_string(gi[c]) + " is outside 0.." + std::to_string(G - 1));
      return undef;
    }
  const QW q{qw, qz, sc, gi, N, K, G, bits};
  gemm_q(x, q, y, M);
  return undef;
}
