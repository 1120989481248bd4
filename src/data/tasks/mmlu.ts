/**
 * MMLU in the hendrycks `data.tar` layout: `mmlu/data/{dev,val,test}/<subject>_<split>.csv`, no header row,
 * 6 columns: question, A, B, C, D, answer letter. Field text is kept exactly as in the file (pandas would turn
 * all-numeric columns into numbers, which only matters for values such as "1.50" or "NA").
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../errors.js';
import { defaultDataDir } from '../../paths.js';
import { parseCsv } from './csv.js';

export type MmluSplit = 'dev' | 'val' | 'test';
export const MMLU_LETTERS = ['A', 'B', 'C', 'D'] as const;
const COLUMNS = 2 + MMLU_LETTERS.length;

export interface MmluRow {
  readonly question: string;
  readonly choices: readonly string[];
  /** the answer letter as written in the file ("A".."D") */
  readonly answer: string;
  /** its index 0..3 */
  readonly gold: number;
}

export interface MmluSubject {
  /** e.g. "high_school_us_history" */
  readonly subject: string;
  readonly rows: MmluRow[];
}

function mmluDir(dataDir: string, split: MmluSplit): string {
  return join(dataDir, 'mmlu', 'data', split);
}

/** Subject names found in `data/<split>/`, sorted (the order the hendrycks script evaluates them in). */
export function listMmluSubjects(dataDir: string = defaultDataDir(), split: MmluSplit = 'test'): string[] {
  const dir = mmluDir(dataDir, split);
  if (!existsSync(dir)) throw new FormatError(dir, 'MMLU folder not found (expected mmlu/data/<split>/<subject>_<split>.csv)');
  const suffix = `_${split}.csv`;
  return readdirSync(dir).filter((f) => f.endsWith(suffix)).map((f) => f.slice(0, -suffix.length)).sort();
}

export function readMmluCsv(file: string): MmluRow[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new FormatError(file, `cannot read: ${(e as Error).message}`);
  }
  return parseCsv(text, file).map(({ line, fields }) => {
    if (fields.length !== COLUMNS) throw new FormatError(`${file}:${line}`, `expected ${COLUMNS} fields (question, A, B, C, D, answer), got ${fields.length}`);
    const answer = fields[COLUMNS - 1]!;
    const gold = (MMLU_LETTERS as readonly string[]).indexOf(answer.trim());
    if (gold < 0) throw new FormatError(`${file}:${line}`, `answer ${JSON.stringify(answer)} is not one of A, B, C, D`);
    return { question: fields[0]!, choices: fields.slice(1, COLUMNS - 1), answer, gold };
  });
}

export function loadMmluSubject(subject: string, split: MmluSplit, dataDir: string = defaultDataDir()): MmluSubject {
  return { subject, rows: readMmluCsv(join(mmluDir(dataDir, split), `${subject}_${split}.csv`)) };
}

/** Every subject of one split, sorted by name. */
export function loadMmlu(split: MmluSplit, dataDir: string = defaultDataDir()): MmluSubject[] {
  return listMmluSubjects(dataDir, split).map((s) => loadMmluSubject(s, split, dataDir));
}
