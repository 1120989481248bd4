/**
 * The CPU kernel contract: plain functions over typed arrays, row-major, no allocation of outputs.
 * Providers: 'js' (plain TypeScript, the reference), 'wasm' (WebAssembly SIMD + threads),
 * 'native' (N-API addon + BLAS). Every provider must give results equal to 'js' within the
 * tolerances of test/backend, and identical results for any thread count.
 */
import type { GptqPacked } from '../../../tensor/packed.js';

export type KernelProviderName = 'js' | 'wasm' | 'native';

export interface CpuKernels {
  readonly name: KernelProviderName;
  /** y[M,N] = x[M,K] · w[N,K]ᵀ (a linear layer with weight [out, in]). */
  gemm(x: Float32Array, w: Float32Array, y: Float32Array, M: number, N: number, K: number): void;
  /** Same, with w stored as bf16 or f16 bits and converted on the fly (exactly). */
  gemmHalf(x: Float32Array, w: Uint16Array, dtype: 'bf16' | 'f16', y: Float32Array, M: number, N: number, K: number): void;
  /**
   * y[M, q.rows] = x[M, q.cols] · W'ᵀ with W' the GPTQ-packed weight q decoded on the fly (tiles of
   * rows to float32, exactly as dequantizeGptq, then this provider's f32 gemm): equal bit for bit to
   * gemm(x, dequantizeGptq(q)) on the same provider, float zero points (q.zerosF) included: a
   * kernel that decodes only the packed qzeros must hand such a layer to gemmQPanels (native does).
   * Optional: CpuBackend decodes row panels with the js reference (qgemm.ts) for a provider without it.
   */
  gemmQ?(x: Float32Array, q: GptqPacked, y: Float32Array, M: number): void;
  /**
   * Training's gradient products, optional (CpuBackend transposes and calls gemm without them):
   * gemmNN: y[M,K] = dy[M,N] · w[N,K] (a linear's input gradient, w read in place);
   * gemmNNHalf: the same with w as bf16/f16 bits; gemmTN: y[N,K] = a[M,N]ᵀ · b[M,K] (its weight gradient).
   * Like gemm, results must not depend on the thread count.
   */
  gemmNN?(dy: Float32Array, w: Float32Array, y: Float32Array, M: number, N: number, K: number): void;
  gemmNNHalf?(dy: Float32Array, w: Uint16Array, dtype: 'bf16' | 'f16', y: Float32Array, M: number, N: number, K: number): void;
  gemmTN?(a: Float32Array, b: Float32Array, y: Float32Array, M: number, N: number, K: number): void;
  /** y[m,:] = x[m,:] / sqrt(mean(x[m,:]²) + eps) · gamma, m < M, rows of D. */
  rmsnorm(x: Float32Array, gamma: Float32Array, y: Float32Array, M: number, D: number, eps: number): void;
  /**
   * In place rotate-half RoPE on x[T, nHeads·headDim]: for each head, pairs (i, i + headDim/2) rotated
   * by cos/sin[t, i] (tables [T, headDim/2], row t for the t-th row of x).
   */
  rope(x: Float32Array, T: number, nHeads: number, headDim: number, cos: Float32Array, sin: Float32Array): void;
  /**
   * Causal grouped-query attention. q[T, H·hd], k/v[S, KVH·hd], out[T, H·hd]; query row t sits at
   * absolute position `offset + t` and attends to key rows 0..offset+t (S ≥ offset + T).
   * Softmax in float32 with max subtraction; scale 1/sqrt(hd).
   */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array,
    T: number, S: number, offset: number, nHeads: number, nKvHeads: number, headDim: number): void;
  /** out[i] = silu(gate[i]) · up[i]. */
  siluMul(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  /** out[t] = logsumexp(logits[t,:]) − logits[t, targets[t]], accumulated in float64. */
  nll(logits: Float32Array, targets: Int32Array, out: Float64Array, T: number, V: number): void;

  // Float64 dense linear algebra for the quantizers (GPTQ and relatives). Optional: a provider
  // without them is completed with the js references of jsLinalg.ts (see `withLinalg`).
  /**
   * S[K,K] += x[n,K]ᵀ · x[n,K] on the upper triangle (S[a,b], b ≥ a), products and sums in float64.
   * Entries below the diagonal are unspecified (a provider may write partial sums there): the caller
   * mirrors once at the end instead of on every call.
   */
  gram?(x: Float32Array, S: Float64Array, n: number, K: number): void;
  /**
   * The same in gptq.py's precision: over each run of at most 2048 rows of x, xᵀx is summed in float32
   * (BLAS sgemm), then added into S in float64. Upper triangle only, like gram.
   */
  gramF32?(x: Float32Array, S: Float64Array, n: number, K: number): void;
  /**
   * In place Cholesky A[n,n] = L·Lᵀ: L in the lower triangle, the strict upper triangle set to 0.
   * Reads only the lower triangle. Returns false (A then partly overwritten) if A is not positive definite.
   */
  cholesky?(A: Float64Array, n: number): boolean;
  /** In place inverse of a lower-triangular L[n,n] (the strict upper triangle is ignored and set to 0). */
  triangularInverse?(L: Float64Array, n: number): void;
  /** In place A ← A⁻¹ for symmetric positive definite A (full symmetric result); false if not positive definite. */
  choleskyInverse?(A: Float64Array, n: number): boolean;
  /** y[M,N] = x[M,K] · w[N,K]ᵀ in float64 (y overwritten; BLAS dgemm in the native provider). */
  gemmF64?(x: Float64Array, w: Float64Array, y: Float64Array, M: number, N: number, K: number): void;
  /**
   * Eigendecomposition of symmetric A[n,n] (only the lower triangle is read; A is not modified):
   * A = V·diag(values)·Vᵀ, values ascending, vectors row-major with column j the unit eigenvector of
   * values[j], its largest-magnitude component (the first of equals) positive. Throws if it fails.
   */
  symmetricEigen?(A: Float64Array, n: number): SymmetricEigen;
  /**
   * Thin QR of A[m,n], m ≥ n (A not modified): Q[m,n] with orthonormal columns, R[n,n] upper
   * triangular with a non-negative diagonal, A = Q·R (Householder).
   */
  qr?(A: Float64Array, m: number, n: number): QrFactors;

  /**
   * Long-lived arrays inside the provider's own memory (the wasm provider's shared memory), which its
   * kernels then use in place instead of copying them in on every call: what CpuBackend.uploadWeight
   * puts weights in. Optional: js and native work on any array and have none.
   */
  resident?: ResidentMemory;
}

/** Element kinds of resident arrays ('u16': bf16 or f16 bits). */
export interface ResidentArrayTypes { f32: Float32Array; u16: Uint16Array; i32: Int32Array; f64: Float64Array }
export type ResidentArray = ResidentArrayTypes[keyof ResidentArrayTypes];

/**
 * Arrays that a provider keeps in its memory until released (never garbage collected: each alloc
 * needs one release). The arrays are ordinary typed arrays; any kernel of the same provider given
 * one (or a view inside one) reads or writes it in place. Using an array after its release is an
 * error the provider reports where it can (an exact released array passed to a kernel throws).
 */
export interface ResidentMemory {
  /** An array of `length` elements (contents unspecified: fill it); a RangeError when the region is full. */
  alloc<K extends keyof ResidentArrayTypes>(kind: K, length: number): ResidentArrayTypes[K];
  /** Gives the array's memory back; a RangeError for an array that is not live here (double release). */
  release(a: ResidentArray): void;
}

/** Result of CpuKernels.symmetricEigen. */
export interface SymmetricEigen { values: Float64Array; vectors: Float64Array }
/** Result of CpuKernels.qr. */
export interface QrFactors { Q: Float64Array; R: Float64Array }
