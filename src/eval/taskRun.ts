/**
 * Zero-shot and MMLU tasks on a checkpoint: load the model once, score every task through one ModelScorer, and lay
 * the results out as the paper's CommonSenseQA and MMLU columns.
 */
import type { Backend } from '../backend/backend.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { LlamaModel } from '../model/llama.js';
import { ModelScorer } from './modelScorer.js';
import type { MmluCategory } from './tasks/mmluCategories.js';
import { evaluateTask, parseTasks, type TaskResult } from './tasks/registry.js';
import type { PairEncoding } from './tasks/score.js';

export interface TaskRunOptions {
  /** first N examples of each task (MMLU: first N test questions of each subject) */
  readonly limit?: number;
  /** default: each task's `defaultBos` (off for the zero-shot tasks, on for MMLU) */
  readonly bos?: boolean;
  /** default 'joint' */
  readonly encoding?: PairEncoding;
  readonly dataDir?: string;
  /** reuse each context's KV cache across its continuations (default true; same numbers, faster) */
  readonly kvReuse?: boolean;
  /** longest model input (default: the model's maxPositionEmbeddings) */
  readonly maxContext?: number;
  /** multiple-choice examples per scorer call, run as varlen batches (default 16; 1 = unbatched) */
  readonly batchSize?: number;
  readonly onProgress?: (task: string, done: number, total: number) => void;
  /** called with each task's result as soon as it is scored (the browser page shows rows as they come) */
  readonly onResult?: (result: TaskResult) => void;
}

/** Evaluates `tasks` (names, checked before the model loads) in the order given; one result per task. */
export async function evaluateTasks(ckpt: ModelCheckpoint, backend: Backend, tasks: readonly string[], opts: TaskRunOptions = {}): Promise<TaskResult[]> {
  const specs = parseTasks(tasks.join(','));
  const scorer = new ModelScorer(LlamaModel.load(ckpt, backend), { kvReuse: opts.kvReuse, maxContext: opts.maxContext });
  const results: TaskResult[] = [];
  for (const spec of specs) {
    const onProgress = opts.onProgress;
    const r = await evaluateTask(spec, scorer, ckpt.tokenizer, {
      limit: opts.limit, bos: opts.bos, encoding: opts.encoding, dataDir: opts.dataDir, batchSize: opts.batchSize,
      onProgress: onProgress && ((done, total) => onProgress(spec.name, done, total)),
    });
    const result = { ...r, activation: ckpt.activation ?? null };
    results.push(result);
    opts.onResult?.(result);
  }
  return results;
}

/** The paper's CommonSenseQA columns: task name → column header, in table order. */
const CSQA_COLUMNS: readonly (readonly [task: string, header: string])[] = Object.freeze([
  ['piqa', 'PIQA'], ['arc_easy', 'ARC-e'], ['arc_challenge', 'ARC-c'], ['hellaswag', 'HellaSwag'], ['winogrande', 'Wino'],
] as const);

/** The paper's MMLU columns: category → column header. */
const MMLU_COLUMNS: readonly (readonly [category: MmluCategory, header: string])[] = Object.freeze([
  ['Humanities', 'Hums.'], ['STEM', 'STEM'], ['Social Sciences', 'Social'], ['Other', 'Other'],
] as const);

/** Mean `acc` over the five zero-shot tasks present in `results` (the paper's Avg column); undefined if none is. */
export function csqaAverage(results: readonly TaskResult[]): number | undefined {
  const accs = CSQA_COLUMNS.flatMap(([task]) => results.filter((r) => r.task === task).map((r) => r.acc));
  return accs.length === 0 ? undefined : accs.reduce((a, b) => a + b, 0) / accs.length;
}

/** acc as a percentage with one decimal, "-" when absent or NaN. */
function percent(acc: number | undefined): string {
  return acc === undefined || Number.isNaN(acc) ? '-' : (100 * acc).toFixed(1);
}

export interface TableColumns { header: string[]; row: string[] }

/** PIQA, ARC-e, ARC-c, HellaSwag, Wino, Avg (acc in %; Avg over the tasks present; "-" for a task not run). */
export function csqaColumns(results: readonly TaskResult[]): TableColumns {
  const acc = (task: string) => results.find((r) => r.task === task)?.acc;
  return {
    header: [...CSQA_COLUMNS.map(([, h]) => h), 'Avg'],
    row: [...CSQA_COLUMNS.map(([task]) => percent(acc(task))), percent(csqaAverage(results))],
  };
}

/** Hums., STEM, Social, Other, Avg (acc in %, Avg over all questions) from the mmlu result; "-" throughout if absent. */
export function mmluColumns(results: readonly TaskResult[]): TableColumns {
  const r = results.find((x) => x.task === 'mmlu');
  return {
    header: [...MMLU_COLUMNS.map(([, h]) => h), 'Avg'],
    row: [...MMLU_COLUMNS.map(([c]) => percent(r?.mmlu?.categories[c].acc)), percent(r?.acc)],
  };
}
