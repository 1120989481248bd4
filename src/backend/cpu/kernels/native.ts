/**
 * The 'native' provider: the N-API addon of native/ (OpenBLAS sgemm for gemm, LAPACK for the float64
 * factorizations, threaded C++ loops for the rest), built at install time by scripts/build-native.mjs
 * into build/lowbit_native.node. Optional: when the addon is missing, `loadNativeKernels` says why.
 * The addon keeps one thread pool per process; each provider object sets its thread count before a call.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CpuKernels } from './kernels.js';
import { buildStatusReason, checked } from './provider.js';
import { gemmQPanels } from './qgemm.js';
import { PACKAGE_ROOT } from '../../../paths.js';

/** The functions the addon exports (native/addon.cc). */
interface Addon {
  gemm(x: Float32Array, w: Float32Array, y: Float32Array, M: number, N: number, K: number): void;
  gemmHalf(x: Float32Array, w: Uint16Array, bf16: 0 | 1, y: Float32Array, M: number, N: number, K: number): void;
  gemmQ(x: Float32Array, qweight: Int32Array, qzeros: Int32Array, scales: Float32Array, gIdx: Int32Array, y: Float32Array,
    M: number, N: number, K: number, groups: number, bits: number): void;
  rmsnorm(x: Float32Array, gamma: Float32Array, y: Float32Array, M: number, D: number, eps: number): void;
  rope(x: Float32Array, T: number, nHeads: number, headDim: number, cos: Float32Array, sin: Float32Array): void;
  attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array,
    T: number, S: number, offset: number, nHeads: number, nKvHeads: number, headDim: number): void;
  siluMul(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  nll(logits: Float32Array, targets: Int32Array, out: Float64Array, T: number, V: number): void;
  gram(x: Float32Array, S: Float64Array, n: number, K: number): void;
  gramF32?(x: Float32Array, S: Float64Array, n: number, K: number): void;
  cholesky(A: Float64Array, n: number): boolean;
  triangularInverse(L: Float64Array, n: number): void;
  choleskyInverse(A: Float64Array, n: number): boolean;
  gemmF64(x: Float64Array, w: Float64Array, y: Float64Array, M: number, N: number, K: number): void;
  symmetricEigen(A: Float64Array, values: Float64Array, n: number): boolean;
  qr(A: Float64Array, m: number, n: number, Q: Float64Array, R: Float64Array): boolean;
  setThreads(n: number): number;
  gemmNN?(dy: Float32Array, w: Float32Array, y: Float32Array, M: number, N: number, K: number): void;
  gemmNNHalf?(dy: Float32Array, w: Uint16Array, bf16: 0 | 1, y: Float32Array, M: number, N: number, K: number): void;
  gemmTN?(a: Float32Array, b: Float32Array, y: Float32Array, M: number, N: number, K: number): void;
}

/** Rows of w per gemm tile in the addon (native/kernels.cc and qgemm.cc GEMM_NC). */
const NATIVE_GEMM_NC = 256;

export type Loaded = { ok: true; kernels: CpuKernels } | { ok: false; reason: string };

let addon: Addon | undefined;
let addonError: string | undefined;
let poolThreads = 0;

function load(): Addon | undefined {
  if (addon || addonError) return addon;
  try {
    const root = PACKAGE_ROOT;
    const file = join(root, 'build', 'lowbit_native.node');
    if (!existsSync(file)) { addonError = buildStatusReason(root, 'native'); return undefined; }
    addon = createRequire(import.meta.url)(file) as Addon;
  } catch (e) {
    addonError = `loading build/lowbit_native.node failed: ${(e as Error).message.split('\n')[0]}`;
  }
  return addon;
}

/** The native provider with `threads` threads (≥ 1), or the reason it is unavailable. */
export function loadNativeKernels(threads = 1): Loaded {
  const a = load();
  if (!a) return { ok: false, reason: addonError ?? 'unknown' };
  const n = Math.max(1, Math.floor(threads));
  const use = (): Addon => {
    if (poolThreads !== n) poolThreads = a.setThreads(n);
    return a;
  };
  const kernels: CpuKernels = {
    name: 'native',
    gemm: (x, w, y, M, N, K) => use().gemm(x, w, y, M, N, K),
    gemmHalf: (x, w, dtype, y, M, N, K) => use().gemmHalf(x, w, dtype === 'bf16' ? 1 : 0, y, M, N, K),
    rmsnorm: (x, g, y, M, D, eps) => use().rmsnorm(x, g, y, M, D, eps),
    rope: (x, T, H, hd, c, s) => use().rope(x, T, H, hd, c, s),
    attention: (q, k, v, o, T, S, off, H, KVH, hd) => use().attention(q, k, v, o, T, S, off, H, KVH, hd),
    siluMul: (g, u, o, n) => use().siluMul(g, u, o, n),
    nll: (l, t, o, T, V) => use().nll(l, t, o, T, V),
    gram: (x, H, rows, K) => use().gram(x, H, rows, K),
    cholesky: (A, m) => use().cholesky(A, m),
    triangularInverse: (L, m) => use().triangularInverse(L, m),
    choleskyInverse: (A, m) => use().choleskyInverse(A, m),
    gemmF64: (x, w, y, M, N, K) => use().gemmF64(x, w, y, M, N, K),
    symmetricEigen: (A, m) => {
      const vectors = new Float64Array(m * m), values = new Float64Array(m);
      for (let i = 0; i < m; i++) vectors.set(A.subarray(i * m, i * m + i + 1), i * m); // lower triangle: all dsyevd reads
      if (!use().symmetricEigen(vectors, values, m)) throw new Error(`symmetricEigen: LAPACK dsyevd failed (n = ${m}; non-finite input?)`);
      return { values, vectors };
    },
    qr: (A, rows, cols) => {
      const Q = new Float64Array(rows * cols), R = new Float64Array(cols * cols);
      if (!use().qr(A, rows, cols, Q, R)) throw new Error(`qr: LAPACK dgeqrf/dorgqr failed (${rows}×${cols})`);
      return { Q, R };
    },
  };
  // training's gradient products without transposed copies (an older addon lacks them: CpuBackend transposes)
  if (typeof a.gemmNN === 'function') kernels.gemmNN = (dy, w, y, M, N, K) => use().gemmNN!(dy, w, y, M, N, K);
  if (typeof a.gemmNNHalf === 'function') kernels.gemmNNHalf = (dy, w, dt, y, M, N, K) => use().gemmNNHalf!(dy, w, dt === 'bf16' ? 1 : 0, y, M, N, K);
  if (typeof a.gemmTN === 'function') kernels.gemmTN = (x, b, y, M, N, K) => use().gemmTN!(x, b, y, M, N, K);
  // an addon built before gemmQ existed lacks it: CpuBackend then decodes row panels in js
  if (typeof a.gramF32 === 'function') kernels.gramF32 = (x, S, rows, K) => use().gramF32!(x, S, rows, K);
  // the addon decodes the packed integer zeros only: a layer with float zero points (zerosF) is decoded in js
  // row panels of the addon's gemm tile height, so each panel is one of gemm's own tiles: bit for bit gemm(x, W')
  if (typeof a.gemmQ === 'function') {
    kernels.gemmQ = (x, q, y, M) => q.zerosF
      ? gemmQPanels(kernels.gemm, x, q, y, M, NATIVE_GEMM_NC)
      : use().gemmQ(x, q.qweight, q.qzeros, q.scales, q.gIdx, y, M, q.rows, q.cols, q.groups, q.bits);
  }
  return { ok: true, kernels: checked(kernels) };
}
