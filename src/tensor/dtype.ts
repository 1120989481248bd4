/** Storage dtypes lowbit reads and writes. Arithmetic is always float32 (or float64 in references). */
export type DType = 'f64' | 'f32' | 'f16' | 'bf16' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8' | 'bool';

export const DTYPE_BYTES: Readonly<Record<DType, number>> = Object.freeze({
  f64: 8, f32: 4, f16: 2, bf16: 2, i64: 8, i32: 4, i16: 2, i8: 1, u8: 1, bool: 1,
});

/** safetensors dtype names <-> ours. */
export const SAFETENSORS_DTYPES: Readonly<Record<string, DType>> = Object.freeze({
  F64: 'f64', F32: 'f32', F16: 'f16', BF16: 'bf16', I64: 'i64', I32: 'i32', I16: 'i16', I8: 'i8', U8: 'u8', BOOL: 'bool',
});

export type AnyTypedArray =
  Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** View `bytes` (copied if misaligned) as the typed array of `dtype`. */
export function viewAs(dtype: DType, bytes: Uint8Array): AnyTypedArray {
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype}`);
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const n = aligned.byteLength / size;
  const buf = aligned.buffer, off = aligned.byteOffset;
  switch (dtype) {
    case 'f64': return new Float64Array(buf, off, n);
    case 'f32': return new Float32Array(buf, off, n);
    case 'f16': case 'bf16': return new Uint16Array(buf, off, n);
    case 'i64': return new BigInt64Array(buf, off, n);
    case 'i32': return new Int32Array(buf, off, n);
    case 'i16': return new Int16Array(buf, off, n);
    case 'i8': return new Int8Array(buf, off, n);
    case 'u8': case 'bool': return new Uint8Array(buf, off, n);
  }
}
