/**
 * Writing results so that a crash, a kill or a full disk never leaves a half-written file or folder
 * where a finished one is expected, and never deletes what lowbit did not write.
 *
 * - Every file is written to `<path>.lowbit-tmp-<pid>` beside it, flushed, then renamed into place.
 * - A folder (a quantized checkpoint) is built the same way and swapped in by renames.
 * - Temporaries carry lowbit's own suffix and the writer's pid; `sweepStaleTemps` removes those whose
 *   process is gone (a killed run), so reruns do not pile up gigabytes of leftovers.
 * - Failures of the file system (a parent that is a file, permissions, a read-only or full disk) are
 *   the user's to fix: a UsageError naming the path and the problem, never a stack trace.
 *
 * Written here rather than taken from `write-file-atomic`: that package names its temporaries with a
 * hash lowbit cannot recognise later (so a killed run's files could not be swept), and it does not
 * do folders, which is what a checkpoint is.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';

const TMP = '.lowbit-tmp-';
const OLD = '.lowbit-old-';

const PROBLEMS: Readonly<Record<string, string>> = {
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'it is a folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'the folder does not exist and cannot be created there',
  EEXIST: 'something else is already there',
  ENAMETOOLONG: 'the name is too long',
  EMFILE: 'too many open files',
  EXDEV: 'cannot move across file systems',
  EBUSY: 'the path is busy',
  ELOOP: 'too many symbolic links',
};

/** A file-system error as the user's problem: "cannot write PATH: ENOSPC (no space left on the device)". */
export function writeFailure(e: unknown, path: string): Error {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (!code) return e as Error;
  return new UsageError(`cannot write ${path}: ${code}${PROBLEMS[code] ? ` (${PROBLEMS[code]})` : ''}`);
}

/**
 * mkdir -p, one level at a time. Node's recursive mkdir never returns under /proc and reports a file
 * in the way as ENOENT; this finds the nearest existing ancestor, checks it is a folder, and creates
 * the rest below it.
 */
export function makeDirs(dir: string, label = dir): void {
  const missing: string[] = [];
  let d = resolve(dir);
  for (;;) {
    let st;
    try { st = statSync(d); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw writeFailure(e, label);
      const up = dirname(d);
      if (up === d) throw new UsageError(`cannot write ${label}: no existing folder above it`);
      missing.push(d);
      d = up;
      continue;
    }
    if (!st.isDirectory()) throw new UsageError(`cannot write ${label}: ${d} is a file, not a folder`);
    break;
  }
  for (const m of missing.reverse()) {
    try { mkdirSync(m); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw writeFailure(e, label);
    }
  }
}

/** The temporary sibling this process writes `path` through. */
export function tempPathFor(path: string): string {
  return `${path}${TMP}${process.pid}`;
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/**
 * Removes lowbit's temporaries in `dir` (`*.lowbit-tmp-<pid>`, `*.lowbit-old-<pid>`) whose writing
 * process is no longer running; with `only`, just those of that file or folder name. Returns what
 * was removed. Anything else in `dir` is never touched.
 */
export function sweepStaleTemps(dir: string, only?: string): string[] {
  let names: string[];
  try { names = readdirSync(dir); } catch { return []; }
  const removed: string[] = [];
  for (const name of names) {
    const m = /^(.*)\.lowbit-(?:tmp|old)-(\d+)$/.exec(name);
    if (!m || (only !== undefined && m[1] !== only) || alive(Number(m[2]))) continue;
    try {
      rmSync(join(dir, name), { recursive: true, force: true });
      removed.push(join(dir, name));
    } catch { /* not ours to fight over */ }
  }
  return removed;
}

/** Writes `data` (text, bytes, or byte chunks in order) to `path` atomically: temporary sibling, fsync, rename. */
export function writeFileAtomic(path: string, data: string | Uint8Array | Iterable<Uint8Array>): void {
  const tmp = tempPathFor(path);
  try {
    makeDirs(dirname(resolve(path)), path);
    const fd = openSync(tmp, 'w');
    try {
      const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
      for (const bytes of chunks) {
        for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try { rmSync(tmp, { force: true }); } catch { /* nothing to clean up */ }
    throw writeFailure(e, path);
  }
}

/** JSON (2-space indented, final newline) written atomically. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Moves the finished folder `tmp` to `out`. An existing `out` is first renamed aside and removed
 * only once the new folder is in place, so a crash leaves either the old or the new one (or the old
 * one under `<out>.lowbit-old-<pid>`, swept by the next run), never a mixture.
 */
export function replaceDir(tmp: string, out: string): void {
  const old = `${out}${OLD}${process.pid}`;
  try {
    const had = existsSync(out);
    if (had) renameSync(out, old);
    renameSync(tmp, out);
    if (had) rmSync(old, { recursive: true, force: true });
  } catch (e) {
    throw writeFailure(e, out);
  }
}

