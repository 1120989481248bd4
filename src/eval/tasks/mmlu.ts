/**
 * MMLU 5-shot, hendrycks style (the QLoRA / IR-QLoRA evaluation script; PROTOCOLS.md §3): a header naming the subject,
 * the subject's first k dev rows with answers, the test question ending in "\nAnswer:"; prediction = the argmax of the
 * next-token log-probabilities of the letter tokens "A".."D". Shots are dropped from the end while the prompt is longer
 * than the context.
 */
import { MMLU_LETTERS, type MmluRow, type MmluSubject } from '../../data/tasks/mmlu.js';
import { UsageError } from '../../errors.js';
import type { Tokenizer } from '../../io/tokenizer.js';
import type { Scorer } from '../scorer.js';
import { MMLU_CATEGORIES, mmluCategory, type MmluCategory } from './mmluCategories.js';
import { argmax } from './score.js';

export const MMLU_SHOTS = 5;

/** " abstract algebra": every `_`-separated word prefixed with a space (so the header has two spaces after "about"). */
export function formatSubject(subject: string): string {
  return subject.split('_').map((w) => ` ${w}`).join('');
}

export function mmluHeader(subject: string): string {
  return `The following are multiple choice questions (with answers) about ${formatSubject(subject)}.\n\n`;
}

/** One question; with its answer (a shot) it ends "\nAnswer: X\n\n", without it "\nAnswer:". */
function formatMmluExample(row: MmluRow, includeAnswer: boolean): string {
  let s = row.question;
  row.choices.forEach((c, j) => { s += `\n${MMLU_LETTERS[j]}. ${c}`; });
  s += '\nAnswer:';
  return includeAnswer ? `${s} ${row.answer}\n\n` : s;
}

export function mmluPrompt(subject: string, shots: readonly MmluRow[], question: MmluRow): string {
  return mmluHeader(subject) + shots.map((r) => formatMmluExample(r, true)).join('') + formatMmluExample(question, false);
}

export interface MmluPrompt {
  readonly text: string;
  readonly ids: number[];
  /** dev examples kept (≤ the requested number) */
  readonly shots: number;
  /** true when even the 0-shot prompt was too long and was cut to its last maxLen tokens */
  readonly cut: boolean;
}

/**
 * The prompt with as many of the first `k` dev rows as fit: shots are dropped from the end while the token count
 * (BOS included when `bos`) exceeds `maxLen`. If even the 0-shot prompt is too long, its last `maxLen` tokens are kept.
 */
export function buildMmluPrompt(tok: Tokenizer, subject: string, dev: readonly MmluRow[], question: MmluRow,
  opts: { k?: number; maxLen: number; bos: boolean }): MmluPrompt {
  let k = Math.min(opts.k ?? MMLU_SHOTS, dev.length);
  for (;;) {
    const text = mmluPrompt(subject, dev.slice(0, k), question);
    const ids = tok.encode(text, { bos: opts.bos });
    if (ids.length <= opts.maxLen) return { text, ids, shots: k, cut: false };
    if (k === 0) return { text, ids: ids.slice(ids.length - opts.maxLen), shots: 0, cut: true };
    k--;
  }
}

/** The token of each letter as the tokenizer encodes it alone (no BOS), last id: `tokenizer("A").input_ids[-1]`. */
export function letterTokenIds(tok: Tokenizer): number[] {
  return MMLU_LETTERS.map((l) => {
    const ids = tok.encode(l, { bos: false });
    if (ids.length === 0) throw new UsageError(`tokenizer ${tok.description} encodes "${l}" to no tokens`);
    return ids[ids.length - 1]!;
  });
}

export interface Tally { n: number; correct: number }
export interface AccEntry { readonly n: number; readonly acc: number }

export interface MmluScores {
  readonly subjects: Record<string, AccEntry>;
  readonly categories: Record<MmluCategory, AccEntry>;
  /** over all questions (the paper's "Avg") */
  readonly average: AccEntry;
}

/** Per-subject tallies → per-subject, per-category (over its questions) and overall accuracy. Unknown subjects count only in the average. */
export function mmluScores(tallies: Readonly<Record<string, Tally>>): MmluScores {
  const cats = Object.fromEntries(MMLU_CATEGORIES.map((c) => [c, { n: 0, correct: 0 }])) as Record<MmluCategory, Tally>;
  const all: Tally = { n: 0, correct: 0 };
  const subjects: Record<string, AccEntry> = {};
  for (const [subject, t] of Object.entries(tallies)) {
    subjects[subject] = { n: t.n, acc: t.correct / t.n };
    const cat = mmluCategory(subject);
    if (cat) { cats[cat].n += t.n; cats[cat].correct += t.correct; }
    all.n += t.n;
    all.correct += t.correct;
  }
  const entry = (t: Tally): AccEntry => ({ n: t.n, acc: t.n === 0 ? NaN : t.correct / t.n });
  const categories = Object.fromEntries(MMLU_CATEGORIES.map((c) => [c, entry(cats[c])])) as Record<MmluCategory, AccEntry>;
  return { subjects, categories, average: entry(all) };
}

export interface MmluRunOptions {
  readonly bos: boolean;
  readonly maxLen: number;
  /** first N test questions of each subject */
  readonly limit?: number;
  readonly shots?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface MmluRun extends MmluScores {
  readonly n: number;
  /** questions whose prompt lost shots (or was cut) to fit maxLen */
  readonly truncated: number;
  /** 0/1 per question, subjects in order, for the standard error */
  readonly correct: number[];
}

/** Runs the whole protocol; `dev` and `test` are matched by subject name. */
export async function runMmlu(dev: readonly MmluSubject[], test: readonly MmluSubject[], scorer: Scorer, tok: Tokenizer,
  opts: MmluRunOptions): Promise<MmluRun> {
  const devBySubject = new Map(dev.map((s) => [s.subject, s.rows]));
  const letters = letterTokenIds(tok);
  const k = opts.shots ?? MMLU_SHOTS;
  const work = test.map((s) => ({ subject: s.subject, rows: opts.limit === undefined ? s.rows : s.rows.slice(0, opts.limit) }));
  const total = work.reduce((a, s) => a + s.rows.length, 0);
  const tallies: Record<string, Tally> = {};
  const correct: number[] = [];
  let done = 0;
  let truncated = 0;
  for (const { subject, rows } of work) {
    const shots = devBySubject.get(subject);
    if (!shots) throw new UsageError(`MMLU subject ${subject} has test rows but no dev file`);
    const t: Tally = (tallies[subject] = { n: 0, correct: 0 });
    for (const row of rows) {
      const prompt = buildMmluPrompt(tok, subject, shots, row, { k, maxLen: opts.maxLen, bos: opts.bos });
      if (prompt.shots < Math.min(k, shots.length) || prompt.cut) truncated++;
      const lp = await scorer.nextTokenLogprobs(prompt.ids, letters);
      const ok = argmax(lp) === row.gold ? 1 : 0;
      t.n++;
      t.correct += ok;
      correct.push(ok);
      opts.onProgress?.(++done, total);
    }
  }
  return { ...mmluScores(tallies), n: total, truncated, correct };
}
