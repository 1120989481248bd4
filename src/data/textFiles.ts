/**
 * Dataset files to the texts GPTQ tokenizes (datautils.py), with the HF `datasets` row rules:
 *  - WikiText-2 (`wikitext-2-raw-v1`): a row per line of wiki.*.raw; a whitespace-only line is "",
 *    other lines keep their trailing "\n"; GPTQ joins the rows with "\n\n".
 *  - PTB (`ptb_text_only`): a row per line of ptb.*.txt, stripped; GPTQ `get_ptb` joins with "\n\n",
 *    `get_ptb_new` with " ".
 *  - TinyStories V1 validation (not a GPTQ set): stories separated by "<|endoftext|>", each trimmed,
 *    empty ones dropped, joined with "\n\n" (our choice: a blank line between stories, as the HF
 *    rows separate paragraphs).
 * File locations follow the layout of the bundled assets/data (assets/data/README.md). Any file may
 * be stored gzip-compressed as `<name>.gz` instead (the bundled PTB train split and HellaSwag are).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FormatError } from '../errors.js';

export const DATA_FILES = Object.freeze({
  wikitext2Test: 'wikitext2/wikitext-2-raw/wiki.test.raw',
  wikitext2Valid: 'wikitext2/wikitext-2-raw/wiki.valid.raw',
  wikitext2Train: 'wikitext2/wikitext-2-raw/wiki.train.raw',
  ptbTrain: 'ptb/ptb.train.txt',
  ptbValid: 'ptb/ptb.valid.txt',
  ptbTest: 'ptb/ptb.test.txt',
  c4Valid: 'c4/DaizeDong-Unified-MoE-Compression/c4_valid_part_of_0.json',
  c4Train: 'c4/DaizeDong-Unified-MoE-Compression/c4_train_part_of_0.json',
  tinystoriesValid: 'tinystories/BhargavKumarNath-NanoGPT/tinystories_val.txt',
});

const WHERE = 'the data folder (--data-dir or LOWBIT_DATA, default the bundled assets/data) must have the layout described in assets/data/README.md';

/** A text file as UTF-8, gunzipped when its name ends in .gz; errors name the file. */
export function readText(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new FormatError(path, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!path.endsWith('.gz')) return bytes.toString('utf8');
  try {
    return gunzipSync(bytes).toString('utf8');
  } catch (e) {
    throw new FormatError(path, `not a valid gzip file (${(e as Error).message})`);
  }
}

/** Reads a data file as UTF-8; a missing file is a FormatError naming it and saying where data comes from. */
export function readDataFile(path: string, hint?: string): string {
  if (!existsSync(path)) throw new FormatError(path, `file not found: ${hint ?? WHERE}`);
  if (!statSync(path).isFile()) throw new FormatError(path, 'not a regular file');
  return readText(path);
}

/** `dataDir/rel`, or `dataDir/rel.gz` when only the compressed file exists. */
export function dataPath(dataDir: string, rel: string): string {
  const p = join(dataDir, rel);
  return !existsSync(p) && existsSync(`${p}.gz`) ? `${p}.gz` : p;
}

/** Lines as Python's `for line in f` gives them: each keeps its "\n", no empty row after a final "\n". */
function pythonLines(text: string): string[] {
  const parts = text.replaceAll('\r\n', '\n').split('\n');
  const lines = parts.map((p, i) => (i < parts.length - 1 ? p + '\n' : p));
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** HF wikitext rows: whitespace-only lines become "", the others are kept with their "\n". */
export function wikitextRows(text: string): string[] {
  return pythonLines(text).map((l) => (l.trim() === '' ? '' : l));
}

/** HF ptb_text_only rows: every line, stripped. */
export function ptbRows(text: string): string[] {
  return pythonLines(text).map((l) => l.trim());
}

/** TinyStories rows: the stories between "<|endoftext|>" markers, trimmed, empty ones dropped. */
export function tinystoriesRows(text: string): string[] {
  return text.split('<|endoftext|>').map((s) => s.trim()).filter((s) => s.length > 0);
}
