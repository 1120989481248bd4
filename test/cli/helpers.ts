// Runs the lowbit CLI as a child process, the way a user does, and checks the bad-input contract:
// exit code 2, exactly one `lowbit: ...` line on stderr naming the file or option, no stack frames.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { PACKAGE_ROOT } from '../helpers/paths.js';

export const BIN = join(PACKAGE_ROOT, 'bin', 'lowbit.js');

export interface CliResult { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; args: string[] }

/** The node flags bin/lowbit.js's shebang gives the CLI (a collection between streamed blocks, src/backend/cpu/gc.ts). */
const NODE_FLAGS = ['--expose-gc'];

/**
 * `node --expose-gc bin/lowbit.js ...args`, run in `cwd` (default: a scratch folder, so that a default
 * `--out lowbit-eval.json` never lands in the checkout). LOWBIT_DEBUG is cleared so stack traces
 * would only appear if the CLI leaked them.
 */
export function runCli(args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): CliResult {
  const env: Record<string, string | undefined> = { ...process.env, ...opts.env };
  delete env.LOWBIT_DEBUG;
  const r = spawnSync(process.execPath, [...NODE_FLAGS, BIN, ...args], {
    cwd: opts.cwd ?? scratch(), env, encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20,
  });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, args };
}

/** runCli without blocking, so that independent cases can run side by side. */
export function runCliAsync(args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const env: Record<string, string | undefined> = { ...process.env, ...opts.env };
  delete env.LOWBIT_DEBUG;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, BIN, ...args], { cwd: opts.cwd ?? scratch(), env, timeout: opts.timeoutMs ?? 60_000 });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (status, signal) => resolvePromise({ status, signal, stdout, stderr, args }));
  });
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => { while (next < items.length) { const i = next++; out[i] = await fn(items[i]!); } };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function describe(r: CliResult): string {
  return `lowbit ${r.args.map((a) => JSON.stringify(a)).join(' ')}\n  status ${r.status} signal ${r.signal}\n` +
    `  stderr: ${JSON.stringify(r.stderr.slice(0, 2000))}\n  stdout: ${JSON.stringify(r.stdout.slice(0, 500))}`;
}

/**
 * The bad-input contract. `names` are strings the one error line must contain (the file's path,
 * the offending option); `pattern`, if given, must match the line too (the problem).
 */
export function assertBadInput(r: CliResult, names: string[], pattern?: RegExp): string {
  const ctx = describe(r);
  assert.equal(r.signal, null, `killed by a signal (a huge allocation?)\n${ctx}`);
  assert.equal(r.status, 2, `expected exit code 2\n${ctx}`);
  assert.ok(r.stderr.endsWith('\n'), `stderr must end with a newline\n${ctx}`);
  const lines = r.stderr.slice(0, -1).split('\n');
  assert.equal(lines.length, 1, `stderr must be exactly one line\n${ctx}`);
  const line = lines[0]!;
  assert.ok(line.startsWith('lowbit: '), `the line must start with "lowbit: "\n${ctx}`);
  assert.ok(!line.includes('internal error'), `a bad input is not an internal error\n${ctx}`);
  assert.ok(!/\n\s+at /.test(r.stderr) && !r.stderr.includes('    at '), `stack frames on stderr\n${ctx}`);
  for (const n of names) assert.ok(line.includes(n), `the line must name ${JSON.stringify(n)}\n${ctx}`);
  if (pattern) assert.match(line, pattern, ctx);
  assert.equal(r.stdout, '', `nothing on stdout for a bad input\n${ctx}`);
  return line;
}

export function assertOk(r: CliResult): void {
  assert.equal(r.status, 0, `expected exit code 0\n${describe(r)}`);
}

let root: string | undefined;
let counter = 0;
/** A fresh folder under one per-process temp root; `cleanup()` removes them all. */
export function scratch(prefix = 'd'): string {
  root ??= mkdtempSync(join(tmpdir(), 'lowbit-cli-'));
  const d = join(root, `${prefix}${counter++}`);
  mkdirSync(d, { recursive: true });
  return d;
}
export function cleanup(): void {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
}

/** Writes `bytes` as `name` in a fresh scratch folder; returns its path. */
export function writeTemp(name: string, bytes: Uint8Array | string): string {
  const p = join(scratch(), name);
  writeFileSync(p, bytes);
  return p;
}

/** Copies files (by path) into a fresh scratch folder; returns the folder. */
export function copyInto(files: string[]): string {
  const d = scratch();
  for (const f of files) copyFileSync(f, join(d, basename(f)));
  return d;
}

export function readBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}
