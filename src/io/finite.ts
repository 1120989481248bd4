/**
 * Non-finite weights (NaN, ±Inf) give a NaN perplexity with exit code 0, so every weight a
 * checkpoint returns is scanned once as it is read: a FormatError naming the file, the tensor and
 * the first bad element. One pass over the stored words, no decode: f16/bf16 are tested on their
 * exponent bits. The file readers themselves stay format-only (a safetensors file may hold Inf);
 * openModel wraps a checkpoint's weights in FiniteSource.
 */
import { FormatError } from '../errors.js';
import { isGptqPacked, packedParameters, type PackedWeight } from '../tensor/packed.js';
import { Tensor } from '../tensor/tensor.js';
import { readRows } from './rows.js';
import { fileOf, type TensorInfo, type TensorSource } from './source.js';

/** All exponent bits set: Inf or NaN. */
const F16_EXP = 0x7c00;
const BF16_EXP = 0x7f80;
/** Largest float32: an f64 weight beyond it becomes Inf when the engine converts it. */
const F32_MAX = 3.4028234663852886e38;

/** Index of the first element that is not a finite float32, or -1 (and -1 for integer tensors). */
function firstNonFinite(t: Tensor): number {
  const d = t.data;
  switch (t.dtype) {
    case 'f32': {
      const f = d as Float32Array;
      for (let i = 0; i < f.length; i++) if (f[i]! - f[i]! !== 0) return i;
      return -1;
    }
    case 'f64': {
      const f = d as Float64Array;
      for (let i = 0; i < f.length; i++) if (!(Math.abs(f[i]!) <= F32_MAX)) return i;
      return -1;
    }
    case 'f16': case 'bf16': {
      const h = d as Uint16Array, exp = t.dtype === 'f16' ? F16_EXP : BF16_EXP;
      for (let i = 0; i < h.length; i++) if ((h[i]! & exp) === exp) return i;
      return -1;
    }
    default: return -1;
  }
}

/** `t` itself, or a FormatError naming `path` and `name` when it holds a NaN or an infinity. */
function checkFinite(path: string, name: string, t: Tensor): Tensor {
  const i = firstNonFinite(t);
  if (i >= 0) {
    const v = t.dtype === 'f32' || t.dtype === 'f64' ? String((t.data as Float32Array)[i]) : `bits 0x${(t.data as Uint16Array)[i]!.toString(16)}`;
    throw new FormatError(path, `tensor "${name}" holds non-finite values (element ${i} is ${v}); the weights are corrupt`);
  }
  return t;
}

/** The packed form's scales (float32 in memory, whatever their stored dtype). */
function checkScales(path: string, name: string, q: PackedWeight): PackedWeight {
  const p = packedParameters(q);
  checkFinite(path, `${name} (scales)`, new Tensor('f32', [p.length], p));
  if (isGptqPacked(q) && q.zerosF) checkFinite(path, `${name} (qzeros_float)`, new Tensor('f32', [q.zerosF.length], q.zerosF));
  return q;
}

/** `inner` with every tensor it returns checked by checkFinite (the packed form: its scales). */
export class FiniteSource implements TensorSource {
  constructor(private readonly inner: TensorSource) {}
  get path(): string { return this.inner.path; }
  list(): readonly TensorInfo[] { return this.inner.list(); }
  has(name: string): boolean { return this.inner.has(name); }
  fileOf(name: string): string { return fileOf(this.inner, name); }
  read(name: string): Tensor { return checkFinite(this.fileOf(name), name, this.inner.read(name)); }
  readRows(name: string, start: number, count: number): Tensor {
    return checkFinite(this.fileOf(name), name, readRows(this.inner, name, start, count));
  }
  readQuantized(name: string): PackedWeight | undefined {
    const q = this.inner.readQuantized?.(name);
    return q && checkScales(this.fileOf(name), name, q);
  }
}
