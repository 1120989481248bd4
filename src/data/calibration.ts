/**
 * GPTQ calibration samplers (datautils.py train loaders): `nsamples` windows of `seqlen` tokens.
 *   wikitext2        wiki.train.raw rows joined "\n\n" (not in the bundled data: needs a --data-dir that has it)
 *   wikitext2-valid  wiki.valid.raw, the same join (a stand-in when the train split is missing)
 *   ptb              ptb.train.txt rows (stripped) joined "\n\n" (GPTQ get_ptb; bundled gzip-compressed)
 *   c4               train documents, GPTQ get_c4's per-sample doc draw and window (see c4.ts)
 *   a file path      the whole text
 * Joined streams are tokenized as GPTQ does (tokenizer defaults: one BOS at the start when the
 * tokenizer has one), then random.seed(seed); each sample i = randint(0, numel - seqlen - 1).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { FormatError, UsageError } from '../errors.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { defaultDataDir } from '../paths.js';
import { readC4Docs, sampleC4Windows } from './c4.js';
import { PyRandom } from './mt19937.js';
import { DATA_FILES, dataPath, ptbRows, readDataFile, wikitextRows } from './textFiles.js';

const CALIBRATION_SOURCES = Object.freeze(['wikitext2', 'wikitext2-valid', 'ptb', 'c4'] as const);
/** What `quantize` and `study` calibrate on without --calib: C4's train sample (WikiText-2 train, the paper's set, is not bundled). */
export const DEFAULT_CALIBRATION = 'c4';

export interface CalibrationOptions {
  readonly nsamples: number;
  readonly seqlen: number;
  readonly seed: number;
  readonly dataDir?: string;
}

export interface CalibrationInfo {
  readonly source: string;
  readonly file: string;
  readonly seed: number;
  readonly nsamples: number;
  readonly seqlen: number;
  /** window starts: in the joined stream, or (c4) in each drawn document's ids */
  readonly starts: number[];
  /** c4: the document each window came from */
  readonly docs?: number[];
  readonly notes?: string[];
}

export interface CalibrationSet {
  readonly windows: Int32Array[];
  readonly info: CalibrationInfo;
}

export function calibrationSet(source: string, tok: Tokenizer, opts: CalibrationOptions): CalibrationSet {
  for (const [k, v] of [['nsamples', opts.nsamples], ['seqlen', opts.seqlen]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`calibration ${k} must be a positive integer (got ${v})`);
  }
  if (!Number.isSafeInteger(opts.seed)) throw new UsageError(`calibration seed must be an integer (got ${opts.seed})`);
  const dataDir = opts.dataDir ?? defaultDataDir();
  const bos = tok.bosId !== undefined;
  switch (source) {
    case 'wikitext2': {
      const f = dataPath(dataDir, DATA_FILES.wikitext2Train);
      if (!existsSync(f)) {
        throw new FormatError(f, 'file not found: the WikiText-2 train split is not bundled (see assets/data/README.md); pass a --data-dir that has it, or calibrate on c4 (the default), ptb or wikitext2-valid');
      }
      return fromStream(source, f, wikitextRows(readDataFile(f)).join('\n\n'), tok, bos, opts);
    }
    case 'wikitext2-valid': {
      const f = dataPath(dataDir, DATA_FILES.wikitext2Valid);
      return fromStream(source, f, wikitextRows(readDataFile(f)).join('\n\n'), tok, bos, opts);
    }
    case 'ptb': {
      const f = dataPath(dataDir, DATA_FILES.ptbTrain);
      const text = readDataFile(f);
      return fromStream(source, f, ptbRows(text).join('\n\n'), tok, bos, opts);
    }
    case 'c4': {
      const f = dataPath(dataDir, DATA_FILES.c4Train);
      const docs = readC4Docs(f);
      const w = sampleC4Windows(docs, tok, { count: opts.nsamples, seqlen: opts.seqlen, seed: opts.seed, bos, file: f, split: 'train' });
      return {
        windows: w.map((x) => x.ids),
        info: {
          source, file: f, seed: opts.seed, nsamples: opts.nsamples, seqlen: opts.seqlen,
          starts: w.map((x) => x.start), docs: w.map((x) => x.doc),
          notes: [`only the first ${docs.length} documents of C4 train shard 0 are in the data, so the draws differ from GPTQ's`],
        },
      };
    }
    default: {
      const path = source.startsWith('file:') ? source.slice('file:'.length) : source;
      if (!source.startsWith('file:') && !existsSync(path)) {
        throw new UsageError(`unknown calibration source "${source}": use one of ${CALIBRATION_SOURCES.join(', ')}, or a text file path`);
      }
      const f = resolve(path);
      return fromStream(source, f, readDataFile(f, 'the calibration text file does not exist'), tok, bos, opts);
    }
  }
}

/** GPTQ's sampler over one tokenized stream: random.seed(seed); i = randint(0, numel - seqlen - 1) per sample. */
export function sampleStreamStarts(numel: number, opts: { nsamples: number; seqlen: number; seed: number }): number[] {
  if (numel - opts.seqlen - 1 < 0) throw new UsageError(`seqlen ${opts.seqlen} is too long for the calibration data (${numel} tokens; need more than seqlen)`);
  const rng = new PyRandom(opts.seed);
  const starts: number[] = [];
  for (let k = 0; k < opts.nsamples; k++) starts.push(rng.randint(0, numel - opts.seqlen - 1));
  return starts;
}

function fromStream(source: string, file: string, text: string, tok: Tokenizer, bos: boolean, opts: CalibrationOptions): CalibrationSet {
  const ids = Int32Array.from(tok.encode(text, { bos }));
  let starts: number[];
  try {
    starts = sampleStreamStarts(ids.length, opts);
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`${file}: ${e.message}`);
    throw e;
  }
  return {
    windows: starts.map((i) => ids.slice(i, i + opts.seqlen)),
    info: { source, file, seed: opts.seed, nsamples: opts.nsamples, seqlen: opts.seqlen, starts },
  };
}
