import { expectShape, type Backend, type BTensor } from '../backend.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { CpuKernels } from './kernels/kernels.js';
import { jsKernels } from './kernels/js.js';
import { decodeHalf } from '../../tensor/codecs.js';
import type { QuantWeight } from '../../quant/pack/gptqPack.js';
import { checkQuantWeight, decodeQuantRows, gemmQPanels } from './kernels/qgemm.js';

/** Host-memory tensor of the CPU backend. */
class CpuTensor implements BTensor {
  constructor(
    readonly shape: readonly number[],
    readonly dtype: 'f32' | 'f16' | 'bf16' | 'q',
    readonly data: Float32Array | Uint16Array,
    /** the packed weight when dtype is 'q' (data is then empty) */
    readonly quant?: QuantWeight,
  ) {}
  get f32(): Float32Array {
    if (this.dtype !== 'f32') throw new TypeError(`expected a float32 tensor, got ${this.dtype}`);
    return this.data as Float32Array;
  }
}

function t(x: BTensor): CpuTensor {
  if (!(x instanceof CpuTensor)) throw new TypeError('tensor does not belong to the CPU backend');
  return x;
}
function f32(shape: readonly number[], data?: Float32Array): CpuTensor {
  return new CpuTensor(shape, 'f32', data ?? new Float32Array(shape.reduce((a, b) => a * b, 1)));
}

/** The CPU backend: orchestration in TypeScript over a kernel provider (js, wasm or native). */
export class CpuBackend implements Backend {
  readonly name = 'cpu';
  constructor(readonly kernels: CpuKernels = jsKernels, private readonly threadNote = 'js, 1 thread') {}

  get hostKernels(): CpuKernels { return this.kernels; }

  get description(): string { return `cpu: ${this.threadNote}`; }

  upload(data: Float32Array, shape: readonly number[]): BTensor {
    expectShape('upload', 'data', [data.length], [shape.reduce((a, b) => a * b, 1)]);
    return f32(shape, data);
  }

  uploadWeight(w: Tensor): BTensor {
    if (w.dtype === 'f32' || w.dtype === 'bf16' || w.dtype === 'f16') return new CpuTensor(w.shape, w.dtype, w.data as Float32Array | Uint16Array);
    return f32(w.shape, w.toF32());
  }

  uploadQuantized(q: QuantWeight): BTensor {
    checkQuantWeight(q, 'uploadQuantized');
    return new CpuTensor([q.rows, q.cols], 'q', new Float32Array(0), q);
  }

  async read(x: BTensor): Promise<Float32Array> {
    const c = t(x);
    if (c.quant) {
      const out = new Float32Array(c.quant.rows * c.quant.cols);
      decodeQuantRows(c.quant, 0, c.quant.rows, out);
      return out;
    }
    return c.dtype === 'f32' ? c.f32 : this.kernelsDecode(c);
  }

  free(_x: BTensor): void { /* garbage collected */ }

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
    expectShape('linear', 'weight', ws.shape, [undefined, undefined]);
    const [N, K] = ws.shape as [number, number];
    expectShape('linear', 'input', xs.shape, [undefined, K]);
    const M = xs.shape[0]!;
    const out = f32([M, N]);
    if (ws.quant) {
      const q = ws.quant;
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
    const T = qs.shape[0]!, S = ks.shape[0]!;
    if (o.nHeads % o.nKvHeads !== 0) throw new RangeError(`attention: ${o.nHeads} heads is not a multiple of ${o.nKvHeads} KV heads`);
    expectShape('attention', 'q', qs.shape, [T, o.nHeads * o.headDim]);
    expectShape('attention', 'k', ks.shape, [S, o.nKvHeads * o.headDim]);
    expectShape('attention', 'v', vs.shape, [S, o.nKvHeads * o.headDim]);
    if (S < o.offset + T) throw new RangeError(`attention: ${S} keys cannot cover offset ${o.offset} + ${T} queries`);
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
    return f32([count, ...xs.shape.slice(1)], xs.f32.subarray(start * D, (start + count) * D));
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
}
