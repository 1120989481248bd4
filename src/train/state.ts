/**
 * A training run's resumable state: named float32 arrays (adapter parameters, AdamW's m and v), the
 * step, the data-order generator's state and a JSON `meta` object.
 *
 * Layout: a folder holding
 *   train_state.safetensors  the arrays, f32, names sorted; __metadata__ {"step": "<step>"}
 *   train_state.json         {format, version, step, rng, meta, tensors: {name: shape}, safetensors_sha256}
 * The JSON names the exact safetensors bytes by their sha256, so a pair from two different saves, a
 * torn file or a flipped bit is a FormatError naming the file, never a silently mixed state.
 *
 * Crash safety: both files are written into `<dir>.lowbit-tmp-<pid>` and the folder is swapped in by
 * replaceDir (io/atomic.ts): the old folder is renamed to `<dir>.lowbit-old-<pid>`, the new one to
 * `<dir>`, then the old one is removed. A kill between the two renames leaves no `<dir>` but a complete
 * old folder; loading (and the next save) renames that old folder back before anything else, and only
 * then sweeps the dead writers' temporaries. So after a kill at any moment the state read is the old
 * or the new one, complete. One writer per folder at a time.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { FormatError, UsageError } from '../errors.js';
import { makeDirs, replaceDir, sweepStaleTemps, tempPathFor, writeFailure, writeJsonAtomic } from '../io/atomic.js';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.js';
import { Tensor } from '../tensor/tensor.js';
import { Xoshiro128, type XoshiroState } from '../tensor/xoshiro.js';

export const STATE_TENSORS = 'train_state.safetensors';
export const STATE_JSON = 'train_state.json';
const FORMAT = 'lowbit-train-state';
const VERSION = 1;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface TrainState {
  /** optimiser updates taken */
  readonly step: number;
  /** f32 tensors by name (adapter parameters, AdamW moments) */
  readonly tensors: Readonly<Record<string, Tensor>>;
  /** the data-order generator (tensor/xoshiro.ts) */
  readonly rng: XoshiroState;
  readonly meta: { readonly [key: string]: JsonValue };
}

/** Writes `state` to folder `dir`, replacing what is there only once the new state is complete. */
export function saveTrainState(dir: string, state: TrainState): void {
  if (!Number.isSafeInteger(state.step) || state.step < 0) throw new UsageError(`train state: step must be an integer ≥ 0, got ${state.step}`);
  try { Xoshiro128.restore(state.rng); } catch (e) { throw new UsageError(`train state: ${(e as Error).message}`); }
  const names = Object.keys(state.tensors).sort();
  for (const name of names) {
    const t = state.tensors[name]!;
    if (t.dtype !== 'f32') throw new UsageError(`train state: tensor "${name}" is ${t.dtype}, not f32`);
    const bad = firstNonFinite(t.data as Float32Array);
    if (bad >= 0) throw new UsageError(`train state: tensor "${name}" has a non-finite value at element ${bad}; not saving it`);
  }
  const out = resolve(dir);
  recoverInterrupted(out);
  sweepStaleTemps(dirname(out), basename(out));
  const tmp = tempPathFor(out);
  try {
    writeFolder(tmp, out, names, state);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  replaceDir(tmp, out);
}

function writeFolder(tmp: string, out: string, names: readonly string[], state: TrainState): void {
  makeDirs(tmp, out);
  const tensorsPath = join(tmp, STATE_TENSORS);
  writeSafetensors(tensorsPath, names.map((name) => ({ name, tensor: state.tensors[name]! })), { step: String(state.step) });
  writeJsonAtomic(join(tmp, STATE_JSON), {
    format: FORMAT,
    version: VERSION,
    step: state.step,
    rng: { s: [...state.rng.s], spare: state.rng.spare },
    meta: state.meta,
    tensors: Object.fromEntries(names.map((n) => [n, state.tensors[n]!.shape])),
    safetensors_sha256: sha256File(tensorsPath),
  });
}

/** Whether `dir` holds a train state (after putting back one a killed save left aside). */
export function hasTrainState(dir: string): boolean {
  const out = resolve(dir);
  recoverInterrupted(out);
  return existsSync(join(out, STATE_JSON));
}

/**
 * Reads the state in `dir`. Checks the JSON, the checksum tying it to the safetensors file, that both
 * list the same names and shapes (and `expected`'s, when given, exactly), f32 storage, finite values.
 */
export function loadTrainState(dir: string, expected?: Readonly<Record<string, readonly number[]>>): TrainState {
  const out = resolve(dir);
  recoverInterrupted(out);
  sweepStaleTemps(dirname(out), basename(out));
  const jsonPath = join(out, STATE_JSON), tensorsPath = join(out, STATE_TENSORS);
  if (!existsSync(jsonPath)) throw new FormatError(jsonPath, 'file not found (no training state saved here)');
  const j = parseJson(jsonPath);
  const fail = (msg: string): never => { throw new FormatError(jsonPath, msg); };
  if (j.format !== FORMAT) fail(`"format" is ${JSON.stringify(j.format)}, expected "${FORMAT}"`);
  if (j.version !== VERSION) fail(`"version" is ${JSON.stringify(j.version)}, this lowbit reads version ${VERSION}`);
  const step = j.step;
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) return fail('"step" is not an integer ≥ 0');
  let rng: XoshiroState;
  try { rng = Xoshiro128.restore(j.rng as XoshiroState).state(); } catch (e) { return fail(`"rng": ${(e as Error).message}`); }
  if (typeof j.meta !== 'object' || j.meta === null || Array.isArray(j.meta)) fail('"meta" is not an object');
  const shapes = j.tensors as Record<string, unknown>;
  if (typeof shapes !== 'object' || shapes === null || Array.isArray(shapes)) return fail('"tensors" is not an object');
  if (typeof j.safetensors_sha256 !== 'string') fail('"safetensors_sha256" is missing');
  if (!existsSync(tensorsPath)) throw new FormatError(tensorsPath, 'file not found (the state folder is incomplete)');
  if (sha256File(tensorsPath) !== j.safetensors_sha256) {
    throw new FormatError(tensorsPath, `contents do not match the sha256 in ${STATE_JSON} (a corrupt file, or files of two different saves)`);
  }
  const file = SafetensorsFile.open(tensorsPath);
  const bad = (msg: string): never => { throw new FormatError(tensorsPath, msg); };
  if (file.metadata.step !== String(step)) bad(`__metadata__ step ${JSON.stringify(file.metadata.step)} differs from ${STATE_JSON}'s ${step}`);
  const stored = new Map(file.list().map((t) => [t.name, t]));
  for (const name of Object.keys(shapes)) if (!stored.has(name)) bad(`tensor "${name}" (listed in ${STATE_JSON}) is missing`);
  for (const name of stored.keys()) if (!Object.hasOwn(shapes, name)) bad(`tensor "${name}" is not listed in ${STATE_JSON}`);
  if (expected) {
    for (const name of Object.keys(expected)) if (!stored.has(name)) bad(`tensor "${name}" is missing (the run expects it)`);
    for (const name of stored.keys()) if (!Object.hasOwn(expected, name)) bad(`tensor "${name}" is not one the run expects`);
  }
  const tensors: Record<string, Tensor> = {};
  for (const [name, info] of stored) {
    const shape = info.shape.join(', ');
    if (info.storedAs !== 'F32') bad(`tensor "${name}" is ${info.storedAs}, expected F32`);
    if (JSON.stringify(shapes[name]) !== JSON.stringify(info.shape)) bad(`tensor "${name}" has shape [${shape}], ${STATE_JSON} says ${JSON.stringify(shapes[name])}`);
    if (expected && JSON.stringify([...expected[name]!]) !== JSON.stringify(info.shape)) {
      bad(`tensor "${name}" has shape [${shape}], the run expects [${expected[name]!.join(', ')}]`);
    }
    const t = file.read(name);
    const at = firstNonFinite(t.data as Float32Array);
    if (at >= 0) bad(`tensor "${name}" has a non-finite value at element ${at}`);
    tensors[name] = new Tensor('f32', info.shape, Float32Array.from(t.data as Float32Array));
  }
  return { step, tensors, rng, meta: j.meta as TrainState['meta'] };
}

/**
 * A save killed between replaceDir's two renames leaves `<dir>.lowbit-old-<pid>` (complete) and no
 * `<dir>`: rename it back. Only folders holding a state JSON are taken.
 */
function recoverInterrupted(out: string): void {
  if (existsSync(out)) return;
  const parent = dirname(out), name = basename(out);
  let entries: string[];
  try { entries = readdirSync(parent); } catch { return; }
  const olds = entries.filter((e) => e.startsWith(`${name}.lowbit-old-`) && /^\d+$/.test(e.slice(name.length + 12)))
    .filter((e) => existsSync(join(parent, e, STATE_JSON)));
  const pick = olds.sort().at(-1);
  if (pick === undefined) return;
  try { renameSync(join(parent, pick), out); } catch (e) { throw writeFailure(e, out); }
}

function parseJson(path: string): Record<string, unknown> {
  let json: unknown;
  try { json = JSON.parse(readFileSync(path, 'utf8')); } catch (e) { throw new FormatError(path, `not valid JSON (${(e as Error).message})`); }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FormatError(path, 'not a JSON object');
  return json as Record<string, unknown>;
}

function sha256File(path: string): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 24);
  const fd = openSync(path, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}
