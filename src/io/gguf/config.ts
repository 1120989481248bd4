/** LlamaConfig and the SentencePiece vocabulary from GGUF metadata (`llama.*`, `tokenizer.ggml.*`). */
import { FormatError } from '../../errors.js';
import type { LlamaConfig } from '../config.js';
import { checkLlamaConfig } from '../configChecks.js';
import { SpmTokenType } from '../tokenizers/spm.js';
import type { GgufHeader, GgufValue } from './types.js';

function get(h: GgufHeader, key: string): GgufValue | undefined {
  return h.metadata.get(key);
}

function int(h: GgufHeader, key: string, dflt?: number): number {
  const v = get(h, key) ?? dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new FormatError(h.path, `metadata "${key}" must be a positive integer, got ${v === undefined ? 'nothing' : String(v)}`);
  }
  return v;
}

function num(h: GgufHeader, key: string, dflt?: number): number {
  const v = get(h, key) ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new FormatError(h.path, `metadata "${key}" must be a positive number, got ${v === undefined ? 'nothing' : String(v)}`);
  }
  return v;
}

/**
 * GGUF stores eps and rope base as float32; report the shortest decimal that is the same float32
 * (1e-6, not 9.99999997e-7), so configs agree with config.json's across formats.
 */
function shortestF32(x: number): number {
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const y = Number(f.toPrecision(p));
    if (Math.fround(y) === f) return y;
  }
  return f;
}

function optionalId(h: GgufHeader, key: string): number | undefined {
  const v = get(h, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new FormatError(h.path, `metadata "${key}" must be a token id, got ${String(v)}`);
  return v;
}

function ggufArchitecture(h: GgufHeader): string {
  const arch = get(h, 'general.architecture');
  if (typeof arch !== 'string') throw new FormatError(h.path, 'metadata "general.architecture" is missing');
  return arch;
}

export function ggufConfig(h: GgufHeader): LlamaConfig {
  const arch = ggufArchitecture(h);
  if (arch !== 'llama') throw new FormatError(h.path, `general.architecture is "${arch}"; lowbit reads "llama" GGUFs`);
  if (h.tensors.some((t) => t.name === 'rope_freqs.weight') || get(h, 'llama.rope.scaling.type') !== undefined) {
    throw new FormatError(h.path, 'RoPE scaling (rope_freqs / llama.rope.scaling.*) is not supported for GGUF; use the HF checkpoint');
  }
  const hiddenSize = int(h, 'llama.embedding_length');
  const numHeads = int(h, 'llama.attention.head_count');
  const numKvHeads = int(h, 'llama.attention.head_count_kv', numHeads);
  if (numHeads % numKvHeads !== 0) throw new FormatError(h.path, `head_count ${numHeads} is not a multiple of head_count_kv ${numKvHeads}`);
  const headDim = get(h, 'llama.attention.key_length') !== undefined ? int(h, 'llama.attention.key_length') : hiddenSize / numHeads;
  if (!Number.isInteger(headDim)) throw new FormatError(h.path, `embedding_length ${hiddenSize} is not a multiple of head_count ${numHeads}`);
  const ropeDim = get(h, 'llama.rope.dimension_count');
  if (ropeDim !== undefined && ropeDim !== headDim) throw new FormatError(h.path, `llama.rope.dimension_count ${String(ropeDim)} differs from the head size ${headDim} (partial RoPE is not LLaMA)`);
  const tokens = get(h, 'tokenizer.ggml.tokens');
  const vocabSize = get(h, 'llama.vocab_size') !== undefined ? int(h, 'llama.vocab_size')
    : Array.isArray(tokens) ? tokens.length : int(h, 'llama.vocab_size');
  return checkLlamaConfig(h.path, Object.freeze({
    hiddenSize,
    intermediateSize: int(h, 'llama.feed_forward_length'),
    numLayers: int(h, 'llama.block_count'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    rmsNormEps: shortestF32(num(h, 'llama.attention.layer_norm_rms_epsilon')),
    ropeTheta: shortestF32(num(h, 'llama.rope.freq_base', 10000)),
    ropeScaling: null,
    maxPositionEmbeddings: int(h, 'llama.context_length'),
    tieWordEmbeddings: !h.tensors.some((t) => t.name === 'output.weight'),
    bosTokenId: optionalId(h, 'tokenizer.ggml.bos_token_id'),
    eosTokenId: optionalId(h, 'tokenizer.ggml.eos_token_id'),
  }));
}

export interface GgufVocab {
  /** tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE), ... */
  readonly model: string;
  readonly tokens: string[];
  readonly scores: number[] | undefined;
  readonly types: number[] | undefined;
  readonly merges: string[] | undefined;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** tokenizer.ggml.unknown_token_id: what a character with no piece and no byte token encodes to */
  readonly unkId: number | undefined;
  readonly addBos: boolean | undefined;
  /** tokenizer.ggml.add_space_prefix (SentencePiece add_dummy_prefix); absent in most files */
  readonly addSpacePrefix: boolean | undefined;
}

export function ggufVocab(h: GgufHeader): GgufVocab {
  const model = get(h, 'tokenizer.ggml.model');
  if (typeof model !== 'string') throw new FormatError(h.path, 'no embedded tokenizer (metadata "tokenizer.ggml.model" is missing)');
  const tokens = get(h, 'tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === 'string')) throw new FormatError(h.path, '"tokenizer.ggml.tokens" must be an array of strings');
  const numbers = (key: string): number[] | undefined => {
    const v = get(h, key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.length !== tokens.length || !v.every((x) => typeof x === 'number')) {
      throw new FormatError(h.path, `"${key}" must be ${tokens.length} numbers`);
    }
    return v;
  };
  const merges = get(h, 'tokenizer.ggml.merges');
  if (merges !== undefined && (!Array.isArray(merges) || !merges.every((m) => typeof m === 'string'))) {
    throw new FormatError(h.path, '"tokenizer.ggml.merges" must be an array of strings');
  }
  const addBos = get(h, 'tokenizer.ggml.add_bos_token');
  const addSpacePrefix = get(h, 'tokenizer.ggml.add_space_prefix');
  const id = (key: string): number | undefined => {
    const v = optionalId(h, key);
    if (v !== undefined && v >= tokens.length) throw new FormatError(h.path, `metadata "${key}" ${v} is outside the ${tokens.length} tokens of "tokenizer.ggml.tokens"`);
    return v;
  };
  const unkId = id('tokenizer.ggml.unknown_token_id');
  let types = numbers('tokenizer.ggml.token_type');
  // Converters mark <unk> as a control token; unknown_token_id says it is the unknown one. Typed so,
  // a vocabulary saved from `types` alone (a quantized checkpoint's tokenizer.spm.json) keeps it.
  if (types && unkId !== undefined && types[unkId] === SpmTokenType.Control) {
    types = types.slice();
    types[unkId] = SpmTokenType.Unknown;
  }
  return Object.freeze({
    model,
    tokens,
    scores: numbers('tokenizer.ggml.scores'),
    types,
    merges,
    bosId: id('tokenizer.ggml.bos_token_id'),
    eosId: id('tokenizer.ggml.eos_token_id'),
    unkId,
    addBos: typeof addBos === 'boolean' ? addBos : undefined,
    addSpacePrefix: typeof addSpacePrefix === 'boolean' ? addSpacePrefix : undefined,
  });
}
