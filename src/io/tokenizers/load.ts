/**
 * Tokenizers by path, for every checkpoint format and for `--tokenizer`: a folder holding
 * tokenizer.json (HF), tokenizer.spm.json (a quantized checkpoint's copy of a GGUF vocabulary) or
 * one tok*.bin (llama2.c); or one of those files; or a .gguf (its embedded vocabulary).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { FormatError, UsageError } from '../../errors.js';
import { ggufVocab } from '../gguf/config.js';
import type { GgufHeader } from '../gguf/types.js';
import { readGgufHeader } from '../gguf/parse.js';
import { SPM_TOKENIZER } from '../quantized/layout.js';
import type { Tokenizer } from '../tokenizer.js';
import { loadHfTokenizer } from './hf.js';
import { readLlama2cTokenizer } from './llama2c.js';
import { spmTokenizer } from './spm.js';

export interface LoadedTokenizer {
  readonly tokenizer: Tokenizer;
  /** the file the vocabulary came from, named in errors about it */
  readonly file: string;
  /** ModelCheckpoint.tokenizerPath: the folder of a tokenizer.json or tokenizer.spm.json, else the file */
  readonly path: string;
}

const TOK_BIN = /^tok.*\.bin$/;

/** The tokenizer at `path` (see the module comment); `vocabSize` is what a tok*.bin must hold. */
export function loadTokenizer(path: string, vocabSize: number): LoadedTokenizer {
  if (!existsSync(path)) throw new UsageError(`tokenizer ${path} does not exist`);
  if (statSync(path).isDirectory()) {
    const found = tokenizerInDir(path, vocabSize);
    if (!found) throw new UsageError(`tokenizer folder ${path} has no tokenizer.json, ${SPM_TOKENIZER} or single tok*.bin`);
    return found;
  }
  const name = basename(path);
  if (name === 'tokenizer.json') return tokenizerInDir(dirname(path), vocabSize)!;
  if (name === SPM_TOKENIZER) return { tokenizer: readSpmJson(path), file: path, path: dirname(path) };
  switch (extname(path).toLowerCase()) {
    case '.gguf': return { tokenizer: ggufTokenizer(readGgufHeader(path)), file: path, path };
    case '.bin': return { tokenizer: readLlama2cTokenizer(path, vocabSize), file: path, path };
  }
  throw new UsageError(`${path} is not a tokenizer (expected a folder with tokenizer.json, a tokenizer.json, a tok*.bin or a .gguf)`);
}

/** The tokenizer a folder holds (tokenizer.json first, then tokenizer.spm.json, then one tok*.bin), or undefined. */
export function tokenizerInDir(dir: string, vocabSize: number): LoadedTokenizer | undefined {
  const json = join(dir, 'tokenizer.json');
  if (existsSync(json)) return { tokenizer: loadHfTokenizer(dir), file: json, path: dir };
  const spm = join(dir, SPM_TOKENIZER);
  if (existsSync(spm)) return { tokenizer: readSpmJson(spm), file: spm, path: dir };
  const bins = readdirSync(dir).filter((f) => TOK_BIN.test(f));
  if (bins.length > 1) throw new UsageError(`${dir}: several tok*.bin tokenizers (${bins.join(', ')}); pass one with --tokenizer`);
  if (bins.length === 1) {
    const file = join(dir, bins[0]!);
    return { tokenizer: readLlama2cTokenizer(file, vocabSize), file, path: file };
  }
  return undefined;
}

/** The SentencePiece vocabulary embedded in a GGUF (only "llama", i.e. SentencePiece BPE, is supported). */
export function ggufTokenizer(header: GgufHeader): Tokenizer {
  const file = header.path;
  const vocab = ggufVocab(header);
  if (vocab.model !== 'llama') throw new FormatError(file, `embedded tokenizer model "${vocab.model}" is not supported (only SentencePiece "llama")`);
  if (!vocab.scores) throw new FormatError(file, 'embedded tokenizer has no tokenizer.ggml.scores');
  return spmTokenizer({
    tokens: vocab.tokens, scores: vocab.scores, types: vocab.types, bosId: vocab.bosId, eosId: vocab.eosId, unkId: vocab.unkId, source: file,
    ...(vocab.addSpacePrefix === undefined ? {} : { addSpacePrefix: vocab.addSpacePrefix }),
  });
}

/** tokenizer.spm.json: {tokens, scores, types?, bosId?, eosId?, unkId?, addSpacePrefix?}, every field checked. */
function readSpmJson(file: string): Tokenizer {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError(file, `cannot read JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FormatError(file, 'not a JSON object');
  const o = v as Record<string, unknown>;
  const list = <T>(key: string, of: 'string' | 'number', optional = false): T[] | undefined => {
    const a = o[key];
    if ((a === undefined || a === null) && optional) return undefined;
    if (!Array.isArray(a) || !a.every((x) => typeof x === of)) throw new FormatError(file, `"${key}" must be an array of ${of}s`);
    return a as T[];
  };
  const id = (key: string): number | undefined => {
    const x = o[key];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'number' || !Number.isSafeInteger(x)) throw new FormatError(file, `"${key}" must be a token id, got ${JSON.stringify(x)}`);
    return x;
  };
  const addSpacePrefix = o.addSpacePrefix;
  if (addSpacePrefix !== undefined && addSpacePrefix !== null && typeof addSpacePrefix !== 'boolean') throw new FormatError(file, '"addSpacePrefix" must be true or false');
  const types = list<number>('types', 'number', true);
  const bosId = id('bosId'), eosId = id('eosId'), unkId = id('unkId');
  return spmTokenizer({
    tokens: list<string>('tokens', 'string')!,
    scores: list<number>('scores', 'number')!,
    source: file,
    ...(types ? { types } : {}),
    ...(bosId === undefined ? {} : { bosId }),
    ...(eosId === undefined ? {} : { eosId }),
    ...(unkId === undefined ? {} : { unkId }),
    ...(typeof addSpacePrefix === 'boolean' ? { addSpacePrefix } : {}),
  });
}
