/**
 * GGUF v2/v3 header: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, metadata
 * key/values, tensor infos (name, n_dims, ne[], type, offset), then the data section aligned to
 * `general.alignment` (default 32). Every count and length is checked against the bytes left in
 * the file before anything is allocated; tensor extents are checked against the file size and
 * against each other (no two tensors share bytes).
 */
import { FormatError } from '../../errors.js';
import { HeaderCursor, utf8 } from '../fileBytes.js';
import { GGML_LAYOUT, GgufValueType, type GgufHeader, type GgufTensorInfo, type GgufValue } from './types.js';

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const DEFAULT_ALIGNMENT = 32;
const MAX_DIMS = 4; // GGML_MAX_DIMS

/** Smallest encoding of one item of each value type, to bound counts before allocating. */
const MIN_BYTES: Readonly<Record<number, number>> = {
  [GgufValueType.UINT8]: 1, [GgufValueType.INT8]: 1, [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT16]: 2, [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4, [GgufValueType.INT32]: 4, [GgufValueType.FLOAT32]: 4,
  [GgufValueType.UINT64]: 8, [GgufValueType.INT64]: 8, [GgufValueType.FLOAT64]: 8,
  [GgufValueType.STRING]: 8, [GgufValueType.ARRAY]: 12,
};

function readString(c: HeaderCursor, what: string): string {
  const n = c.size64(`${what} length`, c.remaining - 8);
  return utf8(c.path, c.bytes(n, what), what);
}

function small(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}

function readValue(c: HeaderCursor, type: number, what: string, depth: number): GgufValue {
  switch (type) {
    case GgufValueType.UINT8: return c.u8(what);
    case GgufValueType.INT8: return c.i8(what);
    case GgufValueType.UINT16: return c.u16(what);
    case GgufValueType.INT16: return c.i16(what);
    case GgufValueType.UINT32: return c.u32(what);
    case GgufValueType.INT32: return c.i32(what);
    case GgufValueType.FLOAT32: return c.f32(what);
    case GgufValueType.FLOAT64: return c.f64(what);
    case GgufValueType.UINT64: return small(c.u64(what));
    case GgufValueType.INT64: return small(c.i64(what));
    case GgufValueType.BOOL: {
      const b = c.u8(what);
      if (b > 1) c.fail(`${what}: bool value ${b}`);
      return b === 1;
    }
    case GgufValueType.STRING: return readString(c, what);
    case GgufValueType.ARRAY: {
      if (depth > 0) c.fail(`${what}: nested arrays are not supported`);
      const itemType = c.u32(`${what} item type`);
      const min = MIN_BYTES[itemType];
      if (min === undefined) c.fail(`${what}: unknown array item type ${itemType}`);
      const count = c.size64(`${what} array length`, Math.floor((c.remaining - 8) / min));
      const out: GgufValue[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = readValue(c, itemType, what, depth + 1);
      return out;
    }
    default: return c.fail(`${what}: unknown value type ${type}`);
  }
}

export function readGgufHeader(path: string): GgufHeader {
  const c = new HeaderCursor(path);
  const magic = c.u32('magic');
  if (magic !== MAGIC) c.fail(`not a GGUF file (magic 0x${magic.toString(16).padStart(8, '0')}, expected "GGUF")`);
  const version = c.u32('version');
  if (version !== 2 && version !== 3) c.fail(`GGUF version ${version} is not supported (2 or 3)`);
  // A tensor info takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes; a KV pair 8 + 4 + 1.
  const tensorCount = c.size64('tensor count', Math.floor((c.remaining - 8) / 24));
  const kvCount = c.size64('metadata count', Math.floor((c.remaining - 24 * tensorCount) / 13));

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = readString(c, `metadata key #${i}`);
    const type = c.u32(`metadata "${key}" type`);
    if (metadata.has(key)) c.fail(`metadata key "${key}" appears twice`);
    metadata.set(key, readValue(c, type, `metadata "${key}"`, 0));
  }

  let alignment = DEFAULT_ALIGNMENT;
  if (metadata.has('general.alignment')) {
    const a = metadata.get('general.alignment');
    if (typeof a !== 'number' || a <= 0 || (a & (a - 1)) !== 0) c.fail(`general.alignment ${String(a)} is not a power of two`);
    alignment = a as number;
  }

  const infos: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = readString(c, `tensor #${i} name`);
    if (names.has(name)) c.fail(`tensor "${name}" appears twice`);
    names.add(name);
    const nDims = c.u32(`tensor "${name}" n_dims`);
    if (nDims > MAX_DIMS) c.fail(`tensor "${name}": ${nDims} dimensions (at most ${MAX_DIMS})`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(c.size64(`tensor "${name}" dimension ${d}`, Number.MAX_SAFE_INTEGER));
    const type = c.u32(`tensor "${name}" type`);
    const offset = c.size64(`tensor "${name}" offset`, c.size);
    if (offset % alignment !== 0) c.fail(`tensor "${name}": offset ${offset} is not a multiple of the alignment ${alignment}`);
    infos.push(Object.freeze({ name, ne: Object.freeze(ne), type, offset }));
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const header: GgufHeader = Object.freeze({ path, version, metadata, tensors: Object.freeze(infos), alignment, dataStart, fileSize: c.size });
  // Extents of the types we can decode are checked now; others fail when read, naming the type.
  // Such a tensor must also end before the next tensor starts: overlapping data is refused.
  // (An empty tensor owns no bytes; one of an undecodable type may own some.)
  const byOffset = infos.map((t) => ({ t, bytes: tensorBytes(header, t) })).filter((x) => x.bytes !== 0).sort((a, b) => a.t.offset - b.t.offset);
  for (const [k, { t, bytes }] of byOffset.entries()) {
    if (bytes === undefined) continue;
    const start = dataStart + t.offset, end = start + bytes;
    if (end > c.size) c.fail(`tensor "${t.name}": data [${start}, ${end}) runs past the end of the file (${c.size} bytes)`);
    const next = byOffset[k + 1]?.t;
    if (next && dataStart + next.offset < end) c.fail(`tensor "${t.name}": data [${start}, ${end}) overlaps tensor "${next.name}" (starting at ${dataStart + next.offset})`);
  }
  return header;
}

/** Byte size of a tensor of a supported type, undefined for types lowbit does not decode. */
export function tensorBytes(h: GgufHeader, t: GgufTensorInfo): number | undefined {
  const layout = GGML_LAYOUT[t.type as keyof typeof GGML_LAYOUT];
  if (!layout) return undefined;
  let n = 1;
  for (const d of t.ne) n *= d;
  if ((t.ne[0] ?? 1) % layout.block !== 0) {
    throw new FormatError(h.path, `tensor "${t.name}": row length ${t.ne[0]} is not a multiple of the block size ${layout.block}`);
  }
  const bytes = (n / layout.block) * layout.bytes;
  if (!Number.isSafeInteger(n) || !Number.isSafeInteger(bytes)) throw new FormatError(h.path, `tensor "${t.name}": shape [${t.ne.join(', ')}] is too large`);
  return bytes;
}
