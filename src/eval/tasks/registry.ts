/**
 * The evaluation tasks by name, and `evaluateTask`: load the data, build the requests, score them through a Scorer and
 * return one result record that carries its protocol id, BOS flag, pair encoding, tokenizer and context length.
 */
import { loadArc } from '../../data/tasks/arc.js';
import { loadHellaswag } from '../../data/tasks/hellaswag.js';
import { loadMmlu } from '../../data/tasks/mmlu.js';
import { loadPiqa } from '../../data/tasks/piqa.js';
import { loadWinogrande } from '../../data/tasks/winogrande.js';
import { UsageError } from '../../errors.js';
import type { Tokenizer } from '../../io/tokenizer.js';
import type { ActivationQuant } from '../../io/checkpoint.js';
import { defaultDataDir } from '../../paths.js';
import type { Scorer } from '../scorer.js';
import { MMLU_SHOTS, runMmlu, type AccEntry } from './mmlu.js';
import type { MmluCategory } from './mmluCategories.js';
import { arcRequest, hellaswagRequest, hellaswagTxtRequest, piqaRequest, winograndeRequest, type TaskRequest } from './requests.js';
import { meanStderr, scoreRequests, type PairEncoding } from './score.js';

/** lm-eval v0.3-style zero-shot multiple choice, as the paper reports it (acc, no BOS by default). */
const PROTOCOL_ZERO_SHOT = 'lm-eval-v0.3-acc';
/** HellaSwag read from llama.cpp's text file: ctx_b not capitalized, klosax's preprocessing. */
const VARIANT_HELLASWAG_TXT = 'llamacpp-txt';
const PROTOCOL_MMLU = 'hendrycks-mmlu-5shot';

export interface McRequests {
  readonly requests: TaskRequest[];
  /** set when the data layout changes the inputs (HellaSwag from llama.cpp's text file) */
  readonly variant?: string;
}

interface TaskCommon {
  readonly name: string;
  readonly split: string;
  /** examples (questions) in the full split */
  readonly size: number;
  readonly protocol: string;
  /** BOS off for the zero-shot tasks (paper); on for MMLU (tokenizer defaults of the hendrycks script with LLaMA) */
  readonly defaultBos: boolean;
}

export interface McTaskSpec extends TaskCommon {
  readonly kind: 'multiple-choice';
  /** accuracy normalised by length is reported too (not for Winogrande's partial scoring) */
  readonly hasAccNorm: boolean;
  load(dataDir: string): McRequests;
}

export interface MmluTaskSpec extends TaskCommon {
  readonly kind: 'mmlu';
  readonly shots: number;
}

export type TaskSpec = McTaskSpec | MmluTaskSpec;

const mc = (name: string, split: string, size: number, hasAccNorm: boolean, load: (dataDir: string) => McRequests): McTaskSpec =>
  ({ kind: 'multiple-choice', name, split, size, protocol: PROTOCOL_ZERO_SHOT, defaultBos: false, hasAccNorm, load });

export const TASKS: Readonly<Record<string, TaskSpec>> = Object.freeze({
  piqa: mc('piqa', 'validation', 1838, true, (d) => ({ requests: loadPiqa(d).map(piqaRequest) })),
  arc_easy: mc('arc_easy', 'test', 2376, true, (d) => ({ requests: loadArc('ARC-Easy', d).map(arcRequest) })),
  arc_challenge: mc('arc_challenge', 'test', 1172, true, (d) => ({ requests: loadArc('ARC-Challenge', d).map(arcRequest) })),
  hellaswag: mc('hellaswag', 'validation', 10042, true, (d) => {
    const data = loadHellaswag(d);
    return data.layout === 'jsonl'
      ? { requests: data.docs.map(hellaswagRequest) }
      : { requests: data.docs.map(hellaswagTxtRequest), variant: VARIANT_HELLASWAG_TXT };
  }),
  winogrande: mc('winogrande', 'validation', 1267, false, (d) => ({ requests: loadWinogrande(d).map(winograndeRequest) })),
  mmlu: { kind: 'mmlu', name: 'mmlu', split: 'test', size: 14042, protocol: PROTOCOL_MMLU, defaultBos: true, shots: MMLU_SHOTS },
});

/** "piqa,arc_easy" → specs, in the order given, duplicates removed. An unknown name lists the known ones. */
export function parseTasks(list: string): TaskSpec[] {
  const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new UsageError(`no task given; known tasks: ${Object.keys(TASKS).join(', ')}`);
  const out: TaskSpec[] = [];
  for (const name of names) {
    const spec = Object.hasOwn(TASKS, name) ? TASKS[name] : undefined;
    if (!spec) throw new UsageError(`unknown task "${name}"; known tasks: ${Object.keys(TASKS).join(', ')}`);
    if (!out.includes(spec)) out.push(spec);
  }
  return out;
}

export interface EvaluateOptions {
  /** first N examples (MMLU: first N test questions of each subject) */
  readonly limit?: number;
  /** default: the task's `defaultBos` */
  readonly bos?: boolean;
  /** default 'joint' */
  readonly encoding?: PairEncoding;
  /** default `defaultDataDir()` */
  readonly dataDir?: string;
  /** MMLU prompt limit in tokens; default the scorer's maxContext */
  readonly maxLen?: number;
  /**
   * multiple choice: the requests of up to this many examples go to the scorer in one loglikelihood call, so a batching
   * scorer can run them together (default 16; 1 = one call per example). Results do not depend on it.
   */
  readonly batchSize?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

const DEFAULT_BATCH_SIZE = 16;

export interface TaskResult {
  readonly task: string;
  readonly split: string;
  /** examples scored */
  readonly n: number;
  readonly limit?: number;
  readonly shots: number;
  readonly bos: boolean;
  /** multiple choice only: how context and continuation were tokenized */
  readonly encoding?: PairEncoding;
  /** e.g. 'lm-eval-v0.3-acc', 'lm-eval-v0.3-acc:llamacpp-txt', 'hendrycks-mmlu-5shot' */
  readonly protocol: string;
  readonly variant?: string;
  readonly tokenizer: string;
  readonly maxContext: number;
  /** the activation quantization the model ran with (a SmoothQuant checkpoint), null for none */
  readonly activation?: ActivationQuant | null;
  readonly acc: number;
  readonly acc_norm?: number;
  readonly stderr: { readonly acc: number; readonly acc_norm?: number };
  /** MMLU only */
  readonly mmlu?: {
    readonly categories: Record<MmluCategory, AccEntry>;
    readonly subjects: Record<string, AccEntry>;
    /** questions whose prompt lost shots to fit maxLen */
    readonly truncated: number;
  };
}

function checkLimit(limit: number | undefined): void {
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new UsageError(`--limit must be a positive integer, got ${limit}`);
}

function checkBatchSize(n: number | undefined): void {
  if (n !== undefined && !(Number.isInteger(n) && n > 0)) throw new UsageError(`batch size must be a positive integer, got ${n}`);
}

export async function evaluateTask(task: string | TaskSpec, scorer: Scorer, tok: Tokenizer, opts: EvaluateOptions = {}): Promise<TaskResult> {
  const spec = typeof task === 'string' ? parseTasks(task)[0]! : task; // parseTasks throws rather than return []
  checkLimit(opts.limit);
  checkBatchSize(opts.batchSize);
  const dataDir = opts.dataDir ?? defaultDataDir();
  const bos = opts.bos ?? spec.defaultBos;
  const common = { task: spec.name, split: spec.split, limit: opts.limit, bos, tokenizer: tok.description, maxContext: scorer.maxContext };

  if (spec.kind === 'mmlu') {
    const maxLen = opts.maxLen ?? scorer.maxContext;
    const run = await runMmlu(loadMmlu('dev', dataDir), loadMmlu('test', dataDir), scorer, tok,
      { bos, maxLen, limit: opts.limit, shots: spec.shots, onProgress: opts.onProgress });
    return {
      ...common, n: run.n, shots: spec.shots, protocol: spec.protocol, maxContext: maxLen,
      acc: run.average.acc, stderr: { acc: meanStderr(run.correct).stderr },
      mmlu: { categories: run.categories, subjects: run.subjects, truncated: run.truncated },
    };
  }

  const encoding = opts.encoding ?? 'joint';
  const { requests: all, variant } = spec.load(dataDir);
  const requests = opts.limit === undefined ? all : all.slice(0, opts.limit);
  const acc: number[] = [];
  const accNorm: number[] = [];
  const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
  for (let i = 0; i < requests.length; i += batchSize) {
    const batch = requests.slice(i, i + batchSize);
    const scores = await scoreRequests(batch, scorer, tok, { encoding, bos });
    for (const [j, s] of scores.entries()) {
      acc.push(s.acc);
      if (s.accNorm !== undefined) accNorm.push(s.accNorm);
      opts.onProgress?.(i + j + 1, requests.length);
    }
  }
  const a = meanStderr(acc);
  const an = spec.hasAccNorm ? meanStderr(accNorm) : undefined;
  return {
    ...common, n: requests.length, shots: 0, encoding,
    protocol: variant ? `${spec.protocol}:${variant}` : spec.protocol, variant,
    acc: a.mean, acc_norm: an?.mean, stderr: { acc: a.stderr, acc_norm: an?.stderr },
  };
}
