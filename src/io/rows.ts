/**
 * Partial reads: rows [start, start + count) of a tensor along its first dimension, so that an
 * embedding table or an LM head (1 GB each for LLaMA-3-8B in bf16) is never resident whole.
 * Sources implement `TensorSource.readRows`; `readRows` here falls back to `read` + a copy of the rows.
 */
import { FormatError } from '../errors.js';
import type { AnyTypedArray } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { pairsToHalves } from './qkPermute.js';
import type { TensorInfo, TensorSource } from './source.js';

/** Elements per row of a tensor of `shape` (the product of all dimensions but the first; 1 for a vector). */
export function rowElements(shape: readonly number[]): number {
  let n = 1;
  for (let i = 1; i < shape.length; i++) n *= shape[i]!;
  return n;
}

/**
 * Checks a row range against a tensor's shape before anything is read: a RangeError naming the
 * file and the tensor when the tensor is a scalar or the rows lie outside it.
 */
export function checkRowRange(path: string, name: string, shape: readonly number[], start: number, count: number): void {
  if (shape.length === 0) throw new RangeError(`${path}: tensor "${name}" is a scalar, it has no rows to read`);
  const rows = shape[0]!;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0 || start + count > rows) {
    throw new RangeError(`${path}: tensor "${name}" [${shape.join(', ')}]: rows [${start}, ${start + count}) lie outside its ${rows} rows`);
  }
}

/** Rows [start, start + count) of `t` as a new tensor (a copy when `copy`, else a view of t's data). */
export function sliceRows(t: Tensor, start: number, count: number, copy = true): Tensor {
  const row = rowElements(t.shape);
  const d = t.data as Float32Array; // every typed array has subarray/slice with this signature
  const data = copy ? d.slice(start * row, (start + count) * row) : d.subarray(start * row, (start + count) * row);
  return new Tensor(t.dtype, [count, ...t.shape.slice(1)], data);
}

/**
 * Rows [start, start + count) of tensor `name` of `source` along its first dimension: a partial
 * read when the source has `readRows`, else the whole tensor read and the rows copied out.
 */
export function readRows(source: TensorSource, name: string, start: number, count: number): Tensor {
  if (source.readRows) return source.readRows(name, start, count);
  const t = source.read(name);
  checkRowRange(source.path, name, t.shape, start, count);
  return sliceRows(t, start, count);
}

/** The listed info of `name`, or a FormatError naming the file when the source has no such tensor. */
function tensorInfo(source: TensorSource, name: string): TensorInfo {
  const info = source.list().find((t) => t.name === name);
  if (!info) throw new FormatError(source.path, `no tensor named "${name}"`);
  return info;
}

/** Row ranges of one tensor, read repeatedly (embedding gathers, LM head chunks). */
export interface RowReader {
  readonly info: TensorInfo;
  /** rows in the first dimension */
  readonly rows: number;
  /** elements per row */
  readonly rowElements: number;
  /** true when every `read` is a partial read (the source has `readRows`) */
  readonly partial: boolean;
  read(start: number, count: number): Tensor;
}

/**
 * A RowReader over `name`: partial reads when the source supports them; otherwise the tensor is
 * read once, on the first `read`, and kept for the reader's life (never re-read per range).
 */
export function rowReader(source: TensorSource, name: string): RowReader {
  const info = tensorInfo(source, name);
  if (info.shape.length === 0) throw new RangeError(`${source.path}: tensor "${name}" is a scalar, it has no rows to read`);
  let whole: Tensor | undefined;
  const partial = typeof source.readRows === 'function';
  return {
    info, rows: info.shape[0]!, rowElements: rowElements(info.shape), partial,
    read(start: number, count: number): Tensor {
      if (partial) return source.readRows!(name, start, count);
      whole ??= source.read(name);
      checkRowRange(source.path, name, whole.shape, start, count);
      return sliceRows(whole, start, count, false);
    },
  };
}

/**
 * Rows [start, start + count) in Hugging Face rotate-half order of a q/k projection stored with
 * adjacent-pair rows (GGUF, llama2.c): reads the whole heads that hold them (`readStored(first,
 * n)` gives stored rows [first, first + n) as row-major data), un-permutes those heads and keeps
 * the requested rows. `rows` is the tensor's row count, `nHead` its number of heads.
 */
export function rotateHalfRows<T extends AnyTypedArray>(
  rows: number, cols: number, nHead: number, start: number, count: number,
  readStored: (first: number, n: number) => T,
): T {
  const d = rows / nHead;
  if (count === 0) return readStored(start, 0);
  const h0 = Math.floor(start / d), h1 = Math.floor((start + count - 1) / d);
  const heads = h1 - h0 + 1;
  const block = pairsToHalves(readStored(h0 * d, heads * d), heads * d, cols, heads);
  const from = (start - h0 * d) * cols;
  const b = block as unknown as Float32Array;
  return (from === 0 && count === heads * d ? block : b.slice(from, from + count * cols)) as unknown as T;
}
