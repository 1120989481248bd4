import type { Backend } from '../backend/backend.js';
import { evaluateTasks } from '../eval/taskRun.js';
import { taskColumnsForStudy } from '../eval/studyTasks.js';
import { parseTasks } from '../eval/tasks/registry.js';
import type { PairEncoding } from '../eval/tasks/score.js';
import { FormatError } from '../errors.js';
import { defaultDataDir } from '../paths.js';
import type { StudyOptions } from './runner.js';

/**
 * A study's settings as plain JSON: what `lowbit study` parsed from its command line, and what a queue
 * job carries to a worker (src/study/queue/job.ts). `studyOptions` turns it into the runner's options,
 * the same way on both sides, so a cell run by a worker has the settings (and numbers) of a local one.
 */
export interface StudySpec {
  /** the model folder or file, absolute; a worker opens the same path */
  readonly model: string;
  readonly tokenizer: string | null;
  readonly ppl: readonly string[];
  readonly seqlen: number;
  readonly limit: number | null;
  readonly calib: string;
  readonly nsamples: number;
  readonly seed: number;
  readonly dataDir: string | null;
  readonly kld: boolean;
  /** each cell's decode-speed check (`--no-speed`: false) */
  readonly speed: boolean;
  readonly tasks: { readonly names: readonly string[]; readonly bos: boolean; readonly encoding: PairEncoding } | null;
}

/** The runner's options for `spec` on backend `be` (`threads`: the decode-speed check's thread count). */
export function studyOptions(spec: StudySpec, be: Backend, threads: number): Omit<StudyOptions, 'out'> {
  const limit = spec.limit ?? undefined;
  const tasks = spec.tasks;
  const taskOpts = { ...(limit ? { limit } : {}), ...(tasks?.bos ? { bos: true } : {}), encoding: tasks?.encoding ?? 'joint', dataDir: spec.dataDir ?? defaultDataDir() };
  return {
    ppl: spec.ppl, seqlen: spec.seqlen, limit, calib: spec.calib, nsamples: spec.nsamples, seed: spec.seed,
    dataDir: spec.dataDir ?? undefined, kld: spec.kld, speed: spec.speed ? { threads } : false,
    ...(tasks ? {
      extraSettings: { tasks: tasks.names, taskLimit: limit ?? null, bos: tasks.bos, encoding: tasks.encoding },
      extraEval: async (model) => taskColumnsForStudy(await evaluateTasks(model, be, tasks.names, taskOpts)),
    } : {}),
  };
}

/** Checks a StudySpec received as JSON (a queue job's payload, `where` names it); FormatError on the first wrong field. */
export function checkStudySpec(raw: unknown, where: string): StudySpec {
  const bad = (field: string, want: string): never => { throw new FormatError(where, `study.${field} must be ${want}`); };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('', 'an object');
  const s = raw as Record<string, unknown>;
  const known = new Set(['model', 'tokenizer', 'ppl', 'seqlen', 'limit', 'calib', 'nsamples', 'seed', 'dataDir', 'kld', 'speed', 'tasks']);
  const extra = Object.keys(s).filter((k) => !known.has(k));
  if (extra.length) throw new FormatError(where, `unknown study field${extra.length > 1 ? 's' : ''} ${extra.map((k) => JSON.stringify(k)).join(', ')}`);
  const str = (k: string): string => (typeof s[k] === 'string' && s[k] !== '' ? s[k] as string : bad(k, 'a non-empty string'));
  const strOrNull = (k: string): string | null => (s[k] === null ? null : str(k));
  const int = (k: string, min: number): number => (Number.isSafeInteger(s[k]) && (s[k] as number) >= min ? s[k] as number : bad(k, `an integer ≥ ${min}`));
  const bool = (k: string): boolean => (typeof s[k] === 'boolean' ? s[k] as boolean : bad(k, 'true or false'));
  const strings = (v: unknown, k: string): string[] => (Array.isArray(v) && v.every((x) => typeof x === 'string' && x !== '') ? v as string[] : bad(k, 'a list of names'));
  let tasks: StudySpec['tasks'] = null;
  if (s.tasks !== null) {
    const t = s.tasks as Record<string, unknown> | undefined;
    if (typeof t !== 'object' || t === null) return bad('tasks', 'null or {names, bos, encoding}');
    const names = strings(t.names, 'tasks.names');
    try { parseTasks(names.join(',')); } catch (e) { throw new FormatError(where, `study.tasks: ${(e as Error).message}`); }
    if (typeof t.bos !== 'boolean') bad('tasks.bos', 'true or false');
    if (t.encoding !== 'joint' && t.encoding !== 'separate') bad('tasks.encoding', '"joint" or "separate"');
    tasks = { names, bos: t.bos as boolean, encoding: t.encoding as PairEncoding };
  }
  const ppl = strings(s.ppl, 'ppl');
  if (ppl.length === 0 && !tasks) bad('ppl', 'non-empty when there are no tasks');
  return {
    model: str('model'), tokenizer: strOrNull('tokenizer'), ppl, seqlen: int('seqlen', 1), limit: s.limit === null ? null : int('limit', 1),
    calib: str('calib'), nsamples: int('nsamples', 1), seed: int('seed', 0), dataDir: strOrNull('dataDir'), kld: bool('kld'), speed: bool('speed'), tasks,
  };
}
