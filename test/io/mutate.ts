/**
 * Building blocks for damaged copies of the bundled checkpoints: scratch folders that link every
 * file but the mutated ones, JSON value swaps by path, a safetensors header rewrite, and a map of a
 * GGUF header (where each metadata value and tensor field lives) for in-place rewrites.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let root: string | undefined;
let counter = 0;

/** The temp root of this module instance (a worker thread has its own), made on first use. */
export function scratchRoot(): string {
  root ??= mkdtempSync(join(tmpdir(), 'lowbit-mutants-'));
  return root;
}

/** A fresh empty folder under the temp root. */
export function scratchDir(prefix = 'm'): string {
  const d = join(scratchRoot(), `${prefix}${counter++}`);
  mkdirSync(d);
  return d;
}

/** Removes every scratch folder. */
export function removeScratch(): void {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
}

/**
 * A scratch copy of folder `base`: the files in `files` written there, every other file of `base`
 * linked (a null content leaves the file out). Subfolders are not copied.
 */
export function folderWith(base: string, files: Record<string, Uint8Array | string | null> = {}): string {
  const d = scratchDir();
  for (const f of readdirSync(base)) {
    if (f in files || !statSync(join(base, f)).isFile()) continue;
    symlinkSync(join(base, f), join(d, f));
  }
  for (const [f, content] of Object.entries(files)) if (content !== null) writeFileSync(join(d, f), content);
  return d;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
export type JsonPath = (string | number)[];

/** Every path of `v` (objects and arrays included, the root excluded), in document order. */
export function jsonPaths(v: JsonValue, prefix: JsonPath = []): JsonPath[] {
  const out: JsonPath[] = [];
  const kids: [string | number, JsonValue][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : v && typeof v === 'object' ? Object.entries(v) : [];
  for (const [k, x] of kids) {
    out.push([...prefix, k]);
    out.push(...jsonPaths(x, [...prefix, k]));
  }
  return out;
}

/** A deep copy of `v` with the value at `path` replaced (undefined: the key removed). */
export function withPath(v: JsonValue, path: JsonPath, value: JsonValue | undefined): JsonValue {
  const copy = structuredClone(v);
  let at: JsonValue = copy;
  for (const k of path.slice(0, -1)) at = (at as Record<string, JsonValue>)[k as string]!;
  const last = path[path.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(at)) at.splice(last as number, 1);
    else delete (at as Record<string, JsonValue>)[last as string];
  } else (at as Record<string, JsonValue>)[last as string] = value;
  return copy;
}

export type SafetensorsHeader = Record<string, JsonValue>;

/** The JSON header of a safetensors file and the offset where its data starts. */
export function safetensorsHeader(bytes: Uint8Array): { header: SafetensorsHeader; dataStart: number } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as SafetensorsHeader, dataStart: 8 + n };
}

/** A safetensors file with its header replaced and the data section of `bytes` (or `data`) after it. */
export function withSafetensorsHeader(bytes: Uint8Array, header: JsonValue, data?: Uint8Array): Uint8Array {
  const { dataStart } = safetensorsHeader(bytes);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = data ?? bytes.subarray(dataStart);
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

/** Where one GGUF metadata value lives: its type and the byte offset of the value (after the type). */
export interface GgufKvAt { readonly key: string; readonly type: number; readonly at: number }
/** Where one GGUF tensor info's fields live. */
export interface GgufTensorAt { readonly name: string; readonly nDimsAt: number; readonly typeAt: number; readonly offsetAt: number; readonly offset: bigint }

const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Walks a well-formed GGUF header (test input only: no checks) and records where every field is. */
export function ggufMap(bytes: Uint8Array): { kvs: GgufKvAt[]; tensors: GgufTensorAt[]; end: number } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 8;
  const u64 = () => { const x = v.getBigUint64(p, true); p += 8; return x; };
  const u32 = () => { const x = v.getUint32(p, true); p += 4; return x; };
  const str = () => { const n = Number(u64()); const s = new TextDecoder().decode(bytes.subarray(p, p + n)); p += n; return s; };
  const skip = (type: number): void => {
    if (type === 8) { str(); return; }
    if (type === 9) {
      const item = u32(), n = Number(u64());
      for (let i = 0; i < n; i++) skip(item);
      return;
    }
    p += SCALAR_BYTES[type]!;
  };
  const nTensors = Number(u64()), nKv = Number(u64());
  const kvs: GgufKvAt[] = [];
  for (let i = 0; i < nKv; i++) {
    const key = str(), type = u32();
    kvs.push({ key, type, at: p });
    skip(type);
  }
  const tensors: GgufTensorAt[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str(), nDimsAt = p, nDims = u32();
    p += 8 * nDims;
    const typeAt = p;
    p += 4;
    const offsetAt = p;
    tensors.push({ name, nDimsAt, typeAt, offsetAt, offset: u64() });
  }
  return { kvs, tensors, end: p };
}

/** A copy of `bytes` with `write` applied to a DataView at byte `at`. */
export function patched(bytes: Uint8Array, at: number, write: (v: DataView) => void): Uint8Array {
  const out = bytes.slice();
  write(new DataView(out.buffer, at));
  return out;
}

/** A copy of a GGUF with the numeric metadata value `key` set to `value` (written in the key's own type). */
export function ggufWithNumber(bytes: Uint8Array, key: string, value: number | bigint): Uint8Array {
  const kv = ggufMap(bytes).kvs.find((k) => k.key === key);
  if (!kv) throw new Error(`no metadata key ${key}`);
  return patched(bytes, kv.at, (d) => {
    switch (kv.type) {
      case 4: d.setUint32(0, Number(value), true); break;
      case 5: d.setInt32(0, Number(value), true); break;
      case 6: d.setFloat32(0, Number(value), true); break;
      case 10: d.setBigUint64(0, BigInt(value), true); break;
      case 11: d.setBigInt64(0, BigInt(value), true); break;
      default: throw new Error(`metadata ${key} has type ${kv.type}, not a number this helper writes`);
    }
  });
}
