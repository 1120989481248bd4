// N-API glue (plain C API, node_api.h): argument unpacking and length checks, then kernels.cc.
// Every typed array is checked against the shape arguments before any kernel runs, so a wrong
// call throws a RangeError/TypeError and writes nothing.
#include <node_api.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "kernels.h"

// native/qgemm.cc: the fused dequantize-and-multiply for GPTQ-packed weights, with its own glue
napi_value lb_napi_gemm_q(napi_env env, napi_callback_info info);
#include "linalg64.h"

namespace {

struct Args {
  napi_env env;
  napi_value argv[12];
  size_t argc = 12;
  bool failed = false;
};

bool throw_range(napi_env env, const std::string& msg) {
  napi_throw_range_error(env, nullptr, msg.c_str());
  return false;
}

template <typename T>
bool typed(Args& a, int i, napi_typedarray_type want, const char* name, int64_t need, T** out) {
  if (a.failed) return false;
  bool is = false;
  napi_is_typedarray(a.env, a.argv[i], &is);
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (is) napi_get_typedarray_info(a.env, a.argv[i], &type, &length, &data, nullptr, nullptr);
  if (!is || type != want) {
    napi_throw_type_error(a.env, nullptr, (std::string("native kernels: ") + name + " has the wrong array type").c_str());
    a.failed = true;
    return false;
  }
  if ((int64_t)length < need) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "native kernels: %s has %zu elements, the shape needs %lld", name, length, (long long)need);
    a.failed = !throw_range(a.env, buf);
    return false;
  }
  *out = static_cast<T*>(data);
  return true;
}

double num(Args& a, int i) {
  double v = 0;
  if (!a.failed && napi_get_value_double(a.env, a.argv[i], &v) != napi_ok) {
    napi_throw_type_error(a.env, nullptr, "native kernels: expected a number");
    a.failed = true;
  }
  return v;
}

int dim(Args& a, int i, const char* name) {
  const double v = num(a, i);
  if (!a.failed && !(v >= 0 && v <= 2147483647.0 && v == (int)v)) {
    a.failed = !throw_range(a.env, std::string("native kernels: ") + name + " is not a non-negative int32");
  }
  return (int)v;
}

Args args(napi_env env, napi_callback_info info, size_t need) {
  Args a;
  a.env = env;
  napi_get_cb_info(env, info, &a.argc, a.argv, nullptr, nullptr);
  if (a.argc < need) {
    napi_throw_type_error(env, nullptr, "native kernels: too few arguments");
    a.failed = true;
  }
  return a;
}

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}
napi_value boolean(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

#define F32 napi_float32_array
#define F64 napi_float64_array

napi_value Gemm(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 6);
  const int M = dim(a, 3, "M"), N = dim(a, 4, "N"), K = dim(a, 5, "K");
  float *x, *w, *y;
  if (typed(a, 0, F32, "x", (int64_t)M * K, &x) && typed(a, 1, F32, "w", (int64_t)N * K, &w) &&
      typed(a, 2, F32, "y", (int64_t)M * N, &y))
    lb_gemm(x, w, y, M, N, K);
  return undefined(env);
}

napi_value GemmHalf(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 7);
  const bool bf16 = num(a, 2) == 1;  // 1: bf16, 0: f16
  const int M = dim(a, 4, "M"), N = dim(a, 5, "N"), K = dim(a, 6, "K");
  float *x, *y;
  uint16_t* w;
  if (typed(a, 0, F32, "x", (int64_t)M * K, &x) && typed(a, 1, napi_uint16_array, "w", (int64_t)N * K, &w) &&
      typed(a, 3, F32, "y", (int64_t)M * N, &y))
    lb_gemm_half(x, w, bf16, y, M, N, K);
  return undefined(env);
}

napi_value GemmNN(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 6);
  const int M = dim(a, 3, "M"), N = dim(a, 4, "N"), K = dim(a, 5, "K");
  float *dy, *w, *y;
  if (typed(a, 0, F32, "dy", (int64_t)M * N, &dy) && typed(a, 1, F32, "w", (int64_t)N * K, &w) &&
      typed(a, 2, F32, "y", (int64_t)M * K, &y))
    lb_gemm_nn(dy, w, y, M, N, K);
  return undefined(env);
}

napi_value GemmNNHalf(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 7);
  const bool bf16 = num(a, 2) == 1;
  const int M = dim(a, 4, "M"), N = dim(a, 5, "N"), K = dim(a, 6, "K");
  float *dy, *y;
  uint16_t* w;
  if (typed(a, 0, F32, "dy", (int64_t)M * N, &dy) && typed(a, 1, napi_uint16_array, "w", (int64_t)N * K, &w) &&
      typed(a, 3, F32, "y", (int64_t)M * K, &y))
    lb_gemm_nn_half(dy, w, bf16, y, M, N, K);
  return undefined(env);
}

napi_value GemmTN(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 6);
  const int M = dim(a, 3, "M"), N = dim(a, 4, "N"), K = dim(a, 5, "K");
  float *x, *b, *y;
  if (typed(a, 0, F32, "a", (int64_t)M * N, &x) && typed(a, 1, F32, "b", (int64_t)M * K, &b) &&
      typed(a, 2, F32, "y", (int64_t)N * K, &y))
    lb_gemm_tn(x, b, y, M, N, K);
  return undefined(env);
}

napi_value Rmsnorm(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 6);
  const int M = dim(a, 3, "M"), D = dim(a, 4, "D");
  const double eps = num(a, 5);
  float *x, *g, *y;
  if (typed(a, 0, F32, "x", (int64_t)M * D, &x) && typed(a, 1, F32, "gamma", D, &g) &&
      typed(a, 2, F32, "y", (int64_t)M * D, &y))
    lb_rmsnorm(x, g, y, M, D, eps);
  return undefined(env);
}

napi_value Rope(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 6);
  const int T = dim(a, 1, "T"), H = dim(a, 2, "nHeads"), hd = dim(a, 3, "headDim");
  float *x, *c, *s;
  if (typed(a, 0, F32, "x", (int64_t)T * H * hd, &x) && typed(a, 4, F32, "cos", (int64_t)T * (hd / 2), &c) &&
      typed(a, 5, F32, "sin", (int64_t)T * (hd / 2), &s))
    lb_rope(x, T, H, hd, c, s);
  return undefined(env);
}

napi_value Attention(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 10);
  const int T = dim(a, 4, "T"), S = dim(a, 5, "S"), off = dim(a, 6, "offset");
  const int H = dim(a, 7, "nHeads"), KVH = dim(a, 8, "nKvHeads"), hd = dim(a, 9, "headDim");
  if (!a.failed && (KVH == 0 || H % KVH != 0 || (int64_t)off + T > S)) {
    throw_range(env, "native kernels: attention needs nHeads % nKvHeads == 0 and offset + T <= S");
    return undefined(env);
  }
  float *q, *k, *v, *o;
  if (typed(a, 0, F32, "q", (int64_t)T * H * hd, &q) && typed(a, 1, F32, "k", (int64_t)S * KVH * hd, &k) &&
      typed(a, 2, F32, "v", (int64_t)S * KVH * hd, &v) && typed(a, 3, F32, "out", (int64_t)T * H * hd, &o))
    lb_attention(q, k, v, o, T, S, off, H, KVH, hd);
  return undefined(env);
}

napi_value SiluMul(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 4);
  const int64_t n = (int64_t)num(a, 3);
  float *g, *u, *o;
  if (typed(a, 0, F32, "gate", n, &g) && typed(a, 1, F32, "up", n, &u) && typed(a, 2, F32, "out", n, &o))
    lb_silu_mul(g, u, o, n);
  return undefined(env);
}

napi_value Nll(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 5);
  const int T = dim(a, 3, "T"), V = dim(a, 4, "V");
  float* l;
  int32_t* tg;
  double* o;
  if (!(typed(a, 0, F32, "logits", (int64_t)T * V, &l) && typed(a, 1, napi_int32_array, "targets", T, &tg) &&
        typed(a, 2, F64, "out", T, &o)))
    return undefined(env);
  for (int t = 0; t < T; t++)
    if (tg[t] < 0 || tg[t] >= V) {
      throw_range(env, "nll: target " + std::to_string(tg[t]) + " at row " + std::to_string(t) +
                           " outside the vocabulary of " + std::to_string(V));
      return undefined(env);
    }
  lb_nll(l, tg, o, T, V);
  return undefined(env);
}

template <void (*F)(const float*, double*, int, int)>
napi_value Gram(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 4);
  const int n = dim(a, 2, "n"), K = dim(a, 3, "K");
  float* x;
  double* S;
  if (typed(a, 0, F32, "x", (int64_t)n * K, &x) && typed(a, 1, F64, "S", (int64_t)K * K, &S)) F(x, S, n, K);
  return undefined(env);
}

template <bool (*F)(double*, int)>
napi_value Factor(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 2);
  const int n = dim(a, 1, "n");
  double* A;
  if (!typed(a, 0, F64, "A", (int64_t)n * n, &A)) return undefined(env);
  return boolean(env, F(A, n));
}

napi_value TriInv(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 2);
  const int n = dim(a, 1, "n");
  double* L;
  if (typed(a, 0, F64, "L", (int64_t)n * n, &L)) lb_triangular_inverse(L, n);
  return undefined(env);
}

napi_value GemmF64(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 6);
  const int M = dim(a, 3, "M"), N = dim(a, 4, "N"), K = dim(a, 5, "K");
  double *x, *w, *y;
  if (typed(a, 0, F64, "x", (int64_t)M * K, &x) && typed(a, 1, F64, "w", (int64_t)N * K, &w) &&
      typed(a, 2, F64, "y", (int64_t)M * N, &y))
    lb_gemm_f64(x, w, y, M, N, K);
  return undefined(env);
}

napi_value SymEigen(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 3);
  const int n = dim(a, 2, "n");
  double *A, *w;
  if (!(typed(a, 0, F64, "A", (int64_t)n * n, &A) && typed(a, 1, F64, "values", n, &w))) return undefined(env);
  return boolean(env, lb_symmetric_eigen(A, w, n));
}

napi_value Qr(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 5);
  const int m = dim(a, 1, "m"), n = dim(a, 2, "n");
  double *A, *Q, *R;
  if (!(typed(a, 0, F64, "A", (int64_t)m * n, &A) && typed(a, 3, F64, "Q", (int64_t)m * n, &Q) &&
        typed(a, 4, F64, "R", (int64_t)n * n, &R)))
    return undefined(env);
  return boolean(env, lb_qr(A, m, n, Q, R));
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args a = args(env, info, 1);
  const int n = dim(a, 0, "threads");
  if (!a.failed) lb_set_threads(n < 1 ? 1 : n);
  napi_value v;
  napi_create_int32(env, lb_threads(), &v);
  return v;
}

napi_value Init(napi_env env, napi_value exports) {
  lb_set_threads(1);
  const napi_property_descriptor props[] = {
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmNN", nullptr, GemmNN, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmNNHalf", nullptr, GemmNNHalf, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmTN", nullptr, GemmTN, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmHalf", nullptr, GemmHalf, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmQ", nullptr, lb_napi_gemm_q, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rmsnorm", nullptr, Rmsnorm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rope", nullptr, Rope, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"attention", nullptr, Attention, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"siluMul", nullptr, SiluMul, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"nll", nullptr, Nll, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gram", nullptr, Gram<lb_gram>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gramF32", nullptr, Gram<lb_gram_f32>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"cholesky", nullptr, Factor<lb_cholesky>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"choleskyInverse", nullptr, Factor<lb_cholesky_inverse>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"triangularInverse", nullptr, TriInv, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmF64", nullptr, GemmF64, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"symmetricEigen", nullptr, SymEigen, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"qr", nullptr, Qr, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
