import { DType, AnyTypedArray, DTYPE_BYTES } from './dtype.js';
import { decodeHalf } from './codecs.js';

/** A dense row-major tensor: shape, storage dtype and a typed array over its data. */
export class Tensor {
  constructor(
    readonly dtype: DType,
    readonly shape: readonly number[],
    readonly data: AnyTypedArray,
  ) {
    const n = numel(shape);
    if (data.length !== n) throw new RangeError(`tensor data has ${data.length} elements, shape [${shape.join(', ')}] needs ${n}`);
  }

  get numel(): number { return this.data.length; }
  get byteLength(): number { return this.numel * DTYPE_BYTES[this.dtype]; }

  static f32(shape: readonly number[], data?: Float32Array): Tensor {
    return new Tensor('f32', shape, data ?? new Float32Array(numel(shape)));
  }

  /** float32 values: the same array when already f32, a decoded copy for f16/bf16/f64/ints. */
  toF32(): Float32Array {
    const d = this.data;
    if (this.dtype === 'f32') return d as Float32Array;
    if (this.dtype === 'bf16' || this.dtype === 'f16') return decodeHalf(this.dtype, d as Uint16Array);
    if (d instanceof BigInt64Array) return Float32Array.from(d, (x) => Number(x));
    return Float32Array.from(d as ArrayLike<number>);
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}
