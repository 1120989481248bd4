/**
 * Positioned reads of a checkpoint file: never the whole file, every short read or out-of-range
 * request reported as a FormatError naming the file.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { FormatError } from '../errors.js';

/** Size of `path` in bytes, or a FormatError naming it when it is missing or not a file. */
export function fileSize(path: string): number {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new FormatError(path, 'file not found');
  }
  if (!st.isFile()) throw new FormatError(path, 'not a regular file');
  return st.size;
}

/** Reads `length` bytes at `offset`; the range must lie inside the file. */
export function readAt(path: string, offset: number, length: number, what = 'data'): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    throw new FormatError(path, 'cannot open for reading');
  }
  try {
    const size = fstatSync(fd).size;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      throw new FormatError(path, `${what}: bytes [${offset}, ${offset + length}) lie outside the file (${size} bytes)`);
    }
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, length - done, offset + done);
      if (n === 0) throw new FormatError(path, `${what}: file ended after ${offset + done} bytes`);
      done += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/**
 * Little-endian cursor over the start of a file (a header of unknown length), refilled with
 * positioned reads in chunks. Each read checks the bytes exist before touching them.
 */
export class HeaderCursor {
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  private view = new DataView(this.buf.buffer);
  pos = 0;
  readonly size: number;

  constructor(readonly path: string, private readonly chunk = 1 << 20) {
    this.size = fileSize(path);
  }

  get remaining(): number { return this.size - this.pos; }

  fail(message: string): never {
    throw new FormatError(this.path, message);
  }

  /** Makes bytes [pos, pos + n) available and returns their offset inside `buf`. */
  private need(n: number, what: string): number {
    if (n > this.size - this.pos) this.fail(`truncated: ${what} needs ${n} bytes at offset ${this.pos}, file has ${this.size}`);
    const rel = this.pos - this.bufStart;
    if (rel >= 0 && rel + n <= this.buf.length) return rel;
    const len = Math.min(Math.max(n, this.chunk), this.size - this.pos);
    this.buf = readAt(this.path, this.pos, len, what);
    this.bufStart = this.pos;
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    return 0;
  }

  u8(what: string): number { const o = this.need(1, what); this.pos += 1; return this.view.getUint8(o); }
  i8(what: string): number { const o = this.need(1, what); this.pos += 1; return this.view.getInt8(o); }
  u16(what: string): number { const o = this.need(2, what); this.pos += 2; return this.view.getUint16(o, true); }
  i16(what: string): number { const o = this.need(2, what); this.pos += 2; return this.view.getInt16(o, true); }
  u32(what: string): number { const o = this.need(4, what); this.pos += 4; return this.view.getUint32(o, true); }
  i32(what: string): number { const o = this.need(4, what); this.pos += 4; return this.view.getInt32(o, true); }
  f32(what: string): number { const o = this.need(4, what); this.pos += 4; return this.view.getFloat32(o, true); }
  f64(what: string): number { const o = this.need(8, what); this.pos += 8; return this.view.getFloat64(o, true); }
  u64(what: string): bigint { const o = this.need(8, what); this.pos += 8; return this.view.getBigUint64(o, true); }
  i64(what: string): bigint { const o = this.need(8, what); this.pos += 8; return this.view.getBigInt64(o, true); }

  /** A u64 that must be a count or size no larger than `max` (checked before any allocation). */
  size64(what: string, max: number): number {
    const v = this.u64(what);
    if (v > BigInt(max)) this.fail(`${what} ${v} is impossible for a file of ${this.size} bytes`);
    return Number(v);
  }

  bytes(n: number, what: string): Uint8Array {
    const o = this.need(n, what);
    this.pos += n;
    return this.buf.subarray(o, o + n);
  }
}

/** Decodes UTF-8, rejecting invalid sequences with a FormatError naming the file. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });
export function utf8(path: string, bytes: Uint8Array, what: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new FormatError(path, `${what} is not valid UTF-8`);
  }
}
