/**
 * Prefill and decode speed of a resident model, llama-bench style: warm-up runs that are not counted,
 * then repetitions, each timed from the first op to the logits read back; the median is the figure.
 * One run = a prefill of the prompt (only the last row's logits computed and read) and then greedy
 * decoding of new tokens one at a time on the KV cache, after the prompt (positions P..P+D-1), never
 * stopping at EOS. Timings belong here and in bench/, never in test assertions.
 */
import { PyRandom } from '../data/mt19937.js';
import { UsageError } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { argmaxLastRow, LlamaModel, type KvCache } from '../model/llama.js';

export interface SpeedSettings {
  readonly promptTokens: number;
  readonly decodeTokens: number;
  /** runs before the measured ones, not counted (kernel set-up, JIT, first-touch of memory) */
  readonly warmup: number;
  readonly reps: number;
}

/** Median and range of the measured repetitions, with every run's value in order. */
export interface Spread { readonly median: number; readonly min: number; readonly max: number; readonly runs: readonly number[] }

export interface SpeedResult extends SpeedSettings {
  /** how the prompt ids were made */
  readonly prompt: string;
  readonly prefill: { readonly tokensPerSecond: Spread; readonly seconds: Spread };
  readonly decode: { readonly tokensPerSecond: Spread; readonly seconds: Spread };
}

/** The prompt's ids are drawn, not encoded from text: speed does not depend on which ids they are. */
const PROMPT_SEED = 0;
const PROMPT_DESCRIPTION = `seeded random ids: CPython random.seed(${PROMPT_SEED}), randrange(vocab) per token`;

/**
 * `lowbit bench`'s defaults: a 128-token prompt and 128 new tokens (at most half and a quarter of the
 * context), 1 warm-up run, 5 repetitions.
 */
export function defaultSpeedSettings(context: number): SpeedSettings {
  return { promptTokens: Math.max(1, Math.min(128, Math.floor(context / 2))), decodeTokens: Math.max(1, Math.min(128, Math.floor(context / 4))), warmup: 1, reps: 5 };
}

/** tokens/s for people: whole numbers from 100 up, otherwise three significant digits; thousands separated. */
export function formatRate(v: number): string {
  return v.toLocaleString('en-US', v >= 100 ? { maximumFractionDigits: 0 } : { maximumSignificantDigits: 3 });
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new RangeError('spread: no values');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, runs: [...values] };
}

/** Refuses settings no run can satisfy, naming the setting (the CLI's option names). */
export function checkSpeedSettings(s: SpeedSettings, context: number, where: string): void {
  const int = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new UsageError(`${name} must be an integer ≥ ${min} (got ${v})`);
  };
  int('--prompt-tokens', s.promptTokens, 1);
  int('--decode-tokens', s.decodeTokens, 1);
  int('--warmup', s.warmup, 0);
  int('--reps', s.reps, 1);
  if (s.promptTokens + s.decodeTokens > context) {
    throw new UsageError(`--prompt-tokens ${s.promptTokens} + --decode-tokens ${s.decodeTokens} = ${s.promptTokens + s.decodeTokens} ` +
      `exceeds the context of ${where} (${context} tokens)`);
  }
}

export function promptIds(count: number, vocab: number): Int32Array {
  const rng = new PyRandom(PROMPT_SEED);
  return Int32Array.from({ length: count }, () => rng.randbelow(vocab));
}

interface Run { prefillSeconds: number; decodeSeconds: number }

async function run(model: LlamaModel, prompt: Int32Array, decodeTokens: number): Promise<Run> {
  const be = model.be, V = model.config.vocabSize;
  const t0 = performance.now();
  const pre = model.forwardBatchPacked([{ ids: prompt }], { logits: 'last' });
  let logits = await be.read(pre.logits!);
  const t1 = performance.now();
  let cache: KvCache = pre.caches[0]!;
  for (let s = 0; s < decodeTokens; s++) {
    const next = model.forward(Int32Array.of(argmaxLastRow(logits, V)), cache);
    logits = await be.read(next.logits);
    cache = next.cache;
  }
  const t2 = performance.now();
  return { prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (t2 - t1) / 1000 };
}

/** Measures `model`: `warmup` uncounted runs, then `reps` counted ones. `onRun(done, total)` after each run. */
export async function measureSpeed(model: LlamaModel, s: SpeedSettings, onRun?: (done: number, total: number) => void): Promise<SpeedResult> {
  checkSpeedSettings(s, model.config.maxPositionEmbeddings, model.ckpt.path);
  const prompt = promptIds(s.promptTokens, model.config.vocabSize);
  const runs: Run[] = [];
  const total = s.warmup + s.reps;
  for (let i = 0; i < total; i++) {
    const r = await run(model, prompt, s.decodeTokens);
    if (i >= s.warmup) runs.push(r);
    onRun?.(i + 1, total);
  }
  const pre = runs.map((r) => r.prefillSeconds), dec = runs.map((r) => r.decodeSeconds);
  return {
    promptTokens: s.promptTokens, decodeTokens: s.decodeTokens, warmup: s.warmup, reps: s.reps, prompt: PROMPT_DESCRIPTION,
    prefill: { tokensPerSecond: spread(pre.map((t) => s.promptTokens / t)), seconds: spread(pre) },
    decode: { tokensPerSecond: spread(dec.map((t) => s.decodeTokens / t)), seconds: spread(dec) },
  };
}

/** Loads `ckpt` resident on `be`, measures it and frees its weights again. */
export async function measureCheckpointSpeed(ckpt: ModelCheckpoint, be: Backend, s: SpeedSettings,
  onRun?: (done: number, total: number) => void): Promise<{ speed: SpeedResult; loadSeconds: number }> {
  checkSpeedSettings(s, ckpt.config.maxPositionEmbeddings, ckpt.path);
  const t0 = performance.now();
  const model = LlamaModel.load(ckpt, be);
  const loadSeconds = (performance.now() - t0) / 1000;
  try {
    return { speed: await measureSpeed(model, s, onRun), loadSeconds };
  } finally {
    model.free();
  }
}
