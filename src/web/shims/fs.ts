/**
 * `node:fs` in the web bundle (scripts/build-web.mjs maps the import here): the synchronous reads
 * lowbit's readers make (exists, stat, readdir, readFile, positioned reads through a descriptor),
 * served from the tab's in-memory file system (../vfs.ts). Errors carry Node's codes (ENOENT,
 * EISDIR), which the readers turn into their own one-line messages. Everything that writes, and any
 * other function the bundle names, throws saying so: nothing is written from a browser tab.
 */
import { vfsFile, vfsIsDir, vfsList, type VfsFile } from '../vfs.js';

function fsError(code: string, what: string, path: string): Error {
  const e = new Error(`${code}: ${what}, '${path}'`) as Error & { code: string; path: string };
  e.code = code;
  e.path = path;
  return e;
}

function fileOrThrow(path: string, op: string): VfsFile {
  const f = vfsFile(path);
  if (f) return f;
  if (vfsIsDir(path)) throw fsError('EISDIR', `illegal operation on a directory, ${op}`, path);
  throw fsError('ENOENT', `no such file or directory, ${op}`, path);
}

/** What readFileSync gives without an encoding: bytes whose toString() decodes UTF-8 as Buffer's does. */
class BrowserBuffer extends Uint8Array {
  override toString(encoding = 'utf8'): string {
    if (encoding !== 'utf8' && encoding !== 'utf-8') throw new Error(`lowbit in a browser tab: Buffer.toString('${encoding}') is not available (UTF-8 only)`);
    return new TextDecoder('utf-8').decode(this);
  }
}

export interface Stats { size: number; isFile(): boolean; isDirectory(): boolean }
function stats(size: number, file: boolean): Stats {
  return { size, isFile: () => file, isDirectory: () => !file };
}

export function existsSync(path: string): boolean {
  return vfsFile(path) !== undefined || vfsIsDir(path);
}

export function statSync(path: string): Stats {
  const f = vfsFile(path);
  if (f) return stats(f.size, true);
  if (vfsIsDir(path)) return stats(0, false);
  throw fsError('ENOENT', 'no such file or directory, stat', path);
}

type Encoding = string | { encoding?: string | null } | null | undefined;
export function readFileSync(path: string, enc?: Encoding): string | BrowserBuffer {
  const f = fileOrThrow(path, 'read');
  const bytes = f.read(0, f.size);
  const encoding = typeof enc === 'string' ? enc : enc?.encoding ?? undefined;
  const buf = new BrowserBuffer(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength);
  return encoding === undefined ? buf : buf.toString(encoding);
}

export interface Dirent { name: string; isFile(): boolean; isDirectory(): boolean }
export function readdirSync(path: string, opts?: { withFileTypes?: boolean }): string[] | Dirent[] {
  const entries = vfsList(path);
  if (!entries) {
    if (vfsFile(path)) throw fsError('ENOTDIR', 'not a directory, scandir', path);
    throw fsError('ENOENT', 'no such file or directory, scandir', path);
  }
  if (!opts?.withFileTypes) return entries.map((e) => e.name);
  return entries.map((e) => ({ name: e.name, isFile: () => !e.dir, isDirectory: () => e.dir }));
}

const open = new Map<number, { path: string; file: VfsFile }>();
let nextFd = 3;

export function openSync(path: string, flags: string | number = 'r'): number {
  if (flags !== 'r') throw new Error(`lowbit in a browser tab: fs.openSync('${path}', '${flags}'): the picked files are read-only`);
  const fd = nextFd++;
  open.set(fd, { path, file: fileOrThrow(path, 'open') });
  return fd;
}

function descriptor(fd: number): { path: string; file: VfsFile } {
  const d = open.get(fd);
  if (!d) throw fsError('EBADF', 'bad file descriptor', String(fd));
  return d;
}

export function fstatSync(fd: number): Stats {
  return stats(descriptor(fd).file.size, true);
}

/** Reads up to `length` bytes at `position` into `buffer` at `offset`; returns the count (0 at the end). */
export function readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number {
  const { file } = descriptor(fd);
  const n = Math.max(0, Math.min(length, file.size - position));
  if (n > 0) buffer.set(file.read(position, n), offset);
  return n;
}

export function closeSync(fd: number): void {
  descriptor(fd);
  open.delete(fd);
}

const unavailable = (name: string) => (): never => {
  throw new Error(`lowbit in a browser tab: fs.${name} is not available (the tab reads the picked files and writes nothing)`);
};
export const writeFileSync = unavailable('writeFileSync');
export const writeSync = unavailable('writeSync');
export const fsyncSync = unavailable('fsyncSync');
export const mkdirSync = unavailable('mkdirSync');
export const renameSync = unavailable('renameSync');
export const rmSync = unavailable('rmSync');
export const copyFileSync = unavailable('copyFileSync');
export const symlinkSync = unavailable('symlinkSync');
export const readlinkSync = unavailable('readlinkSync');
export const createReadStream = unavailable('createReadStream');
