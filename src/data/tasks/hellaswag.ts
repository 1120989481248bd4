/**
 * HellaSwag validation in two layouts:
 * - the original `hellaswag/hellaswag_val.jsonl` (`activity_label`, `ctx_a`, `ctx_b`, `endings`, `label`), as lm-eval reads it;
 * - llama.cpp's text file `hellaswag/hellaswag_val_full.txt`: 6 lines per example (`activity_label: ctx`, label 0..3,
 *   4 endings), already preprocessed by its extractor and without the ctx_a/ctx_b split, so `ctx_b` is not capitalized.
 *   Results from it are labelled with the protocol variant 'llamacpp-txt'.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../errors.js';
import { defaultDataDir } from '../../paths.js';
import { int, readJsonl, readLines, str, strArray } from './lines.js';
import { dataPath } from '../textFiles.js';

const HELLASWAG_ENDINGS = 4;
const LINES_PER_EXAMPLE = 2 + HELLASWAG_ENDINGS;

/** One example of the original jsonl. */
export interface HellaswagDoc {
  readonly activity_label: string;
  readonly ctx_a: string;
  readonly ctx_b: string;
  readonly endings: readonly string[];
  readonly label: number;
}

/** One example of llama.cpp's text layout: `ctx` is `activity_label + ": " + ctx`, already preprocessed. */
export interface HellaswagTxtDoc {
  readonly ctx: string;
  readonly endings: readonly string[];
  readonly label: number;
}

export type HellaswagData =
  | { readonly layout: 'jsonl'; readonly file: string; readonly docs: HellaswagDoc[] }
  | { readonly layout: 'llamacpp-txt'; readonly file: string; readonly docs: HellaswagTxtDoc[] };

export function readHellaswagJsonl(file: string): HellaswagDoc[] {
  return readJsonl(file).map((r) => {
    const endings = strArray(file, r, 'endings');
    if (endings.length !== HELLASWAG_ENDINGS) throw new FormatError(`${file}:${r.line}`, `expected ${HELLASWAG_ENDINGS} endings, got ${endings.length}`);
    const label = int(file, r, 'label');
    if (label < 0 || label >= HELLASWAG_ENDINGS) throw new FormatError(`${file}:${r.line}`, `label ${label} is not in 0..3`);
    return { activity_label: str(file, r, 'activity_label'), ctx_a: str(file, r, 'ctx_a'), ctx_b: str(file, r, 'ctx_b'), endings, label };
  });
}

export function readHellaswagTxt(file: string): HellaswagTxtDoc[] {
  const lines = readLines(file);
  if (lines.length % LINES_PER_EXAMPLE !== 0) {
    throw new FormatError(file, `has ${lines.length} lines, not a multiple of ${LINES_PER_EXAMPLE} (context, label, 4 endings per example)`);
  }
  const docs: HellaswagTxtDoc[] = [];
  for (let i = 0; i < lines.length; i += LINES_PER_EXAMPLE) {
    const labelText = lines[i + 1]!; // lines.length is a multiple of LINES_PER_EXAMPLE
    if (!/^[0-3]$/.test(labelText)) throw new FormatError(`${file}:${i + 2}`, `label ${JSON.stringify(labelText)} is not one of 0..3`);
    docs.push({ ctx: lines[i]!, label: Number(labelText), endings: lines.slice(i + 2, i + LINES_PER_EXAMPLE) });
  }
  return docs;
}

/** The jsonl layout when `hellaswag_val.jsonl` exists, else llama.cpp's text file. */
export function loadHellaswag(dataDir: string = defaultDataDir()): HellaswagData {
  const jsonl = join(dataDir, 'hellaswag', 'hellaswag_val.jsonl');
  if (existsSync(jsonl)) return { layout: 'jsonl', file: jsonl, docs: readHellaswagJsonl(jsonl) };
  const txt = dataPath(dataDir, 'hellaswag/hellaswag_val_full.txt');
  return { layout: 'llamacpp-txt', file: txt, docs: readHellaswagTxt(txt) };
}
