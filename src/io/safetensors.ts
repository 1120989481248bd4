/**
 * safetensors: u64 little-endian header length N, N bytes of JSON
 * ({"__metadata__": {str: str}, name: {dtype, shape, data_offsets: [begin, end]}}), then the data.
 * The reader validates the whole header before reading any tensor and then reads tensor by tensor
 * with positioned reads. The writer lays the file out the way the Rust library does (compact JSON,
 * header padded with spaces to a multiple of 8, offsets contiguous in the given order).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from './atomic.js';
import { FormatError, UsageError } from '../errors.js';
import { DTYPE_BYTES, SAFETENSORS_DTYPES, viewAs, type DType } from '../tensor/dtype.js';
import { Tensor, numel } from '../tensor/tensor.js';
import { fileSize, readAt, utf8 } from './fileBytes.js';
import type { TensorInfo, TensorSource } from './source.js';
import { checkRowRange } from './rows.js';

/** The Rust library refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;

interface Entry extends TensorInfo {
  /** absolute byte offset of the tensor's data in the file */
  readonly start: number;
  readonly byteLength: number;
}

function parseEntry(path: string, name: string, raw: unknown, dataStart: number, dataLength: number): Entry {
  const bad = (msg: string): never => { throw new FormatError(path, `tensor "${name}": ${msg}`); };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('header entry is not an object');
  const e = raw as Record<string, unknown>;
  const storedAs = e.dtype;
  if (typeof storedAs !== 'string') return bad('missing dtype');
  const dtype: DType | undefined = Object.hasOwn(SAFETENSORS_DTYPES, storedAs) ? SAFETENSORS_DTYPES[storedAs] : undefined;
  if (!dtype) return bad(`unknown dtype "${storedAs}"`);
  const shape = e.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return bad('shape is not a list of non-negative integers');
  const n = numel(shape as number[]);
  const byteLength = n * DTYPE_BYTES[dtype];
  if (!Number.isSafeInteger(byteLength)) return bad(`shape [${shape.join(', ')}] is too large`);
  const offs = e.data_offsets;
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    return bad('data_offsets is not a pair of non-negative integers');
  }
  const [begin, end] = offs as [number, number];
  if (end < begin || end > dataLength) bad(`data_offsets [${begin}, ${end}] lie outside the data section (${dataLength} bytes)`);
  if (end - begin !== byteLength) bad(`data_offsets span ${end - begin} bytes, but ${storedAs} [${shape.join(', ')}] needs ${byteLength}`);
  return { name, dtype, shape: Object.freeze([...(shape as number[])]), storedAs, start: dataStart + begin, byteLength };
}

/** One .safetensors file. */
export class SafetensorsFile implements TensorSource {
  readonly metadata: Readonly<Record<string, string>>;
  /** size of the JSON header as stored (after the 8-byte length) */
  readonly headerLength: number;
  private readonly entries = new Map<string, Entry>();

  private constructor(readonly path: string) {
    const size = fileSize(path);
    if (size < 8) throw new FormatError(path, `truncated: ${size} bytes, a safetensors file starts with an 8-byte header length`);
    const n = new DataView(readAt(path, 0, 8, 'header length').buffer).getBigUint64(0, true);
    if (n > BigInt(size - 8)) throw new FormatError(path, `header length ${n} exceeds the file (${size} bytes)`);
    if (n > BigInt(MAX_HEADER_BYTES)) throw new FormatError(path, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    this.headerLength = Number(n);
    const text = utf8(path, readAt(path, 8, this.headerLength, 'header'), 'header');
    if (!text.startsWith('{')) throw new FormatError(path, 'header does not start with "{"');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new FormatError(path, `header is not valid JSON (${(err as Error).message})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FormatError(path, 'header is not a JSON object');
    const dataStart = 8 + this.headerLength;
    const dataLength = size - dataStart;
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !Object.values(raw).every((v) => typeof v === 'string')) {
          throw new FormatError(path, '__metadata__ must map strings to strings');
        }
        metadata = raw as Record<string, string>;
        continue;
      }
      this.entries.set(name, parseEntry(path, name, raw, dataStart, dataLength));
    }
    // As the Rust library: tensors tile the data section, without gaps or overlaps.
    const byOffset = [...this.entries.values()].sort((a, b) => a.start - b.start || a.byteLength - b.byteLength);
    let at = dataStart;
    for (const e of byOffset) {
      if (e.start !== at) throw new FormatError(path, `tensor "${e.name}": data starts at byte ${e.start}, expected ${at} (gap or overlap)`);
      at += e.byteLength;
    }
    if (at !== size) throw new FormatError(path, `data section has ${size - at} bytes that belong to no tensor`);
    this.metadata = Object.freeze(metadata);
  }

  static open(path: string): SafetensorsFile {
    return new SafetensorsFile(path);
  }

  /** Tensors in header order. */
  list(): readonly TensorInfo[] {
    return [...this.entries.values()].map(({ name, dtype, shape, storedAs }) => ({ name, dtype, shape, storedAs }));
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) throw new UsageError(`${this.path}: no tensor named "${name}"`);
    return e;
  }

  /** The tensor's raw bytes, as stored. */
  readBytes(name: string): Uint8Array {
    const e = this.entry(name);
    return readAt(this.path, e.start, e.byteLength, `tensor "${name}"`);
  }

  read(name: string): Tensor {
    const e = this.entry(name);
    return new Tensor(e.dtype, e.shape, viewAs(e.dtype, this.readBytes(name)));
  }

  /** Rows [start, start + count) along the first dimension: one positioned read of just their bytes. */
  readRows(name: string, start: number, count: number): Tensor {
    const e = this.entry(name);
    checkRowRange(this.path, name, e.shape, start, count);
    const rows = e.shape[0]!;
    const rowBytes = rows === 0 ? 0 : e.byteLength / rows;
    const bytes = readAt(this.path, e.start + start * rowBytes, count * rowBytes, `tensor "${name}" rows [${start}, ${start + count})`);
    return new Tensor(e.dtype, [count, ...e.shape.slice(1)], viewAs(e.dtype, bytes));
  }
}

/** Shards listed by `model.safetensors.index.json` ({"weight_map": {tensor: shard file}}). */
export class ShardedSafetensors implements TensorSource {
  readonly shards: readonly SafetensorsFile[];
  private readonly owner = new Map<string, SafetensorsFile>();

  private constructor(readonly path: string) {
    const dir = dirname(path);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new FormatError(path, `not valid JSON (${(err as Error).message})`);
    }
    const map = (json as { weight_map?: unknown } | null)?.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new FormatError(path, 'no "weight_map" object');
    const files = new Map<string, SafetensorsFile>();
    for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) throw new FormatError(path, `tensor "${name}": bad shard name ${JSON.stringify(file)}`);
      let shard = files.get(file);
      if (!shard) {
        if (!existsSync(join(dir, file))) throw new FormatError(path, `shard "${file}" (for "${name}") does not exist`);
        shard = SafetensorsFile.open(join(dir, file));
        files.set(file, shard);
      }
      if (!shard.has(name)) throw new FormatError(shard.path, `index ${path} places "${name}" here, but the file has no such tensor`);
      this.owner.set(name, shard);
    }
    this.shards = [...files.values()];
  }

  static open(indexPath: string): ShardedSafetensors {
    return new ShardedSafetensors(indexPath);
  }

  list(): readonly TensorInfo[] {
    return this.shards.flatMap((s) => s.list().filter((t) => this.owner.get(t.name) === s));
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  read(name: string): Tensor {
    const s = this.owner.get(name);
    if (!s) throw new UsageError(`${this.path}: no tensor named "${name}"`);
    return s.read(name);
  }

  readRows(name: string, start: number, count: number): Tensor {
    const s = this.owner.get(name);
    if (!s) throw new UsageError(`${this.path}: no tensor named "${name}"`);
    return s.readRows(name, start, count);
  }

  fileOf(name: string): string {
    return this.owner.get(name)?.path ?? this.path;
  }

  /** __metadata__ of all shards merged (first shard wins). */
  get metadata(): Readonly<Record<string, string>> {
    return Object.assign({}, ...[...this.shards].reverse().map((s) => s.metadata));
  }
}

/** A directory's weights: the index when there is one, else `model.safetensors`. */
export function openSafetensorsDir(dir: string): SafetensorsFile | ShardedSafetensors {
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) return ShardedSafetensors.open(index);
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return SafetensorsFile.open(single);
  throw new FormatError(dir, 'no model.safetensors or model.safetensors.index.json');
}

const DTYPE_NAMES: Readonly<Record<string, string>> = Object.freeze(
  Object.fromEntries(Object.entries(SAFETENSORS_DTYPES).map(([k, v]) => [v, k])),
);

/** The header bytes (length prefix included) for `tensors` laid out contiguously in the given order. */
export function safetensorsHeader(tensors: readonly { name: string; tensor: Tensor }[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let at = 0;
  for (const { name, tensor } of tensors) {
    if (name === '__metadata__' || Object.hasOwn(header, name)) throw new UsageError(`safetensors: duplicate or reserved tensor name "${name}"`);
    const dtype = DTYPE_NAMES[tensor.dtype];
    if (!dtype) throw new UsageError(`safetensors: cannot store dtype ${tensor.dtype}`);
    header[name] = { dtype, shape: tensor.shape, data_offsets: [at, at + tensor.byteLength] };
    at += tensor.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/**
 * Writes `tensors` (in the given order) to `path` atomically: a temporary file beside it, then a
 * rename. Little-endian hosts only (all that Node runs on in practice).
 */
export function writeSafetensors(path: string, tensors: readonly { name: string; tensor: Tensor }[], metadata?: Record<string, string>): void {
  const header = safetensorsHeader(tensors, metadata);
  writeFileAtomic(path, [header, ...tensors.map(({ tensor: { data: d } }) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength))]);
}
