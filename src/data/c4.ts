/**
 * C4 documents and GPTQ's C4 window sampler (datautils.py `get_c4`).
 * The bundled C4 files are pretty-printed JSON arrays of {"text": ...} cut off mid-document
 * (c4/SOURCE.md): we read complete objects one by one and stop at the first incomplete one.
 */
import { FormatError, UsageError } from '../errors.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { PyRandom } from './mt19937.js';
import { readDataFile } from './textFiles.js';

/** The "text" of every complete top-level object of a (possibly truncated) JSON array. */
export function readC4Docs(file: string): string[] {
  const src = readDataFile(file);
  let i = src.indexOf('[');
  if (i < 0) throw new FormatError(file, 'expected a JSON array of {"text": ...} objects');
  const docs: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (i = i + 1; i < src.length; i++) {
    const c = src.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b) { // {
      if (depth === 0) start = i;
      depth++;
    } else if (c === 0x7d) { // }
      depth--;
      if (depth === 0) docs.push(docText(file, src.slice(start, i + 1), docs.length));
      if (depth < 0) throw new FormatError(file, `unbalanced "}" at character ${i}`);
    } else if (c === 0x5d && depth === 0) break; // ] closes the array
  }
  if (docs.length === 0) throw new FormatError(file, 'no complete {"text": ...} object');
  return docs;
}

function docText(file: string, json: string, index: number): string {
  let obj: unknown;
  try {
    obj = JSON.parse(json);
  } catch (e) {
    throw new FormatError(file, `document ${index}: invalid JSON (${(e as Error).message})`);
  }
  const text = (obj as { text?: unknown }).text;
  if (typeof text !== 'string') throw new FormatError(file, `document ${index} has no string "text"`);
  return text;
}

export interface C4Window {
  /** index of the document drawn */
  readonly doc: number;
  /** start of the window in the document's token ids */
  readonly start: number;
  readonly ids: Int32Array;
}

/**
 * GPTQ's C4 sampler, draw for draw (datautils.py `get_c4`; the validation loop uses seed 0 and 256
 * windows, the train loop the calibration seed and nsamples):
 *   repeat: i = randint(0, len(docs) - 1), ids = tokenize(docs[i]) until len(ids) > seqlen (train)
 *   or len(ids) >= seqlen (validation); j = randint(0, len(ids) - seqlen - 1); window = ids[j : j + seqlen].
 * Documents are tokenized with `bos` (the tokenizer default GPTQ relies on: LLaMA adds BOS per doc).
 * In the validation loop a doc of exactly seqlen tokens makes CPython's randint(0, -1) raise; we raise too.
 */
export function sampleC4Windows(
  docs: readonly string[], tok: Tokenizer, opts: { count: number; seqlen: number; seed: number; bos: boolean; file: string; split: 'train' | 'validation' },
): C4Window[] {
  const minLen = opts.split === 'train' ? opts.seqlen + 1 : opts.seqlen;
  const rng = new PyRandom(opts.seed);
  const cache = new Map<number, number[]>();
  let longEnough = 0;
  const windows: C4Window[] = [];
  while (windows.length < opts.count) {
    let i: number;
    let ids: number[];
    for (;;) {
      i = rng.randint(0, docs.length - 1);
      let got = cache.get(i);
      if (!got) {
        got = tok.encode(docs[i]!, { bos: opts.bos });
        cache.set(i, got);
        if (got.length >= minLen) longEnough++;
      }
      ids = got;
      if (ids.length >= minLen) break;
      if (cache.size === docs.length && longEnough === 0) {
        throw new UsageError(`${opts.file}: no document has ${minLen} tokens or more (${docs.length} documents); use a smaller seqlen`);
      }
    }
    if (ids.length === opts.seqlen) {
      throw new UsageError(
        `${opts.file}: document ${i} has exactly seqlen = ${opts.seqlen} tokens; GPTQ's sampler fails there (CPython randint(0, -1) raises ValueError). Use another seqlen`,
      );
    }
    const j = rng.randint(0, ids.length - opts.seqlen - 1);
    windows.push({ doc: i, start: j, ids: Int32Array.from(ids.slice(j, j + opts.seqlen)) });
  }
  return windows;
}
