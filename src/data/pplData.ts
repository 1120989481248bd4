/**
 * Token streams for perplexity under the GPTQ protocol (PROTOCOLS.md §1; GPTQ datautils.py and
 * llama.py `llama_eval`): the evaluator cuts the stream into floor(numel / seqlen) windows.
 *   wikitext2  wiki.test.raw rows joined "\n\n", tokenized once
 *   ptb        ptb.valid.txt rows (stripped) joined "\n\n"   (GPTQ get_ptb evaluates on validation)
 *   ptb-new    ptb.test.txt rows joined " "
 *   c4         256 windows of seqlen drawn by GPTQ's sampler with CPython random.seed(0), concatenated
 *   c4-new     the first 1,100 validation docs joined " ", truncated to 256 × seqlen tokens
 *   tinystories  TinyStories V1 validation stories (not a GPTQ set) joined "\n\n"
 *   file:PATH or an existing file path: the whole text, tokenized once
 * One BOS at the very start of a tokenized-once stream when `bos` (default true). For c4 each
 * document is tokenized with `bos` as GPTQ's LLaMA tokenizer does, so a window starting at j = 0
 * starts with that document's BOS.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { defaultDataDir } from '../paths.js';
import { readC4Docs, sampleC4Windows } from './c4.js';
import { DATA_FILES, dataPath, ptbRows, readDataFile, tinystoriesRows, wikitextRows } from './textFiles.js';

const PPL_DATASETS = Object.freeze(['wikitext2', 'ptb', 'ptb-new', 'c4', 'c4-new', 'tinystories'] as const);

/** What each named set is, and the data file it reads (for `lowbit eval --ppl list`). */
export const PPL_DATASET_INFO: Readonly<Record<(typeof PPL_DATASETS)[number], { readonly what: string; readonly file: string }>> = Object.freeze({
  wikitext2: { what: 'WikiText-2 raw test, rows joined "\\n\\n" (GPTQ; the paper\'s main column)', file: DATA_FILES.wikitext2Test },
  ptb: { what: 'Penn Treebank validation, rows joined "\\n\\n" (GPTQ get_ptb)', file: DATA_FILES.ptbValid },
  'ptb-new': { what: 'Penn Treebank test, rows joined " " (GPTQ get_ptb_new)', file: DATA_FILES.ptbTest },
  c4: { what: '256 windows drawn from C4 validation (GPTQ get_c4; partial shard here: approximate)', file: DATA_FILES.c4Valid },
  'c4-new': { what: 'first 1,100 C4 validation documents joined " " (GPTQ get_c4_new; 1,025 here: approximate)', file: DATA_FILES.c4Valid },
  tinystories: { what: '1,000 TinyStories V1 validation stories (the bundled models\' own domain; not a GPTQ set)', file: DATA_FILES.tinystoriesValid },
});

/** GPTQ's C4 evaluation: 256 windows; c4-new: the first 1,100 documents. */
const C4_WINDOWS = 256;
const C4_NEW_DOCS = 1100;
const C4_EVAL_SEED = 0;

export interface PplStreamInfo {
  readonly dataset: string;
  readonly protocol: 'gptq';
  readonly files: string[];
  readonly textChars: number;
  readonly tokens: number;
  readonly bos: boolean;
  readonly seqlen: number;
  readonly notes?: string[];
}

export interface PplStream {
  readonly ids: Int32Array;
  readonly info: PplStreamInfo;
}

export interface PplStreamOptions {
  readonly seqlen: number;
  readonly dataDir?: string;
  /** one BOS at the start of the stream (c4: per document); default true */
  readonly bos?: boolean;
}

export function pplStream(name: string, tok: Tokenizer, opts: PplStreamOptions): PplStream {
  if (!Number.isInteger(opts.seqlen) || opts.seqlen < 1) throw new UsageError(`seqlen must be a positive integer (got ${opts.seqlen})`);
  const dataDir = opts.dataDir ?? defaultDataDir();
  const bos = opts.bos ?? true;
  const base = { dataset: name, protocol: 'gptq' as const, bos, seqlen: opts.seqlen };
  const once = (files: string[], text: string, notes?: string[]): PplStream => {
    const ids = Int32Array.from(tok.encode(text, { bos }));
    return { ids, info: { ...base, files, textChars: text.length, tokens: ids.length, ...(notes ? { notes } : {}) } };
  };
  const file = (rel: string): string => dataPath(dataDir, rel);

  switch (name) {
    case 'wikitext2': {
      const f = file(DATA_FILES.wikitext2Test);
      return once([f], wikitextRows(readDataFile(f)).join('\n\n'));
    }
    case 'ptb': {
      const f = file(DATA_FILES.ptbValid);
      return once([f], ptbRows(readDataFile(f)).join('\n\n'));
    }
    case 'ptb-new': {
      const f = file(DATA_FILES.ptbTest);
      return once([f], ptbRows(readDataFile(f)).join(' '));
    }
    case 'tinystories': {
      const f = file(DATA_FILES.tinystoriesValid);
      const stories = tinystoriesRows(readDataFile(f));
      return once([f], stories.join('\n\n'), [
        `TinyStories V1 validation, ${stories.length} stories (first 1,000 of the split), each trimmed, joined with "\\n\\n"; not a GPTQ dataset`,
      ]);
    }
    case 'c4':
      return c4Stream(file(DATA_FILES.c4Valid), tok, { ...base });
    case 'c4-new': {
      const f = file(DATA_FILES.c4Valid);
      const docs = readC4Docs(f);
      const used = docs.slice(0, C4_NEW_DOCS);
      const text = used.join(' ');
      const all = tok.encode(text, { bos });
      const ids = Int32Array.from(all.slice(0, C4_WINDOWS * opts.seqlen));
      const notes = [`first ${C4_NEW_DOCS} validation documents joined with " ", truncated to ${C4_WINDOWS} × seqlen tokens`];
      if (used.length < C4_NEW_DOCS) notes.push(`only ${used.length} of GPTQ's ${C4_NEW_DOCS} documents are in the data: approximate`);
      if (ids.length < C4_WINDOWS * opts.seqlen) notes.push(`${ids.length} tokens: fewer than ${C4_WINDOWS} windows of ${opts.seqlen}`);
      return { ids, info: { ...base, files: [f], textChars: text.length, tokens: ids.length, notes } };
    }
    default: {
      const path = name.startsWith('file:') ? name.slice('file:'.length) : name;
      if (name.startsWith('file:') || existsSync(path)) {
        const f = resolve(path);
        return once([f], readDataFile(f, 'the text file given as the dataset does not exist'));
      }
      throw new UsageError(`unknown perplexity dataset "${name}": use one of ${PPL_DATASETS.join(', ')}, or file:PATH for a text file`);
    }
  }
}

function c4Stream(f: string, tok: Tokenizer, base: { dataset: string; protocol: 'gptq'; bos: boolean; seqlen: number }): PplStream {
  const docs = readC4Docs(f);
  const windows = sampleC4Windows(docs, tok, { count: C4_WINDOWS, seqlen: base.seqlen, seed: C4_EVAL_SEED, bos: base.bos, file: f, split: 'validation' });
  const ids = new Int32Array(C4_WINDOWS * base.seqlen);
  windows.forEach((w, k) => ids.set(w.ids, k * base.seqlen));
  const textChars = [...new Set(windows.map((w) => w.doc))].reduce((n, d) => n + docs[d]!.length, 0);
  return {
    ids,
    info: {
      ...base, files: [f], textChars, tokens: ids.length,
      notes: [
        `GPTQ get_c4 sampler (CPython random.seed(${C4_EVAL_SEED}), ${C4_WINDOWS} windows, docs with >= seqlen tokens, each doc tokenized with BOS ${base.bos ? 'on' : 'off'})`,
        `only ${docs.length} of the 45,576 validation-shard documents are in the data, so the draws differ from GPTQ's: approximate`,
        `textChars counts the ${new Set(windows.map((w) => w.doc)).size} distinct documents windows came from`,
      ],
    },
  };
}
