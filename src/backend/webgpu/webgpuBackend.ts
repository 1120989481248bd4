/// <reference types="@webgpu/types" />
/**
 * The WebGPU backend: every op of the Backend interface as reference WGSL kernels (kernels/), with
 * the CPU backend's shape checks, error messages and rounding conventions. Activations are float32
 * buffers, one per tensor (a tensor larger than one storage binding is refused, naming its size,
 * before any kernel runs); weights keep their stored dtype, in row parts when larger than a binding
 * (weights.ts). Ops enqueue work and return at once; read, nll and logSoftmaxParts wait, and report
 * any device error recorded meanwhile. The reductions WGSL cannot do in float64 (nll,
 * logSoftmaxParts) accumulate two-float sums on the device and finish in float64 on the host.
 * The backward ops of training (GradOps) are kernels too (gemmT, attentionBackward, rows,
 * elementwise, logsoftmax), with the CPU backend's checks, so training runs on the device.
 */
import { checkAttention, checkCrossEntropyGrad, checkLinear, checkLinearT, checkMatmulTN, checkRmsnormBackward, expectShape, type BTensor, type GptqDeviceFactor, type GptqSolveInput, type GptqSolveOutput, type GramAccumulator, type GramPrecision, type TrainableBackend } from '../backend.js';
import { UsageError } from '../../errors.js';
import { TensorScopes } from '../scope.js';
import type { CpuKernels } from '../cpu/kernels/kernels.js';
import type { Tensor } from '../../tensor/tensor.js';
import { decodeHalf } from '../../tensor/codecs.js';
import { isAwqPacked, isKindLayer, materializeKind, type PackedWeight } from '../../tensor/packed.js';
import { dequantizeAwq } from '../../tensor/awqPack.js';
import { decodeQuantRows } from '../cpu/kernels/qgemm.js';
import { acquireGpu, gemmShortfall, type GpuCapabilities, type GemmChoice, type KernelChoice } from './capabilities.js';
import { GpuDevice } from './device.js';
import { denseParts, destroyQuant, quantBytes, uploadAwq, uploadGptq, uploadKind, type DenseDtype, type DeviceQuant, type Part } from './weights.js';
import { linearAwq, linearDense, linearGptq } from './kernels/linear.js';
import { linearKind, linearTKind } from './kernels/kindDecoders.js';
import { QuipWeightCache, type QuipCacheStats } from './quipCache.js';
import { columnAbsMax } from './kernels/stats.js';
import { columnAbsSums, divColumns } from './kernels/columns.js';
import { scaledQuant, sumSquaredDiff } from './kernels/search.js';
import { clipCandidates, clipSearch, type ClipShape } from './kernels/clip.js';
import { quantizeRows, rmsnorm, rmsnormBackward } from './kernels/rows.js';
import { binary, embeddingPart, rope, scale, siluMulBackward } from './kernels/elementwise.js';
import { attention } from './kernels/attention.js';
import { attentionBackward } from './kernels/attentionBackward.js';
import { crossEntropyGrad, logSoftmaxRows } from './kernels/logsoftmax.js';
import { linearTAwq, linearTDense, linearTGptq, matmulTN } from './kernels/gemmT.js';
import { gram, gramBuffers, gramF32, readGram, type GramBuffers } from './kernels/gram.js';
import { gptqFactor, gptqSolve } from './kernels/gptq.js';

type Dtype = 'f32' | 'f16' | 'bf16' | 'q';

class GpuTensor implements BTensor {
  freed = false;
  /** its buffer ends with guard words (an op output under guardWords) */
  guarded = false;
  constructor(
    readonly shape: readonly number[],
    readonly dtype: Dtype,
    /** row parts of a dense tensor (one for activations); empty for a quantized weight */
    readonly parts: readonly Part[],
    readonly quant?: DeviceQuant,
  ) {}
  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }
}

function t(x: BTensor): GpuTensor {
  if (!(x instanceof GpuTensor)) throw new TypeError('tensor does not belong to the WebGPU backend');
  if (x.freed) throw new Error(`a freed ${x.dtype} tensor [${x.shape.join(', ')}] was used (use after free)`);
  return x;
}

/** The single buffer of a float32 tensor (the CPU backend's `f32` accessor, same message). */
function f32buf(x: GpuTensor): GPUBuffer {
  if (x.dtype !== 'f32') throw new TypeError(`expected a float32 tensor, got ${x.dtype}`);
  return single(x);
}
/** The buffer of a one-part dense tensor (any dtype but 'q'). */
function single(x: GpuTensor): GPUBuffer {
  if (x.dtype === 'q') throw new TypeError('a quantized weight can only be used by linear (or read)');
  if (x.parts.length !== 1) throw new UsageError(`webgpu: this op takes a tensor of one storage binding; [${x.shape.join(', ')}] (${x.dtype}) is split in ${x.parts.length} parts`);
  return x.parts[0]!.buffer;
}

/** S = Σ xᵀx as two-float (hi, lo) planes on the device (kernels/gram.wgsl.ts). */
class GpuGram implements GramAccumulator {
  released = false;
  constructor(readonly cols: number, readonly bufs: GramBuffers, readonly precision: GramPrecision) {}
}

function gramOf(acc: GramAccumulator): GpuGram {
  if (!(acc instanceof GpuGram)) throw new TypeError('Gram accumulator does not belong to the WebGPU backend');
  if (acc.released) throw new Error('a Gram accumulator was used after readGram released it');
  return acc;
}

export type WebGpuAvailability = { ok: true; backend: WebGpuBackend } | { ok: false; reason: string };

/**
 * The WebGPU backend when an adapter is available (with the adapter's limits requested), else why
 * not. `maxBinding` lowers the binding limit the backend plans with (tests of the row-part split
 * and of the size refusal, without 128 MiB tensors); it never raises it. `kernels` overrides
 * LOWBIT_WEBGPU_KERNELS for this backend (tests and benchmarks run both side by side), `gemm`
 * LOWBIT_WEBGPU_GEMM (the fast tiled GEMM's design); `maxWorkgroupBytes` lowers the workgroup memory the
 * kernels plan with, never raising it (tests of the smaller tiles and K steps a 16 or 8 KiB device gets).
 * `fma`: 'off' keeps the split-product kernels where the probe found a fused fma (benchmarks compare both
 * paths); 'emulated' runs the fma-path kernel text with fma() replaced by its exact emulation (tests, on a
 * device whose fma is not fused). `quipCacheBytes` overrides LOWBIT_WEBGPU_QUIP_CACHE_MIB (quipCache.ts; 0: rebuild
 * for every multiply); `quipButterflies` (tests) puts every QuIP layer's butterflies on the device or the host.
 * `acceleratedGemm` (tests) in place of "the adapter is a hardware one" (Backend.acceleratedGemm).
 * `shuffleLanes` (tests): the `shuffle` design's lane group in place of the device's (8 and 4 on lavapipe's
 * subgroups of 8 take the shuffles, 16 the design's fallback loop). A GEMM design the device cannot run
 * (`shuffle` without 'subgroups') is refused with a UsageError.
 */
export async function createWebGpuBackend(
  hostKernels: CpuKernels, hostNote: string,
  opts: {
    maxBinding?: number; guardWords?: boolean; kernels?: KernelChoice; gemm?: GemmChoice; maxWorkgroupBytes?: number; fma?: 'off' | 'emulated';
    quipCacheBytes?: number; quipButterflies?: 'device' | 'host'; shuffleLanes?: 4 | 8 | 16; acceleratedGemm?: boolean;
  } = {},
): Promise<WebGpuAvailability> {
  const g = await acquireGpu();
  if (!g.ok) return g;
  const caps = {
    ...g.caps,
    ...(opts.maxBinding ? { maxBinding: Math.min(opts.maxBinding, g.caps.maxBinding) } : {}),
    ...(opts.kernels ? { kernels: opts.kernels } : {}),
    ...(opts.fma ? { fmaFused: false, fmaEmulated: opts.fma === 'emulated' } : {}),
    ...(opts.gemm ? { gemm: opts.gemm, gemmTune: undefined, gemmChosen: 'named by the caller' } : {}), // not the tuned one
    ...(opts.quipCacheBytes !== undefined ? { quipCacheBytes: opts.quipCacheBytes } : {}),
    ...(opts.quipButterflies ? { quipButterflies: opts.quipButterflies } : {}),
    ...(opts.maxWorkgroupBytes ? {
      limits: Object.freeze({ ...g.caps.limits, maxComputeWorkgroupStorageSize: Math.min(opts.maxWorkgroupBytes, g.caps.limits.maxComputeWorkgroupStorageSize ?? 16384) }),
    } : {}),
    ...(opts.shuffleLanes && g.caps.subgroups ? { subgroups: Object.freeze({ ...g.caps.subgroups, shuffleLanes: opts.shuffleLanes }) } : {}),
  };
  const short = gemmShortfall(caps.gemm, caps);
  if (short) throw new UsageError(short);
  return { ok: true, backend: new WebGpuBackend(new GpuDevice(g.device, caps), hostKernels, hostNote, !!opts.guardWords, opts.acceleratedGemm ?? !caps.software) };
}

/** Guard words after every op output when asked (tests): a kernel writing past its output overwrites one. */
const GUARD_WORDS = 16, GUARD = 0x5eedf00d; // a finite float: NaN payloads cannot echo it back

export class WebGpuBackend implements TrainableBackend {
  readonly name = 'webgpu';
  private readonly scopes = new TensorScopes<GpuTensor>((x) => this.free(x));
  private live = 0;
  /** Rebuilt QuIP weights kept for the multiplies that follow (quipCache.ts). */
  private readonly quipCache: QuipWeightCache;
  /**
   * `acceleratedGemm` (Backend): a hardware adapter's; false on a software one, whose GEMM is slower than the host
   * kernels on the same cores (createWebGpuBackend's option overrides it: tests of the pipeline's device reports).
   */
  constructor(private readonly gpu: GpuDevice, readonly hostKernels: CpuKernels, private readonly hostNote: string, private readonly guardWords = false,
    readonly acceleratedGemm = !gpu.caps.software) {
    this.quipCache = new QuipWeightCache(gpu, gpu.caps.quipCacheBytes);
  }

  /** Tensors made and not yet freed (each holds one or more device buffers): tests check lifetimes with it. */
  get liveTensors(): number { return this.live; }

  /** Device bytes of the storage buffers alive now and at most so far (benchmarks: peak device memory). */
  deviceMemory(): { liveBytes: number; peakBytes: number } { return this.gpu.memory(); }

  /** The QuIP weight cache's budget, what it holds and its hits and misses (tests, benchmarks). */
  quipCacheStats(): QuipCacheStats { return this.quipCache.stats(); }

  /** Counts and records (in the open scope) a tensor just made. */
  private made(x: GpuTensor): GpuTensor {
    this.live++;
    return this.scopes.track(x);
  }

  scope<R>(f: () => R): R { return this.scopes.run(f); }

  /** Benchmarks: device time of the work recorded from timePasses() to gpuSeconds() (timestamp-query; false without it). */
  timePasses(): boolean { return this.gpu.timePasses(); }
  gpuSeconds(): Promise<number> { return this.gpu.gpuSeconds(); }

  get caps(): GpuCapabilities { return this.gpu.caps; }
  get description(): string {
    const notes = [
      this.caps.kernels === 'reference' ? 'reference kernels' : this.caps.gemmTune ? `GEMM ${this.caps.gemm}, the fastest here` : this.caps.gemm !== 'tiled' ? `GEMM ${this.caps.gemm}` : '',
      this.caps.fmaFused ? 'fma fused' : '',
    ].filter((n) => n);
    return `webgpu: ${this.caps.adapterName}, ${this.caps.runtime}${notes.length ? ` (${notes.join(', ')})` : ''}; host kernels ${this.hostNote}`;
  }

  /** A new float32 tensor (one buffer, checked against the binding limit first). */
  private out(op: string, shape: readonly number[]): GpuTensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const what = `${op} output [${shape.join(', ')}]`;
    this.gpu.fits(what, n * 4);
    const buffer = this.gpu.storage(what, (n + (this.guardWords ? GUARD_WORDS : 0)) * 4);
    const o = this.made(new GpuTensor(shape, 'f32', [{ buffer, start: 0, rows: shape[0] ?? 1 }]));
    if (this.guardWords) {
      this.gpu.write(buffer, new Uint32Array(GUARD_WORDS).fill(GUARD), n * 4);
      o.guarded = true;
    }
    return o;
  }

  /** With guardWords: throws unless the guard words after x's data are intact (tests). */
  async checkGuards(x: BTensor): Promise<void> {
    const g = t(x);
    if (!g.guarded) return;
    const n = g.numel;
    const words = new Uint32Array(await this.gpu.read(g.parts[0]!.buffer, (n + GUARD_WORDS) * 4), n * 4);
    if (words.some((w) => w !== GUARD)) throw new Error(`a kernel wrote past its output [${g.shape.join(', ')}]`);
  }

  upload(data: Float32Array, shape: readonly number[]): BTensor {
    expectShape('upload', 'data', [data.length], [shape.reduce((a, b) => a * b, 1)]);
    const o = this.out('upload', shape);
    this.gpu.write(o.parts[0]!.buffer, data);
    return o;
  }

  uploadWeight(w: Tensor): BTensor {
    const dtype: DenseDtype = w.dtype === 'bf16' || w.dtype === 'f16' ? w.dtype : 'f32';
    const data = dtype === 'f32' ? w.toF32() : w.data as Uint16Array;
    const rowElems = w.shape.length > 1 ? w.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
    const parts = denseParts(this.gpu, 'weight', w.shape, dtype, (buf, start, rows) => {
      this.gpu.write(buf, data.subarray(start * rowElems, (start + rows) * rowElems));
    });
    return this.made(new GpuTensor(w.shape, dtype, parts));
  }

  /** GPTQ, AWQ and the stored kinds' codes as stored, decoded in the shader; QuIP's codes as stored, its weight rebuilt on the device when multiplied and kept for reuse (quipCache.ts). */
  uploadQuantized(q: PackedWeight): BTensor {
    const dq = isKindLayer(q) ? uploadKind(this.gpu, q) : isAwqPacked(q) ? uploadAwq(this.gpu, q) : uploadGptq(this.gpu, q);
    return this.made(new GpuTensor([q.rows, q.cols], 'q', [], dq));
  }

  /** Bytes a tensor holds on the device (a quantized weight: its codes and parameters as stored). */
  deviceBytes(x: BTensor): number {
    const g = t(x);
    return g.quant ? quantBytes(g.quant) : g.parts.reduce((a, p) => a + p.buffer.size, 0);
  }

  async read(x: BTensor): Promise<Float32Array> {
    const g = t(x);
    if (g.quant) {
      if (g.quant.kind === 'dense' || g.quant.kind === 'packed' || g.quant.kind === 'quip') return materializeKind(g.quant.host);
      if (g.quant.kind === 'awq') return dequantizeAwq(g.quant.host);
      const out = new Float32Array(g.quant.host.rows * g.quant.host.cols);
      decodeQuantRows(g.quant.host, 0, g.quant.host.rows, out);
      return out;
    }
    const n = g.numel, rowElems = n / Math.max(g.shape[0] ?? 1, 1);
    const bytes = g.dtype === 'f32' ? 4 : 2;
    const all = new Uint8Array(n * bytes);
    for (const p of g.parts) {
      const b = await this.gpu.read(p.buffer, p.rows * rowElems * bytes);
      all.set(new Uint8Array(b), p.start * rowElems * bytes);
    }
    if (g.dtype === 'f32') return new Float32Array(all.buffer);
    return decodeHalf(g.dtype as 'f16' | 'bf16', new Uint16Array(all.buffer));
  }

  /** Destroys the tensor's buffers (after the work already submitted); a second free does nothing, a later use is an Error. */
  free(x: BTensor): void {
    if (!(x instanceof GpuTensor) || x.freed) return;
    x.freed = true;
    this.live--;
    this.gpu.destroy(...x.parts.map((p) => p.buffer));
    if (x.quant?.kind === 'quip') this.quipCache.drop(x.quant.bufs);
    if (x.quant) destroyQuant(this.gpu, x.quant);
  }

  embedding(table: BTensor, ids: Int32Array): BTensor {
    const tb = t(table);
    if (tb.dtype === 'q') throw new TypeError('embedding: the table is a quantized weight; only linear takes those');
    expectShape('embedding', 'table', tb.shape, [undefined, undefined]);
    const [V, D] = tb.shape as [number, number];
    for (const id of ids) if (id < 0 || id >= V) throw new RangeError(`embedding: token id ${id} outside the vocabulary of ${V}`);
    const out = this.out('embedding', [ids.length, D]);
    if (ids.length === 0 || D === 0) return out;
    const idBuf = this.gpu.upload('embedding ids', new Uint32Array(ids.buffer, ids.byteOffset, ids.length));
    for (const p of tb.parts) embeddingPart(this.gpu, tb.dtype as DenseDtype, idBuf, p.buffer, out.parts[0]!.buffer, ids.length, D, p.start, p.rows);
    this.gpu.destroy(idBuf);
    return out;
  }

  rmsnorm(x: BTensor, gamma: BTensor, eps: number): BTensor {
    const xs = t(x), g = t(gamma);
    const D = xs.shape[xs.shape.length - 1]!;
    expectShape('rmsnorm', 'gamma', g.shape, [D]);
    const xb = f32buf(xs), gb = single(g);
    const out = this.out('rmsnorm', xs.shape);
    rmsnorm(this.gpu, xb, gb, g.dtype as DenseDtype, out.parts[0]!.buffer, xs.numel / Math.max(D, 1), D, eps);
    return out;
  }

  linear(x: BTensor, w: BTensor): BTensor {
    const xs = t(x), ws = t(w);
    const { M, N, K } = checkLinear(xs, ws);
    const xb = f32buf(xs);
    const out = this.out('linear', [M, N]), yb = out.parts[0]!.buffer;
    const s = { M, K, ldy: N };
    if (M === 0 || N === 0) return out;
    const q = ws.quant;
    if (q?.kind === 'gptq') linearGptq(this.gpu, xb, q.bufs, yb, s, N);
    else if (q?.kind === 'awq') linearAwq(this.gpu, xb, q.bufs, yb, s, N);
    else if (q?.kind === 'packed') for (const p of q.parts) linearKind(this.gpu, xb, p.bufs, yb, s, p.rows, p.start);
    else if (q?.kind === 'quip') this.quipCache.with(q.bufs, (wb) => linearDense(this.gpu, 'f32', xb, wb, yb, s, N, 0));
    else {
      const parts = q?.kind === 'dense' ? q.parts : ws.parts;
      const dtype = q ? 'f32' : ws.dtype as DenseDtype;
      for (const p of parts) linearDense(this.gpu, dtype, xb, p.buffer, yb, s, p.rows, p.start);
    }
    return out;
  }

  rope(x: BTensor, nHeads: number, headDim: number, cos: BTensor, sin: BTensor): BTensor {
    const xs = t(x);
    const T = xs.shape[0]!;
    expectShape('rope', 'input', xs.shape, [T, nHeads * headDim]);
    expectShape('rope', 'cos', t(cos).shape, [T, headDim / 2]);
    expectShape('rope', 'sin', t(sin).shape, [T, headDim / 2]);
    const xb = f32buf(xs), cb = f32buf(t(cos)), sb = f32buf(t(sin));
    const out = this.out('rope', xs.shape);
    rope(this.gpu, xb, cb, sb, out.parts[0]!.buffer, T, nHeads, headDim);
    return out;
  }

  attention(q: BTensor, k: BTensor, v: BTensor, o: { nHeads: number; nKvHeads: number; headDim: number; offset: number }): BTensor {
    const qs = t(q), ks = t(k), vs = t(v);
    const { T } = checkAttention(qs, ks, vs, o);
    const qb = f32buf(qs), kb = f32buf(ks), vb = f32buf(vs);
    const out = this.out('attention', qs.shape);
    attention(this.gpu, qb, kb, vb, out.parts[0]!.buffer, { T, ...o });
    return out;
  }

  siluMul(gate: BTensor, up: BTensor): BTensor {
    const g = t(gate), u = t(up);
    expectShape('siluMul', 'up', u.shape, g.shape);
    const out = this.out('siluMul', g.shape);
    binary(this.gpu, 'silu_mul', f32buf(g), f32buf(u), out.parts[0]!.buffer, g.numel);
    return out;
  }

  quantizeRows(x: BTensor, bits: number): BTensor {
    const xs = t(x);
    if (!Number.isInteger(bits) || bits < 2 || bits > 16) throw new RangeError(`quantizeRows: bits ${bits} is not an integer in 2..16`);
    const D = xs.shape[xs.shape.length - 1]!;
    const xb = f32buf(xs);
    const out = this.out('quantizeRows', xs.shape);
    if (D > 0) quantizeRows(this.gpu, xb, out.parts[0]!.buffer, xs.numel / D, D, bits);
    return out;
  }

  add(a: BTensor, b: BTensor): BTensor {
    const x = t(a), y = t(b);
    expectShape('add', 'b', y.shape, x.shape);
    const out = this.out('add', x.shape);
    binary(this.gpu, 'add', f32buf(x), f32buf(y), out.parts[0]!.buffer, x.numel);
    return out;
  }

  rows(x: BTensor, start: number, count: number): BTensor {
    const xs = t(x);
    const M = xs.shape[0]!, D = xs.numel / Math.max(M, 1);
    const xb = f32buf(xs);
    if (start < 0 || count < 0 || start + count > M) throw new RangeError(`rows: [${start}, ${start + count}) outside ${M} rows`);
    const out = this.out('rows', [count, ...xs.shape.slice(1)]);
    this.gpu.copy(xb, start * D * 4, out.parts[0]!.buffer, 0, count * D * 4);
    return out;
  }

  concatRows(a: BTensor, b: BTensor): BTensor {
    const x = t(a), y = t(b);
    expectShape('concatRows', 'b', y.shape, [undefined, ...x.shape.slice(1)]);
    const xb = f32buf(x), yb = f32buf(y);
    const out = this.out('concatRows', [x.shape[0]! + y.shape[0]!, ...x.shape.slice(1)]);
    this.gpu.copy(xb, 0, out.parts[0]!.buffer, 0, x.numel * 4);
    this.gpu.copy(yb, 0, out.parts[0]!.buffer, x.numel * 4, y.numel * 4);
    return out;
  }

  readonly gramPrecisions: readonly GramPrecision[] = ['f64', 'f32'];

  gramAccumulator(cols: number, precision: GramPrecision = 'f64'): GramAccumulator {
    if (!Number.isInteger(cols) || cols < 1) throw new RangeError(`gramAccumulator: cols must be a positive integer (got ${cols})`);
    if (!this.gramPrecisions.includes(precision)) throw new RangeError(`gramAccumulator: precision must be 'f64' or 'f32' (got ${precision})`);
    return new GpuGram(cols, gramBuffers(this.gpu, cols), precision);
  }

  /**
   * S += xᵀx on the device: 'f64', two-float sums of exact products (about 1e-9 relative at 128 × 2048
   * tokens; see gram.wgsl.ts); 'f32', one float32 GEMM per call added exactly (gramFast.wgsl.ts).
   */
  gram(x: BTensor, acc: GramAccumulator): void {
    const g = gramOf(acc), xs = t(x);
    expectShape('gram', 'input', xs.shape, [undefined, g.cols]);
    (g.precision === 'f32' ? gramF32 : gram)(this.gpu, f32buf(xs), xs.shape[0]!, g.bufs);
  }

  /** SmoothQuant's per-channel max |x| on the device (kernels/stats): nothing is read back until acc is. */
  columnAbsMax(x: BTensor, acc: BTensor): void {
    const xs = t(x), a = t(acc), C = a.shape[0]!;
    expectShape('columnAbsMax', 'accumulator', a.shape, [C]);
    expectShape('columnAbsMax', 'input', xs.shape, [undefined, C]);
    columnAbsMax(this.gpu, f32buf(xs), f32buf(a), xs.shape[0]!, C);
  }

  /** AWQ's mean |x| per channel (kernels/columns): the host's float64 sums emulated on the device, [C] sums read once, / rows on the host. */
  async columnAbsMean(xs: readonly BTensor[]): Promise<Float32Array> {
    const n = xs.reduce((a, x) => a + (x.shape[0] ?? 0), 0);
    return Float32Array.from(await this.columnAbsSums(xs), (v) => v / n);
  }

  /** GPTQ's float32 inverse factor on the device (kernels/gptq.ts), kept for the solves of the layers that share H. */
  gptqFactor(H: Float32Array, cols: number, solve?: { rows: number; blocksize: number }): Promise<GptqDeviceFactor | undefined> {
    return gptqFactor(this.gpu, H, cols, solve);
  }

  /** GPTQ's float32 solve of one layer on the device against a factor from gptqFactor (kernels/gptq.ts). */
  gptqSolve(input: GptqSolveInput, factor: GptqDeviceFactor): Promise<GptqSolveOutput> {
    return gptqSolve(this.gpu, input, factor);
  }

  /** Tests: the float64 sums Σ|x| per channel behind columnAbsMean (the host's loop's bits). */
  async columnAbsSums(xs: readonly BTensor[]): Promise<Float64Array> {
    if (xs.length === 0) throw new RangeError('columnAbsMean: no tensors');
    const C = t(xs[0]!).shape[1]!;
    const bufs = xs.map((x) => {
      const g = t(x);
      expectShape('columnAbsMean', 'input', g.shape, [undefined, C]);
      return { x: f32buf(g), T: g.shape[0]! };
    });
    return C === 0 ? new Float64Array(0) : columnAbsSums(this.gpu, bufs, C);
  }

  /** x / s per column on the device (kernels/columns, div_cr): the host's Math.fround(x / s) bit for bit. */
  divColumns(x: BTensor, s: BTensor): BTensor {
    const xs = t(x), ss = t(s);
    expectShape('divColumns', 'input', xs.shape, [undefined, undefined]);
    const C = xs.shape[1]!;
    expectShape('divColumns', 'scales', ss.shape, [C]);
    const xb = f32buf(xs), sb = f32buf(ss);
    const out = this.out('divColumns', xs.shape);
    divColumns(this.gpu, xb, sb, out.parts[0]!.buffer, xs.numel, C);
    return out;
  }

  /** AWQ's candidate weight on the device (kernels/search): one output part per part of w, the host's bits. */
  scaledFakeQuant(w: BTensor, s: BTensor, o: { groupSize: number; bits: number; f16Scale: boolean }): BTensor {
    const ws = t(w), ss = t(s);
    if (ws.dtype !== 'f32' || ws.quant) throw new TypeError(`scaledFakeQuant: the weight must be a float32 weight, got ${ws.dtype}`);
    expectShape('scaledFakeQuant', 'weight', ws.shape, [undefined, undefined]);
    const [rows, cols] = ws.shape as [number, number];
    expectShape('scaledFakeQuant', 'scales', ss.shape, [cols]);
    const gs = o.groupSize === -1 ? cols : o.groupSize;
    if (!Number.isInteger(gs) || gs < 1 || cols % gs !== 0) throw new RangeError(`scaledFakeQuant: group size ${o.groupSize} does not divide ${cols} columns`);
    if (!Number.isInteger(o.bits) || o.bits < 1 || o.bits > 8) throw new RangeError(`scaledFakeQuant: bits ${o.bits} is not an integer in 1..8`);
    const sb = f32buf(ss);
    const parts = ws.parts.map((p) => {
      const buffer = this.gpu.storage(`scaledFakeQuant output [${p.rows}, ${cols}]`, p.rows * cols * 4);
      if (p.rows > 0) scaledQuant(this.gpu, p.buffer, sb, buffer, p.rows, cols, gs, o.bits, o.f16Scale);
      return { buffer, start: p.start, rows: p.rows };
    });
    return this.made(new GpuTensor(ws.shape, 'f32', parts));
  }

  /** Σ (a − b)² over the pairs: two-float partial sums on the device, added in float64 after one read (kernels/search). */
  async sumSquaredDiff(pairs: readonly (readonly [BTensor, BTensor])[]): Promise<number> {
    const bufs = pairs.map(([a, b]) => {
      const x = t(a), y = t(b);
      expectShape('sumSquaredDiff', 'b', y.shape, x.shape);
      return { a: f32buf(x), b: f32buf(y), n: x.numel };
    });
    return sumSquaredDiff(this.gpu, bufs);
  }

  /** AWQ's clip search on the device (kernels/clip): candidates, one GEMM per group and row chunk, errors and argmin there; the steps read once. */
  async clipSearch(x: BTensor, w: BTensor, maxVal: BTensor, o: { groupSize: number; bits: number; f16Scale: boolean }): Promise<Uint8Array> {
    const c = this.clipArgs(x, w, maxVal, o);
    return clipSearch(this.gpu, c.x, c.parts, c.maxv, c.shape);
  }

  /** Tests: the clip search's candidates [steps, rows, cols], as the search makes them. */
  async clipCandidates(x: BTensor, w: BTensor, maxVal: BTensor, o: { groupSize: number; bits: number; f16Scale: boolean }): Promise<Float32Array> {
    const c = this.clipArgs(x, w, maxVal, o);
    return clipCandidates(this.gpu, c.x, c.parts, c.maxv, c.shape);
  }

  private clipArgs(x: BTensor, w: BTensor, maxVal: BTensor, o: { groupSize: number; bits: number; f16Scale: boolean }) {
    const xs = t(x), ws = t(w), ms = t(maxVal);
    if (ws.dtype !== 'f32' || ws.quant) throw new TypeError(`clipSearch: the weight must be a float32 weight, got ${ws.dtype}`);
    expectShape('clipSearch', 'weight', ws.shape, [undefined, undefined]);
    const [rows, cols] = ws.shape as [number, number];
    expectShape('clipSearch', 'tokens', xs.shape, [undefined, cols]);
    const gs = o.groupSize === -1 ? cols : o.groupSize;
    if (!Number.isInteger(gs) || gs < 1 || cols % gs !== 0) throw new RangeError(`clipSearch: group size ${o.groupSize} does not divide ${cols} columns`);
    if (!Number.isInteger(o.bits) || o.bits < 1 || o.bits > 8) throw new RangeError(`clipSearch: bits ${o.bits} is not an integer in 1..8`);
    const steps = ms.shape[0]!;
    expectShape('clipSearch', 'bounds', ms.shape, [undefined, rows, cols / gs]);
    if (steps < 1 || steps > 255) throw new RangeError(`clipSearch: ${steps} steps is not in 1..255`);
    const shape: ClipShape = { n: xs.shape[0]!, rows, cols, gs, steps, bits: o.bits, f16: o.f16Scale };
    return { x: f32buf(xs), parts: ws.parts, maxv: f32buf(ms), shape };
  }

  async readGram(acc: GramAccumulator): Promise<Float64Array> {
    const g = gramOf(acc);
    g.released = true;
    return readGram(this.gpu, g.bufs);
  }

  async nll(logits: BTensor, targets: Int32Array): Promise<Float64Array> {
    const l = t(logits);
    const [T, V] = l.shape as [number, number];
    expectShape('nll', 'targets', [targets.length], [T]);
    const lb = f32buf(l);
    targets.forEach((tgt, row) => {
      if (tgt < 0 || tgt >= V) throw new RangeError(`nll: target ${tgt} at row ${row} outside the vocabulary of ${V}`);
    });
    const rows = await logSoftmaxRows(this.gpu, lb, Uint32Array.from(targets), T, V);
    // the host's kernel: max + log Σ exp(x − max) − x[target]; NaN when the max is not finite
    return Float64Array.from(rows, (r) => r.max + Math.log(r.sum) - r.pickedLogit);
  }

  async logSoftmaxParts(logits: BTensor, targets: Int32Array, offset: number): Promise<{ lse: Float64Array; picked: Float64Array }> {
    const l = t(logits);
    expectShape('logSoftmaxParts', 'logits', l.shape, [undefined, undefined]);
    const [T, C] = l.shape as [number, number];
    expectShape('logSoftmaxParts', 'targets', [targets.length], [T]);
    if (!Number.isSafeInteger(offset)) throw new RangeError(`logSoftmaxParts: offset ${offset} is not an integer`);
    if (C === 0) throw new RangeError('logSoftmaxParts: the chunk has no columns');
    const lb = f32buf(l);
    const local = new Uint32Array(T);
    for (let i = 0; i < T; i++) {
      const k = targets[i]! - offset;
      local[i] = k >= 0 && k < C ? k : 0; // column 0 stands in for a target elsewhere, as on the CPU
    }
    const rows = await logSoftmaxRows(this.gpu, lb, local, T, C);
    const lse = new Float64Array(T), picked = new Float64Array(T);
    rows.forEach((r, i) => {
      const k = targets[i]! - offset, v = r.pickedLogit;
      const full = Number.isFinite(r.max) ? r.max + Math.log(r.sum) : r.max;
      // the CPU backend's order of operations: (lse − v) + v for a finite picked logit
      lse[i] = Number.isFinite(v) ? (Number.isFinite(r.max) ? full - v : NaN) + v : full;
      picked[i] = k >= 0 && k < C ? v : NaN;
    });
    return { lse, picked };
  }

  // ---- GradOps (training's backward; the CPU backend's checks and messages) ----

  /** dy·W for W in any stored dtype or kind: the forward's weight decoders read transposed (kernels/gemmT). */
  linearT(dy: BTensor, w: BTensor): BTensor {
    const g = t(dy), ws = t(w);
    const { M, N, K } = checkLinearT(g, ws);
    const gb = f32buf(g);
    const out = this.out('linearT', [M, K]), xb = out.parts[0]!.buffer;
    if (M === 0 || K === 0) return out;
    const s = { M, K, ldy: N };
    const q = ws.quant;
    if (q?.kind === 'gptq') linearTGptq(this.gpu, gb, q.bufs, xb, s, N);
    else if (q?.kind === 'awq') linearTAwq(this.gpu, gb, q.bufs, xb, s, N);
    else if (q?.kind === 'packed') q.parts.forEach((p, i) => linearTKind(this.gpu, gb, p.bufs, xb, s, p.rows, p.start, i > 0));
    else if (q?.kind === 'quip') this.quipCache.with(q.bufs, (wb) => linearTDense(this.gpu, 'f32', gb, wb, xb, s, N, 0, false));
    else {
      const parts = q?.kind === 'dense' ? q.parts : ws.parts;
      const dtype = q ? 'f32' : ws.dtype as DenseDtype;
      // N = 0 leaves one empty part: its kernel writes the zeros of an empty sum
      parts.forEach((p, i) => linearTDense(this.gpu, dtype, gb, p.buffer, xb, s, p.rows, p.start, i > 0));
    }
    return out;
  }

  matmulTN(a: BTensor, b: BTensor): BTensor {
    const as = t(a), bs = t(b);
    const { M, N, K } = checkMatmulTN(as, bs);
    const ab = f32buf(as), bb = f32buf(bs);
    const out = this.out('matmulTN', [N, K]);
    matmulTN(this.gpu, ab, bb, out.parts[0]!.buffer, M, N, K);
    return out;
  }

  rmsnormBackward(x: BTensor, gamma: BTensor, dy: BTensor, eps: number): BTensor {
    const xs = t(x), g = t(gamma), d = t(dy);
    const D = checkRmsnormBackward(xs, g, d);
    const xb = f32buf(xs), gb = single(g), db = f32buf(d);
    const out = this.out('rmsnormBackward', xs.shape);
    if (D > 0) rmsnormBackward(this.gpu, xb, gb, g.dtype as DenseDtype, db, out.parts[0]!.buffer, xs.numel / D, D, eps);
    return out;
  }

  attentionBackward(q: BTensor, k: BTensor, v: BTensor, dOut: BTensor, o: { nHeads: number; nKvHeads: number; headDim: number; offset: number }): { dq: BTensor; dk: BTensor; dv: BTensor } {
    const qs = t(q), ks = t(k), vs = t(v), d = t(dOut);
    const { T, S } = checkAttention(qs, ks, vs, o);
    expectShape('attentionBackward', 'output gradient', d.shape, qs.shape);
    const qb = f32buf(qs), kb = f32buf(ks), vb = f32buf(vs), db = f32buf(d);
    const dq = this.out('attentionBackward', qs.shape), dk = this.out('attentionBackward', ks.shape), dv = this.out('attentionBackward', vs.shape);
    attentionBackward(this.gpu, qb, kb, vb, db, dq.parts[0]!.buffer, dk.parts[0]!.buffer, dv.parts[0]!.buffer, { T, S, ...o });
    return { dq, dk, dv };
  }

  siluMulBackward(gate: BTensor, up: BTensor, dy: BTensor): { dGate: BTensor; dUp: BTensor } {
    const g = t(gate), u = t(up), d = t(dy);
    expectShape('siluMulBackward', 'up', u.shape, g.shape);
    expectShape('siluMulBackward', 'output gradient', d.shape, g.shape);
    const gb = f32buf(g), ub = f32buf(u), db = f32buf(d);
    const dGate = this.out('siluMulBackward', g.shape), dUp = this.out('siluMulBackward', g.shape);
    siluMulBackward(this.gpu, gb, ub, db, dGate.parts[0]!.buffer, dUp.parts[0]!.buffer, g.numel);
    return { dGate, dUp };
  }

  scale(x: BTensor, s: number): BTensor {
    const xs = t(x);
    const xb = f32buf(xs);
    const out = this.out('scale', xs.shape);
    scale(this.gpu, xb, out.parts[0]!.buffer, xs.numel, s);
    return out;
  }

  mul(a: BTensor, b: BTensor): BTensor {
    const x = t(a), y = t(b);
    expectShape('mul', 'b', y.shape, x.shape);
    const out = this.out('mul', x.shape);
    binary(this.gpu, 'mul', f32buf(x), f32buf(y), out.parts[0]!.buffer, x.numel);
    return out;
  }

  crossEntropyGrad(logits: BTensor, lse: Float64Array, targets: Int32Array, weights: Float32Array): BTensor {
    const l = t(logits);
    const { T, V } = checkCrossEntropyGrad(l, lse, targets, weights);
    const lb = f32buf(l);
    const out = this.out('crossEntropyGrad', [T, V]);
    crossEntropyGrad(this.gpu, lb, lse, targets, weights, out.parts[0]!.buffer, T, V);
    return out;
  }
}
