import { checkAttention, checkCrossEntropyGrad, checkLinear, checkLinearT, checkMatmulTN, checkRmsnormBackward, expectShape, type BTensor, type GramAccumulator, type TrainableBackend } from '../backend.js';
import { collectGarbage } from './gc.js';
import { TensorScopes } from '../scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { CpuKernels, ResidentArray, ResidentMemory } from './kernels/kernels.js';
import { jsKernels } from './kernels/js.js';
import { jsLinalg } from './kernels/jsLinalg.js';
import { decodeHalf } from '../../tensor/codecs.js';
import { isAwqPacked, isKindLayer, materializeKind, type GptqPacked, type KindLayer, type PackedWeight } from '../../tensor/packed.js';
import { awqToGptq } from '../../tensor/awqPack.js';
import { checkQuantWeight, decodeQuantRows, gemmKindPanels, gemmQPanels } from './kernels/qgemm.js';
import * as grad from './gradKernels.js';

/** log Σ exp(x[o..o+n)) in float64 (max trick); −∞ for an all −∞ row. */
function rowLogSumExp(x: Float32Array, o: number, n: number): number {
  let mx = -Infinity;
  for (let j = 0; j < n; j++) if (x[o + j]! > mx) mx = x[o + j]!;
  if (mx === -Infinity || !Number.isFinite(mx)) return mx;
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(x[o + j]! - mx);
  return mx + Math.log(sum);
}

/** torch.round: nearest, ties to even. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * SmoothQuant's `quantize_activation_per_token_absmax` on rows x[M, D] into y, in float32: per row
 * s = max(max|x|, 1e-5) / qmax with qmax = 2^(bits−1) − 1, y = round(x / s) · s (no clamp, as the reference).
 */
export function quantizeRowsAbsmax(x: Float32Array, y: Float32Array, M: number, D: number, bits: number): void {
  const qmax = 2 ** (bits - 1) - 1;
  for (let m = 0; m < M; m++) {
    const o = m * D;
    let mx = 0;
    for (let j = 0; j < D; j++) { const a = Math.abs(x[o + j]!); if (a > mx) mx = a; }
    const s = Math.fround(Math.max(mx, Math.fround(1e-5)) / qmax);
    for (let j = 0; j < D; j++) y[o + j] = Math.fround(roundEven(Math.fround(x[o + j]! / s)) * s);
  }
}

/** Host-memory tensor of the CPU backend. */
class CpuTensor implements BTensor {
  constructor(
    readonly shape: readonly number[],
    readonly dtype: 'f32' | 'f16' | 'bf16' | 'q',
    readonly data: Float32Array | Uint16Array,
    /** the packed weight when dtype is 'q' (data is then empty): GPTQ's layout, or a method-specific kind */
    readonly quant?: GptqPacked | KindLayer,
  ) {}
  /** the kernels' resident memory that `data` lives in (a weight under the wasm provider), released by free */
  resident?: ResidentMemory;
  /** set by free on a resident tensor: its memory may hold other data now */
  freed = false;
  get f32(): Float32Array {
    if (this.dtype !== 'f32') throw new TypeError(`expected a float32 tensor, got ${this.dtype}`);
    return this.data as Float32Array;
  }
}

/**
 * Resident weights that were never freed (a replaced or forgotten weight) give their memory back
 * when garbage collected; `free` unregisters. Nothing else refers to their data (read copies it).
 */
const unfreed = new FinalizationRegistry<{ mem: ResidentMemory; data: ResidentArray }>(({ mem, data }) => {
  try { mem.release(data); } catch { /* its pool is gone */ }
});

function t(x: BTensor): CpuTensor {
  if (!(x instanceof CpuTensor)) throw new TypeError('tensor does not belong to the CPU backend');
  if (x.freed) throw new Error(`a freed ${x.dtype} tensor [${x.shape.join(', ')}] was used (use after free)`);
  return x;
}
function f32(shape: readonly number[], data?: Float32Array): CpuTensor {
  return new CpuTensor(shape, 'f32', data ?? new Float32Array(shape.reduce((a, b) => a * b, 1)));
}

/** Any tensor's values as float32 (a view for f32; a quantized or half weight decoded). */
function dense(c: CpuTensor): Float32Array {
  if (c.quant) {
    if (isKindLayer(c.quant)) return materializeKind(c.quant);
    const out = new Float32Array(c.quant.rows * c.quant.cols);
    decodeQuantRows(c.quant, 0, c.quant.rows, out);
    return out;
  }
  if (c.dtype === 'f32') return c.f32;
  return decodeHalf(c.dtype as 'bf16' | 'f16', c.data as Uint16Array);
}

/** S = Σ xᵀx in float64, upper triangle (the kernels' `gram` contract), until readGram mirrors it. */
class CpuGram implements GramAccumulator {
  readonly S: Float64Array;
  released = false;
  constructor(readonly cols: number) { this.S = new Float64Array(cols * cols); }
}

function gramOf(acc: GramAccumulator): CpuGram {
  if (!(acc instanceof CpuGram)) throw new TypeError('Gram accumulator does not belong to the CPU backend');
  if (acc.released) throw new Error('a Gram accumulator was used after readGram released it');
  return acc;
}

/** The CPU backend: orchestration in TypeScript over a kernel provider (js, wasm or native). */
export class CpuBackend implements TrainableBackend {
  readonly name = 'cpu';
  /**
   * Only resident weights are recorded: `free` acts on nothing else (every other tensor is garbage
   * collected when unreachable), so freeing those is all a scope's end can do.
   */
  private readonly scopes = new TensorScopes<CpuTensor>((x) => { if (!x.freed) this.free(x); });
  constructor(readonly kernels: CpuKernels = jsKernels, private readonly threadNote = 'js, 1 thread') {}

  get hostKernels(): CpuKernels { return this.kernels; }

  get description(): string { return `cpu: ${this.threadNote}`; }

  upload(data: Float32Array, shape: readonly number[]): BTensor {
    expectShape('upload', 'data', [data.length], [shape.reduce((a, b) => a * b, 1)]);
    return f32(shape, data);
  }

  uploadWeight(w: Tensor): BTensor {
    if (w.dtype === 'f32' || w.dtype === 'bf16' || w.dtype === 'f16') return this.weight(w.shape, w.dtype, w.data as Float32Array | Uint16Array);
    return this.weight(w.shape, 'f32', w.toF32());
  }

  /**
   * A weight tensor: its data copied once into the kernels' resident memory when they have one (the
   * wasm provider then never copies it per call), else `data` itself. A full resident region is not
   * an error: the weight then stays an ordinary array, copied per call as before.
   */
  private weight(shape: readonly number[], dtype: 'f32' | 'bf16' | 'f16', data: Float32Array | Uint16Array): CpuTensor {
    const mem = this.kernels.resident;
    let r: Float32Array | Uint16Array | undefined;
    if (mem) {
      try { r = dtype === 'f32' ? mem.alloc('f32', data.length) : mem.alloc('u16', data.length); } catch (e) {
        if (!(e instanceof RangeError)) throw e;
      }
    }
    if (!r) return new CpuTensor(shape, dtype, data);
    r.set(data);
    const c = new CpuTensor(shape, dtype, r);
    c.resident = mem;
    unfreed.register(c, { mem: mem!, data: r }, c);
    return this.scopes.track(c);
  }

  /**
   * Kept as codes. The CPU kernels multiply by GPTQ's layout (codes packed along the input, the
   * order a row panel is decoded in), so an AWQ weight is repacked into it once here: the same
   * codes, zeros and scales, so the same values bit for bit.
   */
  uploadQuantized(q: PackedWeight): BTensor {
    if (isKindLayer(q)) return new CpuTensor([q.rows, q.cols], 'q', new Float32Array(0), q);
    const g = isAwqPacked(q) ? awqToGptq(q) : q as GptqPacked;
    checkQuantWeight(g, 'uploadQuantized');
    return new CpuTensor([g.rows, g.cols], 'q', new Float32Array(0), g);
  }

  async read(x: BTensor): Promise<Float32Array> {
    const c = t(x);
    return c.dtype === 'f32' && c.resident ? c.f32.slice() : dense(c); // resident memory is reused after free
  }

  /**
   * Gives a resident weight's memory back (an Error if it was already freed; using it afterwards is
   * an Error too). Everything else is garbage collected: free is a no-op for it.
   */
  free(x: BTensor): void {
    if (!(x instanceof CpuTensor) || !x.resident) return;
    if (x.freed) throw new Error(`free: this ${x.dtype} tensor [${x.shape.join(', ')}] was already freed`);
    x.freed = true;
    unfreed.unregister(x);
    x.resident.release(x.data);
  }

  scope<R>(f: () => R): R { return this.scopes.run(f); }

  gramAccumulator(cols: number): GramAccumulator {
    if (!Number.isInteger(cols) || cols < 1) throw new RangeError(`gramAccumulator: cols must be a positive integer (got ${cols})`);
    return new CpuGram(cols);
  }

  /** S += xᵀx with the kernels' float64 gram (exact products, float64 sums): the host Hessian's own path, bit for bit. */
  gram(x: BTensor, acc: GramAccumulator): void {
    const g = gramOf(acc), xs = t(x);
    expectShape('gram', 'input', xs.shape, [undefined, g.cols]);
    (this.kernels.gram ?? jsLinalg.gram)(xs.f32, g.S, xs.shape[0]!, g.cols);
  }

  columnAbsMax(x: BTensor, acc: BTensor): void {
    const xs = t(x), a = t(acc), C = a.shape[0]!;
    expectShape('columnAbsMax', 'accumulator', a.shape, [C]);
    expectShape('columnAbsMax', 'input', xs.shape, [undefined, C]);
    const v = xs.f32, m = a.f32;
    for (let i = 0; i < v.length; i++) { const s = Math.abs(v[i]!), c = i % C; if (s > m[c]!) m[c] = s; }
  }

  /** Σ |x| per channel in float64, tensor after tensor and row after row, / the rows, rounded to float32 (awq.ts's host meanAbs). */
  async columnAbsMean(xs: readonly BTensor[]): Promise<Float32Array> {
    if (xs.length === 0) throw new RangeError('columnAbsMean: no tensors');
    const C = t(xs[0]!).shape[1]!;
    const sum = new Float64Array(C);
    let n = 0;
    for (const x of xs) {
      const c = t(x);
      expectShape('columnAbsMean', 'input', c.shape, [undefined, C]);
      const v = c.f32;
      for (let i = 0; i < v.length; i++) sum[i % C]! += Math.abs(v[i]!);
      n += c.shape[0]!;
    }
    return Float32Array.from(sum, (v) => v / n);
  }

  divColumns(x: BTensor, s: BTensor): BTensor {
    const xs = t(x), ss = t(s);
    expectShape('divColumns', 'input', xs.shape, [undefined, undefined]);
    const C = xs.shape[1]!;
    expectShape('divColumns', 'scales', ss.shape, [C]);
    const out = f32(xs.shape), o = out.f32, v = xs.f32, d = ss.f32;
    for (let i = 0; i < o.length; i++) o[i] = v[i]! / d[i % C]!;
    return out;
  }

  /** Σ (a − b)² in float64, pair after pair, element by element (what AWQ summed on the host before it had this op). */
  async sumSquaredDiff(pairs: readonly (readonly [BTensor, BTensor])[]): Promise<number> {
    let s = 0;
    for (const [a, b] of pairs) {
      const x = t(a), y = t(b);
      expectShape('sumSquaredDiff', 'b', y.shape, x.shape);
      const u = x.f32, v = y.f32;
      for (let i = 0; i < u.length; i++) { const d = u[i]! - v[i]!; s += d * d; }
    }
    return s;
  }

  async readGram(acc: GramAccumulator): Promise<Float64Array> {
    const g = gramOf(acc), { S, cols } = g;
    g.released = true;
    for (let a = 0; a < cols; a++) for (let b = a + 1; b < cols; b++) S[b * cols + a] = S[a * cols + b]!;
    return S;
  }

  /** A full garbage collection under --expose-gc (gc.ts): a freed block's ArrayBuffers go back before the next block is read. */
  reclaim(): void { collectGarbage(); }

  private kernelsDecode(c: CpuTensor): Float32Array {
    if (c.dtype === 'q') throw new TypeError('a quantized weight can only be used by linear (or read)');
    return decodeHalf(c.dtype as 'bf16' | 'f16', c.data as Uint16Array);
  }

  embedding(table: BTensor, ids: Int32Array): BTensor {
    const tb = t(table);
    if (tb.dtype === 'q') throw new TypeError('embedding: the table is a quantized weight; only linear takes those');
    expectShape('embedding', 'table', tb.shape, [undefined, undefined]);
    const [V, D] = tb.shape as [number, number];
    const out = f32([ids.length, D]);
    const row = new Float32Array(D);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id < 0 || id >= V) throw new RangeError(`embedding: token id ${id} outside the vocabulary of ${V}`);
      if (tb.dtype === 'f32') out.f32.set(tb.f32.subarray(id * D, id * D + D), i * D);
      else {
        this.rowDecode(tb, id, D, row);
        out.f32.set(row, i * D);
      }
    }
    return out;
  }

  private rowDecode(tb: CpuTensor, id: number, D: number, row: Float32Array): void {
    decodeHalf(tb.dtype as 'bf16' | 'f16', (tb.data as Uint16Array).subarray(id * D, id * D + D), row);
  }

  rmsnorm(x: BTensor, gamma: BTensor, eps: number): BTensor {
    const xs = t(x), g = t(gamma);
    const D = xs.shape[xs.shape.length - 1]!;
    expectShape('rmsnorm', 'gamma', g.shape, [D]);
    const M = xs.f32.length / D;
    const out = f32(xs.shape);
    this.kernels.rmsnorm(xs.f32, g.dtype === 'f32' ? g.f32 : this.kernelsDecode(g), out.f32, M, D, eps);
    return out;
  }

  linear(x: BTensor, w: BTensor): BTensor {
    const xs = t(x), ws = t(w);
    const { M, N, K } = checkLinear(xs, ws);
    const out = f32([M, N]);
    if (ws.quant) {
      const q = ws.quant;
      if (isKindLayer(q)) return f32([M, N], gemmKindPanels(this.kernels.gemm, xs.f32, q, M));
      if (this.kernels.gemmQ) this.kernels.gemmQ(xs.f32, q, out.f32, M);
      else gemmQPanels(this.kernels.gemm, xs.f32, q, out.f32, M); // row panels decoded by the js reference
    } else if (ws.dtype === 'f32') this.kernels.gemm(xs.f32, ws.f32, out.f32, M, N, K);
    else this.kernels.gemmHalf(xs.f32, ws.data as Uint16Array, ws.dtype as 'bf16' | 'f16', out.f32, M, N, K);
    return out;
  }

  rope(x: BTensor, nHeads: number, headDim: number, cos: BTensor, sin: BTensor): BTensor {
    const xs = t(x);
    const T = xs.shape[0]!;
    expectShape('rope', 'input', xs.shape, [T, nHeads * headDim]);
    expectShape('rope', 'cos', t(cos).shape, [T, headDim / 2]);
    expectShape('rope', 'sin', t(sin).shape, [T, headDim / 2]);
    const out = f32(xs.shape, xs.f32.slice());
    this.kernels.rope(out.f32, T, nHeads, headDim, t(cos).f32, t(sin).f32);
    return out;
  }

  attention(q: BTensor, k: BTensor, v: BTensor, o: { nHeads: number; nKvHeads: number; headDim: number; offset: number }): BTensor {
    const qs = t(q), ks = t(k), vs = t(v);
    const { T, S } = checkAttention(qs, ks, vs, o);
    const out = f32(qs.shape);
    this.kernels.attention(qs.f32, ks.f32, vs.f32, out.f32, T, S, o.offset, o.nHeads, o.nKvHeads, o.headDim);
    return out;
  }

  siluMul(gate: BTensor, up: BTensor): BTensor {
    const g = t(gate), u = t(up);
    expectShape('siluMul', 'up', u.shape, g.shape);
    const out = f32(g.shape);
    this.kernels.siluMul(g.f32, u.f32, out.f32, g.f32.length);
    return out;
  }

  quantizeRows(x: BTensor, bits: number): BTensor {
    const xs = t(x);
    if (!Number.isInteger(bits) || bits < 2 || bits > 16) throw new RangeError(`quantizeRows: bits ${bits} is not an integer in 2..16`);
    const D = xs.shape[xs.shape.length - 1]!;
    const out = f32(xs.shape);
    quantizeRowsAbsmax(xs.f32, out.f32, xs.f32.length / Math.max(D, 1), D, bits);
    return out;
  }

  add(a: BTensor, b: BTensor): BTensor {
    const x = t(a), y = t(b);
    expectShape('add', 'b', y.shape, x.shape);
    const out = f32(x.shape), o = out.f32, xa = x.f32, ya = y.f32;
    for (let i = 0; i < o.length; i++) o[i] = xa[i]! + ya[i]!;
    return out;
  }

  rows(x: BTensor, start: number, count: number): BTensor {
    const xs = t(x);
    const M = xs.shape[0]!, D = xs.f32.length / Math.max(M, 1);
    if (start < 0 || count < 0 || start + count > M) throw new RangeError(`rows: [${start}, ${start + count}) outside ${M} rows`);
    const view = xs.f32.subarray(start * D, (start + count) * D);
    return f32([count, ...xs.shape.slice(1)], xs.resident ? view.slice() : view); // resident memory is reused after free
  }

  concatRows(a: BTensor, b: BTensor): BTensor {
    const x = t(a), y = t(b);
    expectShape('concatRows', 'b', y.shape, [undefined, ...x.shape.slice(1)]);
    const out = f32([x.shape[0]! + y.shape[0]!, ...x.shape.slice(1)]);
    out.f32.set(x.f32, 0);
    out.f32.set(y.f32, x.f32.length);
    return out;
  }

  async nll(logits: BTensor, targets: Int32Array): Promise<Float64Array> {
    const l = t(logits);
    const [T, V] = l.shape as [number, number];
    expectShape('nll', 'targets', [targets.length], [T]);
    const out = new Float64Array(T);
    this.kernels.nll(l.f32, targets, out, T, V);
    return out;
  }

  /** Reuses the nll kernel: with a target column k inside the chunk, nll = lse − logit[k], so lse = nll + logit[k]. */
  async logSoftmaxParts(logits: BTensor, targets: Int32Array, offset: number): Promise<{ lse: Float64Array; picked: Float64Array }> {
    const l = t(logits);
    expectShape('logSoftmaxParts', 'logits', l.shape, [undefined, undefined]);
    const [T, C] = l.shape as [number, number];
    expectShape('logSoftmaxParts', 'targets', [targets.length], [T]);
    if (!Number.isSafeInteger(offset)) throw new RangeError(`logSoftmaxParts: offset ${offset} is not an integer`);
    if (C === 0) throw new RangeError('logSoftmaxParts: the chunk has no columns');
    const x = l.f32;
    const local = new Int32Array(T);
    for (let i = 0; i < T; i++) {
      const k = targets[i]! - offset;
      local[i] = k >= 0 && k < C ? k : 0; // any column gives lse; column 0 stands in for a target elsewhere
    }
    const lse = new Float64Array(T), picked = new Float64Array(T);
    this.kernels.nll(x, local, lse, T, C);
    for (let i = 0; i < T; i++) {
      const k = targets[i]! - offset, v = x[i * C + local[i]!]!;
      lse[i] = Number.isFinite(v) ? lse[i]! + v : rowLogSumExp(x, i * C, C); // (nll + −∞ would be NaN)
      picked[i] = k >= 0 && k < C ? v : NaN;
    }
    return { lse, picked };
  }

  // ---- GradOps (training's backward; gradKernels.ts) ----

  /**
   * dy·W: with the provider's gemmNN / gemmNNHalf the weight is read in place (a quantized one decoded
   * once); without them it is decoded and transposed once per call for the provider's gemm.
   */
  linearT(dy: BTensor, w: BTensor): BTensor {
    const g = t(dy), ws = t(w);
    const { M, N, K } = checkLinearT(g, ws);
    const out = f32([M, K]);
    const k = this.kernels;
    if (!ws.quant && ws.dtype !== 'f32' && k.gemmNNHalf) k.gemmNNHalf(g.f32, ws.data as Uint16Array, ws.dtype as 'bf16' | 'f16', out.f32, M, N, K);
    else if (k.gemmNN) k.gemmNN(g.f32, dense(ws), out.f32, M, N, K);
    else k.gemm(g.f32, grad.transpose(dense(ws), N, K), out.f32, M, K, N);
    return out;
  }

  matmulTN(a: BTensor, b: BTensor): BTensor {
    const as = t(a), bs = t(b);
    const { M, N, K } = checkMatmulTN(as, bs);
    const out = f32([N, K]);
    if (this.kernels.gemmTN) this.kernels.gemmTN(as.f32, bs.f32, out.f32, M, N, K);
    else this.kernels.gemm(grad.transpose(as.f32, M, N), grad.transpose(bs.f32, M, K), out.f32, N, K, M);
    return out;
  }

  rmsnormBackward(x: BTensor, gamma: BTensor, dy: BTensor, eps: number): BTensor {
    const xs = t(x), g = t(gamma), d = t(dy);
    const D = checkRmsnormBackward(xs, g, d);
    const out = f32(xs.shape);
    grad.rmsnormBackward(xs.f32, dense(g), d.f32, out.f32, xs.f32.length / D, D, eps);
    return out;
  }

  attentionBackward(q: BTensor, k: BTensor, v: BTensor, dOut: BTensor, o: { nHeads: number; nKvHeads: number; headDim: number; offset: number }): { dq: BTensor; dk: BTensor; dv: BTensor } {
    const qs = t(q), ks = t(k), vs = t(v), d = t(dOut);
    const { T, S } = checkAttention(qs, ks, vs, o);
    expectShape('attentionBackward', 'output gradient', d.shape, qs.shape);
    const dq = f32(qs.shape), dk = f32(ks.shape), dv = f32(vs.shape);
    grad.attentionBackward(qs.f32, ks.f32, vs.f32, d.f32, dq.f32, dk.f32, dv.f32, T, S, o.offset, o.nHeads, o.nKvHeads, o.headDim);
    return { dq, dk, dv };
  }

  siluMulBackward(gate: BTensor, up: BTensor, dy: BTensor): { dGate: BTensor; dUp: BTensor } {
    const g = t(gate), u = t(up), d = t(dy);
    expectShape('siluMulBackward', 'up', u.shape, g.shape);
    expectShape('siluMulBackward', 'output gradient', d.shape, g.shape);
    const dGate = f32(g.shape), dUp = f32(g.shape);
    grad.siluMulBackward(g.f32, u.f32, d.f32, dGate.f32, dUp.f32, g.f32.length);
    return { dGate, dUp };
  }

  scale(x: BTensor, s: number): BTensor {
    const xs = t(x).f32, out = f32(x.shape), o = out.f32;
    for (let i = 0; i < o.length; i++) o[i] = xs[i]! * s;
    return out;
  }

  mul(a: BTensor, b: BTensor): BTensor {
    const x = t(a), y = t(b);
    expectShape('mul', 'b', y.shape, x.shape);
    const out = f32(x.shape), o = out.f32, xa = x.f32, ya = y.f32;
    for (let i = 0; i < o.length; i++) o[i] = xa[i]! * ya[i]!;
    return out;
  }

  crossEntropyGrad(logits: BTensor, lse: Float64Array, targets: Int32Array, weights: Float32Array): BTensor {
    const l = t(logits);
    const { T, V } = checkCrossEntropyGrad(l, lse, targets, weights);
    const out = f32([T, V]);
    grad.crossEntropyGrad(l.f32, lse, targets, weights, out.f32, T, V);
    return out;
  }
}
