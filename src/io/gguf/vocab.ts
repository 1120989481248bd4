/**
 * `tokenizer.ggml.*` metadata for an export, as llama.cpp's convert_hf_to_gguf.py writes it:
 *   - an HF tokenizer.json holding a LLaMA-style BPE (model BPE with byte_fallback, a Sequence decoder):
 *     gguf-py's LlamaHfVocab: tokenizer.ggml.model "llama", pre "default", the vocabulary in id order,
 *     every score −1000, type BYTE for `<0xNN>`, CONTROL for special ids, else NORMAL (added tokens
 *     beyond the base vocabulary: USER_DEFINED unless special); then SpecialVocab: bos/eos/unk/padding
 *     ids and add_bos_token/add_eos_token from tokenizer_config.json. (The bundled TinyStories-656K
 *     f16 GGUF, converted by llama.cpp, holds exactly these values.)
 *   - a .gguf: its own tokenizer.ggml.* keys, carried over.
 * Anything else (byte-level "gpt2" BPE needs llama.cpp's pre-tokenizer hash table) is refused, naming the file.
 */
import { existsSync } from 'node:fs';
import { extname, join } from 'node:path';
import { UsageError } from '../../errors.js';
import { readJsonObject } from '../quantized/reader.js';
import type { GgufKv } from './write.js';
import { readGgufHeader } from './parse.js';
import { GgufValueType } from './types.js';

/** llama.cpp's llama_token_type (gguf-py TokenType). */
export enum GgufTokenType { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 }
const SCORE = -1000;

const str = (key: string, value: string): GgufKv => ({ key, type: GgufValueType.STRING, value });
const u32 = (key: string, value: number): GgufKv => ({ key, type: GgufValueType.UINT32, value });
const bool = (key: string, value: boolean): GgufKv => ({ key, type: GgufValueType.BOOL, value });

/** The vocabulary metadata of the tokenizer at `path` (a folder with tokenizer.json, or a .gguf). */
export function ggufVocabKvs(path: string, vocabSize: number): GgufKv[] {
  if (extname(path) === '.gguf') return carriedOver(path);
  const file = join(path, 'tokenizer.json');
  if (!existsSync(file)) throw new UsageError(`${path}: no tokenizer.json; GGUF export embeds an HF LLaMA BPE tokenizer.json or a GGUF vocabulary`);
  return llamaHfVocab(path, file, vocabSize);
}

function llamaHfVocab(dir: string, file: string, vocabSize: number): GgufKv[] {
  const tj = readJsonObject(file);
  const model = tj.model as Record<string, unknown> | undefined;
  const decoder = tj.decoder as Record<string, unknown> | undefined;
  if (model?.type !== 'BPE' || model.byte_fallback !== true || decoder?.type !== 'Sequence') {
    throw new UsageError(`${file}: not a LLaMA-style BPE tokenizer (model BPE with byte_fallback, Sequence decoder); ` +
      'GGUF export writes only tokenizer.ggml.model "llama" vocabularies (byte-level "gpt2" BPE needs llama.cpp\'s pre-tokenizer table)');
  }
  const vocab = model.vocab as Record<string, number>;
  const added = (Array.isArray(tj.added_tokens) ? tj.added_tokens : []) as { id: number; content: string; special?: boolean }[];
  const byId = new Map<number, string>();
  for (const [tok, id] of Object.entries(vocab)) byId.set(id, tok);
  const base = byId.size;
  for (const a of added) if (!byId.has(a.id)) byId.set(a.id, a.content);
  const n = byId.size;
  if (n !== vocabSize) throw new UsageError(`${file}: ${n} tokens, but the model's vocab_size is ${vocabSize}`);

  const cfgFile = join(dir, 'tokenizer_config.json');
  const cfg = existsSync(cfgFile) ? readJsonObject(cfgFile) : {};
  const idOf = (v: unknown): number | undefined => {
    const s = typeof v === 'string' ? v : typeof v === 'object' && v !== null ? (v as { content?: unknown }).content : undefined;
    if (typeof s !== 'string') return undefined;
    return added.find((a) => a.content === s)?.id ?? vocab[s];
  };
  const bos = idOf(cfg.bos_token), eos = idOf(cfg.eos_token), unk = idOf(cfg.unk_token), pad = idOf(cfg.pad_token);
  const special = new Set<number>(added.filter((a) => a.special).map((a) => a.id));
  for (const id of [bos, eos, unk, pad]) if (id !== undefined) special.add(id);

  const tokens: string[] = [], types: number[] = [];
  for (let id = 0; id < n; id++) {
    const t = byId.get(id);
    if (t === undefined) throw new UsageError(`${file}: token ids are not contiguous (no token ${id} of ${n})`);
    tokens.push(t);
    types.push(/^<0x[0-9A-Fa-f]{2}>$/.test(t) ? GgufTokenType.BYTE
      : special.has(id) ? GgufTokenType.CONTROL
      : id >= base ? GgufTokenType.USER_DEFINED : GgufTokenType.NORMAL);
  }
  const kvs: GgufKv[] = [
    str('tokenizer.ggml.model', 'llama'),
    str('tokenizer.ggml.pre', 'default'),
    { key: 'tokenizer.ggml.tokens', type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: tokens },
    { key: 'tokenizer.ggml.scores', type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value: tokens.map(() => SCORE) },
    { key: 'tokenizer.ggml.token_type', type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: types },
  ];
  if (bos !== undefined) kvs.push(u32('tokenizer.ggml.bos_token_id', bos));
  if (eos !== undefined) kvs.push(u32('tokenizer.ggml.eos_token_id', eos));
  if (unk !== undefined) kvs.push(u32('tokenizer.ggml.unknown_token_id', unk));
  if (pad !== undefined) kvs.push(u32('tokenizer.ggml.padding_token_id', pad));
  if (typeof cfg.add_bos_token === 'boolean') kvs.push(bool('tokenizer.ggml.add_bos_token', cfg.add_bos_token));
  if (typeof cfg.add_eos_token === 'boolean') kvs.push(bool('tokenizer.ggml.add_eos_token', cfg.add_eos_token));
  return kvs;
}

/** The tokenizer.ggml.* keys of a GGUF file, with the value types llama.cpp reads them as. */
function carriedOver(file: string): GgufKv[] {
  const h = readGgufHeader(file);
  const out: GgufKv[] = [];
  for (const [key, v] of h.metadata) {
    if (!key.startsWith('tokenizer.ggml.')) continue;
    if (typeof v === 'string') out.push(str(key, v));
    else if (typeof v === 'boolean') out.push(bool(key, v));
    else if (typeof v === 'number' && Number.isInteger(v) && v >= 0) out.push(u32(key, v));
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out.push({ key, type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: v as string[] });
    else if (Array.isArray(v) && key === 'tokenizer.ggml.token_type') out.push({ key, type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: v as number[] });
    else if (Array.isArray(v) && key === 'tokenizer.ggml.scores') out.push({ key, type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value: v as number[] });
    else throw new UsageError(`${file}: metadata "${key}" has a value the GGUF export does not carry over`);
  }
  return out;
}
