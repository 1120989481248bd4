/**
 * HF `tokenizer.json` (+ `tokenizer_config.json`) through @huggingface/tokenizers.
 * BOS is explicit: the text is always encoded with add_special_tokens = false (no template, no
 * BOS from the post-processor), and `encode(text, {bos: true})` prepends exactly one BOS id.
 * BOS/EOS ids: tokenizer_config.json's bos_token / eos_token (a string or {content}) looked up in
 * the vocabulary, else config.json's bos_token_id / eos_token_id.
 * Decoding uses the tokenizer's own decoder with special tokens skipped (so a Llama-style
 * decoder drops the leading space of the first word, as transformers does).
 * The file is checked before the library sees it (hfCheck.ts) and probed once after (an encode
 * and decodes), so a corrupt tokenizer.json is a FormatError naming it at load, never a hang or a
 * SyntaxError at the first decode; an encode that leaves a piece without an id is refused too.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { FormatError, LowbitError, UsageError } from '../../errors.js';
import type { Tokenizer } from '../tokenizer.js';
import { checkTokenizerJson } from './hfCheck.js';
import { mergeSymbols } from './merge.js';

type Json = Record<string, unknown>;

/** Loads dir/tokenizer.json, with dir/tokenizer_config.json and dir/config.json when present. */
export function loadHfTokenizer(dir: string): Tokenizer {
  const file = join(dir, 'tokenizer.json');
  if (!existsSync(file)) throw new FormatError(file, 'file not found (an HF model folder needs tokenizer.json)');
  const bytes = readFileSync(file);
  const json = parseObject(file, bytes.toString('utf8'));
  const config = readOptional(join(dir, 'tokenizer_config.json'));
  const modelConfigFile = join(dir, 'config.json');
  const modelConfig = readOptional(modelConfigFile);
  return build(json, config, modelConfig, file, sha256(bytes), modelConfigFile);
}

/** A text that touches letters, digits, spaces, punctuation, newlines and non-ASCII, for probeTokenizer. */
const PROBE_TEXT = 'Hello, world! 123 \n\tnaïve café — 😀 <unk> end.';

function build(json: Json, config: Json, modelConfig: Json, source: string, digest: string, modelConfigFile: string): Tokenizer {
  checkTokenizerJson(source, json);
  const model = json.model as Json;
  let tok: HfTokenizer;
  try {
    tok = new HfTokenizer(json, config);
  } catch (e) {
    throw new FormatError(source, `cannot build the tokenizer: ${(e as Error).message}`);
  }
  installFastBpe(tok, model);
  const vocab = tok.get_vocab(true);
  let vocabSize = 0;
  for (const id of vocab.values()) vocabSize = Math.max(vocabSize, id + 1);
  const special = (key: 'bos' | 'eos'): number | undefined => {
    const t = config[`${key}_token`];
    const content = typeof t === 'string' ? t : t && typeof t === 'object' ? (t as Json).content : undefined;
    if (typeof content === 'string') {
      const id = tok.token_to_id(content);
      if (id === undefined) throw new FormatError(source, `${key}_token "${content}" of tokenizer_config.json is not in the vocabulary`);
      return id;
    }
    const fromModel = modelConfig[`${key}_token_id`];
    const id = Array.isArray(fromModel) ? fromModel[0] : fromModel;
    if (id === undefined || id === null) return undefined;
    if (!(typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 && id < vocabSize)) {
      throw new FormatError(modelConfigFile, `${key}_token_id ${JSON.stringify(id)} is not a token of ${source} (${vocabSize} tokens)`);
    }
    return id;
  };
  const bosId = special('bos');
  const eosId = special('eos');
  const kind = 'tokenizer.json';
  /** The library maps a piece with no id and no unk token to undefined: refuse instead of encoding 0. */
  const checked = (ids: number[], text: string): number[] => {
    for (const id of ids) {
      if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
        throw new FormatError(source, `cannot encode ${JSON.stringify(text.length > 40 ? text.slice(0, 40) + '…' : text)}: a piece has no id and the model has no usable unk_token`);
      }
    }
    return ids;
  };
  probeTokenizer(source, () => {
    // a vocabulary without an unk token may leave holes here: that is refused per text, when encoding
    const ids = tok.encode(PROBE_TEXT, { add_special_tokens: false }).ids.filter((id: number) => Number.isInteger(id));
    tok.decode(ids.length > 0 ? ids : [0], { skip_special_tokens: true });
    tok.decode(Array.from({ length: Math.min(vocabSize, 256) }, (_, i) => i), { skip_special_tokens: false });
  });
  return Object.freeze({
    kind,
    description: `${kind} (${model.type}, ${vocabSize} tokens, sha256 ${digest.slice(0, 8)}…)`,
    vocabSize,
    bosId,
    eosId,
    encode(text: string, opts: { bos: boolean }): number[] {
      const ids = checked(tok.encode(text, { add_special_tokens: false }).ids, text);
      if (!opts.bos) return ids;
      if (bosId === undefined) throw new UsageError(`${source}: the tokenizer has no BOS token; encode with BOS off`);
      return [bosId, ...ids];
    },
    decode(ids: readonly number[]): string {
      if (ids.length === 0) return ''; // the library rejects an empty list
      for (const id of ids) {
        if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) throw new UsageError(`${source}: token id ${id} is outside the vocabulary (${vocabSize} tokens)`);
      }
      return tok.decode([...ids], { skip_special_tokens: true });
    },
  });
}

/** Words at least this long go through mergeSymbols; shorter ones keep the library's cached path. */
const FAST_BPE_MIN_CHARS = 256;

/**
 * The library's BPE merge step (`BPE.bpe(word)`) allocates objects and JSON keys per pair, about
 * 10 µs per character: 15 s for WikiText-2 with a tokenizer that has no pre-tokenizer (the whole
 * text is one "word"). For long words we run the same merges through mergeSymbols: lowest merge
 * rank first, leftmost on ties, exactly the library's (and HF tokenizers') order. Only for plain
 * BPE models (no word suffixes, no dropout); everything else (normalizer, added tokens, byte
 * fallback, unknown fusing) stays the library's. test/io/tokenizers.test.ts checks both paths agree.
 */
function installFastBpe(tok: HfTokenizer, model: Json): void {
  const m = tok.model as unknown as { bpe?: (word: string) => string[] } | null;
  if (model.type !== 'BPE' || !m || typeof m.bpe !== 'function') return;
  if (model.end_of_word_suffix || model.continuing_subword_prefix || model.continuing_subword_suffix || model.dropout) return;
  const merges = model.merges;
  if (!Array.isArray(merges)) return;
  const ranks = new Map<string, Map<string, number>>();
  for (let r = 0; r < merges.length; r++) {
    const mg = merges[r] as unknown;
    const pair = typeof mg === 'string' ? mg.split(' ', 2) : mg;
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') return;
    let inner = ranks.get(pair[0]);
    if (!inner) ranks.set(pair[0], (inner = new Map()));
    inner.set(pair[1], r); // a repeated merge keeps its last rank, as the library's Map does
  }
  const original = m.bpe.bind(m);
  m.bpe = (word: string): string[] => {
    if (word.length < FAST_BPE_MIN_CHARS) return original(word);
    return mergeSymbols(word, (start, leftLen, rightLen) => {
      const rank = ranks.get(word.substr(start, leftLen))?.get(word.substr(start + leftLen, rightLen));
      return rank === undefined ? undefined : -rank;
    });
  };
}

/**
 * Runs `probe` (an encode and decodes through the library): the library compiles normalizer and
 * decoder regexes only when they are used, so a broken one would otherwise surface as a
 * SyntaxError at the first decode. Any failure is a FormatError naming the tokenizer file.
 */
function probeTokenizer(source: string, probe: () => void): void {
  try {
    probe();
  } catch (e) {
    if (e instanceof LowbitError) throw e;
    throw new FormatError(source, `the tokenizer fails on a probe text: ${(e as Error)?.message ?? String(e)}`);
  }
}

function parseObject(file: string, text: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, `invalid JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new FormatError(file, 'expected a JSON object');
  return v as Json;
}

function readOptional(file: string): Json {
  return existsSync(file) ? parseObject(file, readFileSync(file, 'utf8')) : {};
}

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
