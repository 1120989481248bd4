import { FormatError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TensorInfo, TensorSource } from './source.js';
import { checkRowRange, sliceRows } from './rows.js';

/** Tensors held in memory behind the TensorSource interface (tests, converted or quantized models). */
export class MemorySource implements TensorSource {
  private readonly map: Map<string, Tensor>;
  constructor(readonly path: string, tensors: Iterable<[string, Tensor]>) {
    this.map = new Map(tensors);
  }
  list(): readonly TensorInfo[] {
    return [...this.map].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, storedAs: t.dtype.toUpperCase() }));
  }
  has(name: string): boolean { return this.map.has(name); }
  read(name: string): Tensor {
    const t = this.map.get(name);
    if (!t) throw new FormatError(this.path, `no tensor named ${name}`);
    return t;
  }
  /** A view of the rows (no copy: the tensor is resident anyway). */
  readRows(name: string, start: number, count: number): Tensor {
    const t = this.read(name);
    checkRowRange(this.path, name, t.shape, start, count);
    return sliceRows(t, start, count, false);
  }
  set(name: string, t: Tensor): void { this.map.set(name, t); }
}
