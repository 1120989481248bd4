/**
 * GGUF v3 writer, the pair of parse.ts: magic "GGUF", version 3, u64 tensor count, u64 metadata
 * count, typed metadata key/values, tensor infos (name, n_dims, ne[] in ggml order, type, offset
 * relative to the data section), padding to `general.alignment` (32), then each tensor's bytes,
 * each padded to the alignment (reference: gguf-py/gguf/gguf_writer.py). Written atomically.
 */
import { writeFileAtomic } from '../atomic.js';
import { GGML_LAYOUT, GgmlType, GgufValueType, ggmlTypeName } from './types.js';

export const GGUF_ALIGNMENT = 32;

/** One metadata value with its GGUF type; arrays hold items of one scalar type. */
export type GgufKv =
  | { key: string; type: GgufValueType.STRING; value: string }
  | { key: string; type: GgufValueType.UINT32 | GgufValueType.INT32 | GgufValueType.FLOAT32; value: number }
  | { key: string; type: GgufValueType.BOOL; value: boolean }
  | { key: string; type: GgufValueType.ARRAY; itemType: GgufValueType.STRING; value: readonly string[] }
  | { key: string; type: GgufValueType.ARRAY; itemType: GgufValueType.INT32 | GgufValueType.FLOAT32; value: readonly number[] };

export interface GgufTensorOut {
  readonly name: string;
  /** ggml order: ne[0] is the row length (columns) */
  readonly ne: readonly number[];
  readonly type: GgmlType;
  readonly data: Uint8Array;
}

class Bytes {
  private readonly parts: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void { this.parts.push(b); this.length += b.length; }
  private scalar(n: number, set: (v: DataView) => void): void {
    const b = new Uint8Array(n);
    set(new DataView(b.buffer));
    this.push(b);
  }
  u32(v: number): void { this.scalar(4, (d) => d.setUint32(0, v, true)); }
  i32(v: number): void { this.scalar(4, (d) => d.setInt32(0, v, true)); }
  f32(v: number): void { this.scalar(4, (d) => d.setFloat32(0, v, true)); }
  u64(v: number): void { this.scalar(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  str(s: string): void { const b = new TextEncoder().encode(s); this.u64(b.length); this.push(b); }
  pad(align: number): void { this.push(new Uint8Array((align - (this.length % align)) % align)); }
  chunks(): Uint8Array[] { return this.parts; }
}

function scalar(w: Bytes, type: GgufValueType, v: string | number | boolean): void {
  switch (type) {
    case GgufValueType.STRING: w.str(v as string); break;
    case GgufValueType.UINT32: w.u32(v as number); break;
    case GgufValueType.INT32: w.i32(v as number); break;
    case GgufValueType.FLOAT32: w.f32(v as number); break;
    case GgufValueType.BOOL: w.push(new Uint8Array([v ? 1 : 0])); break;
    default: throw new RangeError(`GGUF writer: value type ${GgufValueType[type]} is not written`);
  }
}

/** Bytes a tensor of `type` and shape `ne` must have. */
export function ggufTensorBytes(type: GgmlType, ne: readonly number[]): number {
  const layout = GGML_LAYOUT[type];
  if (!layout) throw new RangeError(`GGUF writer: type ${ggmlTypeName(type)} has no layout`);
  if ((ne[0] ?? 1) % layout.block !== 0) throw new RangeError(`GGUF writer: row length ${ne[0]} is not a multiple of the ${ggmlTypeName(type)} block (${layout.block})`);
  return (ne.reduce((a, b) => a * b, 1) / layout.block) * layout.bytes;
}

/** The file's bytes as chunks in order (the header, then each tensor and its padding). */
export function encodeGguf(metadata: readonly GgufKv[], tensors: readonly GgufTensorOut[]): Uint8Array[] {
  const keys = new Set<string>();
  const w = new Bytes();
  w.push(new TextEncoder().encode('GGUF'));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const kv of metadata) {
    if (keys.has(kv.key)) throw new RangeError(`GGUF writer: metadata key "${kv.key}" given twice`);
    keys.add(kv.key);
    w.str(kv.key);
    w.u32(kv.type);
    if (kv.type === GgufValueType.ARRAY) {
      w.u32(kv.itemType);
      w.u64(kv.value.length);
      for (const item of kv.value) scalar(w, kv.itemType, item);
    } else scalar(w, kv.type, kv.value);
  }
  let offset = 0;
  for (const t of tensors) {
    const want = ggufTensorBytes(t.type, t.ne);
    if (t.data.length !== want) throw new RangeError(`GGUF writer: tensor "${t.name}" has ${t.data.length} bytes; ${ggmlTypeName(t.type)} [${t.ne.join(', ')}] is ${want}`);
    w.str(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.data.length / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  }
  w.pad(GGUF_ALIGNMENT);
  for (const t of tensors) {
    w.push(t.data);
    w.pad(GGUF_ALIGNMENT);
  }
  return w.chunks();
}

/** Writes a GGUF v3 file atomically (temporary sibling, fsync, rename). */
export function writeGguf(path: string, metadata: readonly GgufKv[], tensors: readonly GgufTensorOut[]): void {
  writeFileAtomic(path, encodeGguf(metadata, tensors));
}
