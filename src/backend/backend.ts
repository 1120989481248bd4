import type { Tensor } from '../tensor/tensor.js';
import type { CpuKernels } from './cpu/kernels/kernels.js';
import type { PackedWeight } from '../tensor/packed.js';

/**
 * A value living on a backend (host memory for the CPU backend, a GPU buffer for WebGPU).
 * Activations are float32; weights keep their stored dtype (f32, f16 or bf16) until an op uses them.
 * 'q': a GPTQ-packed integer weight (uploadQuantized) that only `linear` consumes, decoded on the fly.
 */
export interface BTensor {
  readonly shape: readonly number[];
  readonly dtype: 'f32' | 'f16' | 'bf16' | 'q';
}

/**
 * A running sum S = Σ xᵀx over the rows of every x given to `Backend.gram` (GPTQ's Hessian before
 * its 2/n scaling), held where the backend computes: float64 host memory on the CPU, a two-float
 * (hi, lo) pair per entry in device memory on WebGPU. Made by `gramAccumulator`, read once (and
 * released) by `readGram`.
 */
export interface GramAccumulator {
  readonly cols: number;
}

/**
 * How a Gram accumulator sums: 'f64', every product exactly, summed in float64 (or two-float pairs);
 * 'f32', gptq.py's precision: each `gram` call's xᵀx as one float32 GEMM (one calibration sequence
 * per call), the calls' results added exactly.
 */
export type GramPrecision = 'f64' | 'f32';

/**
 * GPTQ's inverse factor of one damped H, kept on the device by `Backend.gptqFactor` for one or more solves (the
 * linears that read one input share it). `release` frees it; a released factor is refused.
 */
export interface GptqDeviceFactor {
  readonly cols: number;
  release(): void;
}

/** One layer's GPTQ problem as `Backend.gptqSolve` takes it; columns in processing order (act-order applied). */
export interface GptqSolveInput {
  /** [rows, cols], dead columns zeroed */
  readonly W: Float32Array;
  readonly rows: number;
  readonly cols: number;
  /** gptq.py's block: columns per lazy batch update */
  readonly blocksize: number;
  readonly maxq: number;
  /** each column's group (its slot in scale / zero) */
  readonly group: Int32Array;
  /** [group][row], filled for groups known up front (per channel, static groups) */
  readonly scale: Float32Array;
  readonly zero: Float32Array;
  /**
   * Dynamic groups: at column c where starts[c] ≥ 0 (group starts[c]), the group's parameters from each
   * row's min and max of W[r, c .. c + size) as it stands at the start of c's block (gptq.py's find_params).
   */
  readonly dynamic?: {
    readonly size: number;
    readonly starts: Int32Array;
    params(min: Float32Array, max: Float32Array): { scale: Float32Array; zero: Float32Array };
  };
}

export interface GptqSolveOutput {
  /** [rows, cols] in processing order */
  readonly codes: Uint8Array;
  readonly Q: Float32Array;
  /** [group][row], the dynamic groups' found on the way */
  readonly scale: Float32Array;
  readonly zero: Float32Array;
  /** Σ err² / 2 over the layer (float32 per row, summed in float64) */
  readonly loss: number;
}

/**
 * The few ops the model and the evaluations call. Ops enqueue work and return handles at once;
 * only `read` and `nll` wait for results, so a GPU backend can keep data on the device.
 * Row-major throughout; a linear weight is [out, in].
 */
export interface Backend {
  readonly name: string;
  /** one line for logs and result records, e.g. "cpu: native (OpenBLAS), 2 threads" */
  readonly description: string;
  /** host-side kernels (float64 Gram, Cholesky, triangular inverse) the quantizers use on host memory */
  readonly hostKernels: CpuKernels;
  /**
   * True where this backend's `linear` runs on a hardware accelerator, faster than `hostKernels` for large
   * products (WebGPU on a hardware adapter; not the CPU backend, not a software adapter such as lavapipe): the
   * quantization pipeline computes its reports' products (the reconstruction error) with `linear` then.
   */
  readonly acceleratedGemm?: boolean;

  upload(data: Float32Array, shape: readonly number[]): BTensor;
  /** A weight in its stored dtype (f32/f16/bf16). */
  uploadWeight(t: Tensor): BTensor;
  /** A quantized linear weight [q.rows, q.cols] in its stored kind, kept as codes (dtype 'q'); only `linear` takes it. */
  uploadQuantized(q: PackedWeight): BTensor;
  read(t: BTensor): Promise<Float32Array>;
  free(t: BTensor): void;
  /**
   * Runs `f` (synchronous) and frees every tensor the backend made during it except those in its
   * result (a tensor, or arrays/plain objects holding tensors), which belong to the enclosing scope
   * (tfjs `tidy`); if `f` throws, everything it made is freed. Freeing a tensor inside is allowed.
   * Block streaming runs each block's forward in one, so a block's temporaries are freed at once.
   */
  scope<R>(f: () => R): R;
  /**
   * Optional hint between large phases (block streaming calls it after each block): return the
   * memory of freed tensors now rather than at the runtime's leisure. Results never depend on it.
   */
  reclaim?(): void;

  /** rows of table[V, D] for each id → [T, D] */
  embedding(table: BTensor, ids: Int32Array): BTensor;
  rmsnorm(x: BTensor, gamma: BTensor, eps: number): BTensor;
  /** x[M, K] · w[N, K]ᵀ → [M, N]; w may be a quantized weight (dtype 'q'), multiplied without materialising it */
  linear(x: BTensor, w: BTensor): BTensor;
  /** rotate-half RoPE of x[T, nHeads·headDim] with tables cos/sin[T, headDim/2] → new tensor */
  rope(x: BTensor, nHeads: number, headDim: number, cos: BTensor, sin: BTensor): BTensor;
  /** causal GQA: q[T, H·hd] at positions offset.., k/v[S, KVH·hd] → [T, H·hd] */
  attention(q: BTensor, k: BTensor, v: BTensor, opts: { nHeads: number; nKvHeads: number; headDim: number; offset: number }): BTensor;
  siluMul(gate: BTensor, up: BTensor): BTensor;
  /**
   * Per-row symmetric absmax fake quantization to `bits` (SmoothQuant's dynamic per-token activation
   * quantization): s = max(max|x_row|, 1e-5) / (2^(bits−1) − 1), x' = round(x / s) · s, ties to even,
   * float32 throughout.
   */
  quantizeRows(x: BTensor, bits: number): BTensor;
  add(a: BTensor, b: BTensor): BTensor;
  /** rows [start, start+count) of x[M, D] → [count, D] */
  rows(x: BTensor, start: number, count: number): BTensor;
  /** concatenate along rows */
  concatRows(a: BTensor, b: BTensor): BTensor;
  /** The precisions `gramAccumulator` takes (absent: 'f64' only). */
  readonly gramPrecisions?: readonly GramPrecision[];
  /** A new Gram accumulator S = 0 of [cols, cols] (optional: a backend without one leaves the Hessian to the host). */
  gramAccumulator?(cols: number, precision?: GramPrecision): GramAccumulator;
  /** S += xᵀx for x[T, cols] (float32 activations), enqueued like any op: nothing is read back. */
  gram?(x: BTensor, acc: GramAccumulator): void;
  /** S as a full symmetric float64 [cols, cols] matrix (row-major), after all enqueued grams; releases `acc`. */
  readGram?(acc: GramAccumulator): Promise<Float64Array>;
  /**
   * acc[c] = max(acc[c], max_t |x[t, c]|) for x[T, C] and a float32 acc [C] (made by `upload`), in
   * place and enqueued like any op (optional: without it a method reads the activations back).
   * SmoothQuant's per-channel activation scales; a maximum is exact, so every backend gives the same bits.
   */
  columnAbsMax?(x: BTensor, acc: BTensor): void;
  /**
   * Per-channel mean |x| over the rows of every x[T_i, C] given (llm-awq's get_act_scale, as AWQ computes it
   * on the host): Σ |x| in float64, the tensors in order and each one's rows in order, divided by the total
   * row count and rounded to float32. Every backend gives these bits (WebGPU emulates each float64 addition in
   * integer arithmetic); only the [C] result comes back. Optional: without it AWQ reads its activations back.
   */
  columnAbsMean?(xs: readonly BTensor[]): Promise<Float32Array>;
  /**
   * x[T, C] divided by s[C] column by column, each quotient correctly rounded to float32 (the host's
   * Math.fround(x / s)): a new tensor, enqueued like any op. AWQ divides its captured inputs by the chosen
   * scales with it. Optional, like columnAbsMean.
   */
  divColumns?(x: BTensor, s: BTensor): BTensor;
  /**
   * AWQ's scale-search candidate (llm-awq auto_scale: the weight times s, pseudo-quantized with a zero point
   * per row and group of `groupSize` columns, divided by s) for a float32 weight w [rows, cols] (uploadWeight)
   * and s [cols] (upload): a new float32 weight, enqueued like any op, equal bit for bit to the host's
   * quantizeScaledInto (quant/methods/awqQuantizer.ts) with the scale rounded through fp16 when `f16Scale`.
   * Optional: without it the method computes candidates on the host and uploads them.
   */
  scaledFakeQuant?(w: BTensor, s: BTensor, o: { groupSize: number; bits: number; f16Scale: boolean }): BTensor;
  /**
   * Σ over the pairs of Σ_i (a_i − b_i)² for float32 tensors of equal shapes, in float64 (WebGPU: two-float
   * partial sums on the device, one read for all pairs). A search's loss without reading its outputs back.
   */
  sumSquaredDiff?(pairs: readonly (readonly [BTensor, BTensor])[]): Promise<number>;
  /**
   * AWQ's clip search (llm-awq auto_clip) for a float32 weight w [rows, cols] (uploadWeight), the sampled
   * tokens x [n, cols] (any float32 tensor: uploaded, or gathered on the backend) and the clamp bounds maxVal [steps, rows, cols / groupSize] (upload): per
   * row and group, the step whose candidate (the group clamped to ±maxVal and pseudo-quantized, bit for
   * bit the host's clampQuantizeGroup, quant/methods/awqQuantizer.ts) changes the group's partial products
   * x_g·w_gᵀ least in squared error summed over the tokens; the first strict minimum, as the host. Returns
   * the steps [rows, groups], row-major. The products come from the backend's GEMM, so an error may differ
   * from the host's in its last bits and a near tie may go the other way. Optional: without it the method
   * searches on the host.
   */
  clipSearch?(x: BTensor, w: BTensor, maxVal: BTensor, o: { groupSize: number; bits: number; f16Scale: boolean }): Promise<Uint8Array>;
  /**
   * GPTQ on the device in float32 (gptq.py's precision; `gptq --device-solve`; kernels/gptq.wgsl.ts). gptqFactor:
   * Hinv from H [cols, cols] (processing order, dead columns' diagonal 1, damped by the caller), kept on the device;
   * undefined when H is not positive definite in float32, so the caller can damp more. gptqSolve: one layer's
   * blocks of columns and their lazy updates against such a factor (`solve` to gptqFactor: the first one's shape,
   * so that what cannot fit the device is refused before anything runs). Both or neither; without them the host's
   * float64 solve (quant/methods/gptq.ts), which is the reference.
   */
  gptqFactor?(H: Float32Array, cols: number, solve?: { rows: number; blocksize: number }): Promise<GptqDeviceFactor | undefined>;
  gptqSolve?(input: GptqSolveInput, factor: GptqDeviceFactor): Promise<GptqSolveOutput>;
  /** per-row −log softmax(logits)[target], in float64 */
  nll(logits: BTensor, targets: Int32Array): Promise<Float64Array>;
  /**
   * One vocabulary chunk's share of a log-softmax: logits[T, C] hold columns offset..offset+C-1 of
   * each row's full logits. Per row, in float64: lse[t] = log Σ_j exp(logits[t, j]), and picked[t] =
   * logits[t, targets[t] − offset] when targets[t] lies in [offset, offset + C), else NaN (a target
   * in another chunk; callers know which rows those are). Chunks combine by log-add-exp of their lse,
   * and NLL = lse − picked: the LM head is evaluated in vocabulary chunks without [T, vocab] logits.
   */
  logSoftmaxParts(logits: BTensor, targets: Int32Array, offset: number): Promise<{ lse: Float64Array; picked: Float64Array }>;
}

/**
 * The backward ops of training (src/train/): with the forward ops of Backend they give the
 * gradients of a decoder with frozen weights and trainable low-rank adapters. A backend that has
 * them implements TrainableBackend; `isTrainable` tells. All tensors are float32 activations except
 * the weight of `linearT`, which may be any stored dtype or kind, as for `linear`.
 */
export interface GradOps {
  /** dy[M, N] · w[N, K] → [M, K]: the input gradient of `linear(x, w)` (w in any stored dtype or kind) */
  linearT(dy: BTensor, w: BTensor): BTensor;
  /** a[M, N]ᵀ · b[M, K] → [N, K]: the weight gradient of `linear` (a = output gradient, b = input) */
  matmulTN(a: BTensor, b: BTensor): BTensor;
  /** the input gradient of `rmsnorm(x, gamma, eps)` for output gradient dy (gamma frozen) */
  rmsnormBackward(x: BTensor, gamma: BTensor, dy: BTensor, eps: number): BTensor;
  /** the gradients of `attention(q, k, v, opts)` for output gradient dOut (the softmax is recomputed) */
  attentionBackward(q: BTensor, k: BTensor, v: BTensor, dOut: BTensor, opts: { nHeads: number; nKvHeads: number; headDim: number; offset: number }): { dq: BTensor; dk: BTensor; dv: BTensor };
  /** the gradients of `siluMul(gate, up)` for output gradient dy */
  siluMulBackward(gate: BTensor, up: BTensor, dy: BTensor): { dGate: BTensor; dUp: BTensor };
  /** x · s, elementwise */
  scale(x: BTensor, s: number): BTensor;
  /** a ⊙ b, elementwise (same shape) */
  mul(a: BTensor, b: BTensor): BTensor;
  /**
   * The gradient of Σ_t w[t] · (lse[t] − logits[t, targets[t]]) with respect to logits[T, V] (full
   * vocabulary rows): w[t] · (softmax(logits[t]) − onehot(targets[t])), using the row's log-sum-exp
   * `lse` (float64, from `logSoftmaxParts`). Rows with w[t] = 0 get zeros.
   */
  crossEntropyGrad(logits: BTensor, lse: Float64Array, targets: Int32Array, weights: Float32Array): BTensor;
}

/** A backend that can also run the backward ops of training. */
export interface TrainableBackend extends Backend, GradOps {}

export function isTrainable(be: Backend): be is TrainableBackend {
  const g = be as Partial<GradOps>;
  return typeof g.linearT === 'function' && typeof g.matmulTN === 'function' && typeof g.attentionBackward === 'function'
    && typeof g.rmsnormBackward === 'function' && typeof g.siluMulBackward === 'function' && typeof g.crossEntropyGrad === 'function'
    && typeof g.scale === 'function' && typeof g.mul === 'function';
}

/** linear's argument checks, shared by every backend: x[M, K] · w[N, K]ᵀ. */
export function checkLinear(x: BTensor, w: BTensor): { M: number; N: number; K: number } {
  expectShape('linear', 'weight', w.shape, [undefined, undefined]);
  const [N, K] = w.shape as [number, number];
  expectShape('linear', 'input', x.shape, [undefined, K]);
  return { M: x.shape[0]!, N, K };
}

/** linearT's argument checks, shared by every backend: dy[M, N] · w[N, K]. */
export function checkLinearT(dy: BTensor, w: BTensor): { M: number; N: number; K: number } {
  expectShape('linearT', 'weight', w.shape, [undefined, undefined]);
  const [N, K] = w.shape as [number, number];
  expectShape('linearT', 'output gradient', dy.shape, [undefined, N]);
  return { M: dy.shape[0]!, N, K };
}

/** matmulTN's argument checks, shared by every backend: a[M, N]ᵀ · b[M, K]. */
export function checkMatmulTN(a: BTensor, b: BTensor): { M: number; N: number; K: number } {
  expectShape('matmulTN', 'a', a.shape, [undefined, undefined]);
  const [M, N] = a.shape as [number, number];
  expectShape('matmulTN', 'b', b.shape, [M, undefined]);
  return { M, N, K: b.shape[1]! };
}

/** rmsnormBackward's argument checks, shared by every backend: gamma [D], dy shaped like x; returns D. */
export function checkRmsnormBackward(x: BTensor, gamma: BTensor, dy: BTensor): number {
  const D = x.shape[x.shape.length - 1]!;
  expectShape('rmsnormBackward', 'gamma', gamma.shape, [D]);
  expectShape('rmsnormBackward', 'output gradient', dy.shape, x.shape);
  return D;
}

/** crossEntropyGrad's argument checks, shared by every backend: logits [T, V], one lse, target and weight per row. */
export function checkCrossEntropyGrad(logits: BTensor, lse: Float64Array, targets: Int32Array, weights: Float32Array): { T: number; V: number } {
  expectShape('crossEntropyGrad', 'logits', logits.shape, [undefined, undefined]);
  const [T, V] = logits.shape as [number, number];
  expectShape('crossEntropyGrad', 'lse', [lse.length], [T]);
  expectShape('crossEntropyGrad', 'targets', [targets.length], [T]);
  expectShape('crossEntropyGrad', 'weights', [weights.length], [T]);
  for (let i = 0; i < T; i++) {
    if (weights[i] !== 0 && !(targets[i]! >= 0 && targets[i]! < V)) throw new RangeError(`crossEntropyGrad: target ${targets[i]} of row ${i} outside the vocabulary of ${V}`);
  }
  return { T, V };
}

/** attention's argument checks, shared by every backend: [T queries, S keys] of q[T, H·hd], k/v[S, KVH·hd], S ≥ offset + T. */
export function checkAttention(q: BTensor, k: BTensor, v: BTensor, o: { nHeads: number; nKvHeads: number; headDim: number; offset: number }): { T: number; S: number } {
  const T = q.shape[0]!, S = k.shape[0]!;
  if (o.nHeads % o.nKvHeads !== 0) throw new RangeError(`attention: ${o.nHeads} heads is not a multiple of ${o.nKvHeads} KV heads`);
  expectShape('attention', 'q', q.shape, [T, o.nHeads * o.headDim]);
  expectShape('attention', 'k', k.shape, [S, o.nKvHeads * o.headDim]);
  expectShape('attention', 'v', v.shape, [S, o.nKvHeads * o.headDim]);
  if (S < o.offset + T) throw new RangeError(`attention: ${S} keys cannot cover offset ${o.offset} + ${T} queries`);
  return { T, S };
}

/** Shape checks shared by every backend: they run before any kernel, and name the op and shapes. */
export function expectShape(op: string, what: string, got: readonly number[], want: readonly (number | undefined)[]): void {
  const ok = got.length === want.length && want.every((w, i) => w === undefined || w === got[i]);
  if (!ok) {
    const fmt = (s: readonly (number | undefined)[]) => `[${s.map((d) => d ?? '*').join(', ')}]`;
    throw new RangeError(`${op}: ${what} has shape ${fmt(got)}, expected ${fmt(want)}`);
  }
}
