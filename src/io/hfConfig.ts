/** Hugging Face `config.json` (LlamaForCausalLM) to LlamaConfig. Defaults are HF LlamaConfig's. */
import { readFileSync } from 'node:fs';
import { FormatError } from '../errors.js';
import type { Llama3RopeScaling, LlamaConfig } from './config.js';
import { checkLlamaConfig } from './configChecks.js';

type Json = Record<string, unknown>;

export function readHfConfig(path: string): LlamaConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new FormatError(path, 'cannot read file');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FormatError(path, `not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FormatError(path, 'not a JSON object');
  return parseHfConfig(path, json as Json);
}

/** `path` is only used in messages. */
export function parseHfConfig(path: string, c: Json): LlamaConfig {
  const fail = (msg: string): never => { throw new FormatError(path, msg); };
  const archs = Array.isArray(c.architectures) ? c.architectures : [];
  const llamaArch = archs.length ? archs.includes('LlamaForCausalLM') : c.model_type === 'llama';
  if (!llamaArch || (c.model_type !== undefined && c.model_type !== 'llama')) {
    fail(`unsupported architecture ${JSON.stringify(archs[0] ?? c.model_type ?? null)} (lowbit reads LlamaForCausalLM / model_type "llama")`);
  }
  const int = (key: string, dflt?: number): number => {
    const v = c[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) return fail(`"${key}" must be a positive integer, got ${JSON.stringify(v ?? null)}`);
    return v;
  };
  const num = (key: string, dflt: number): number => {
    const v = c[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return fail(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const tokenId = (key: string): number | undefined => {
    const v = c[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
    // LLaMA-3 instruct lists several EOS ids; the first is the model's own end token.
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) return v[0] as number;
    return fail(`"${key}" must be a token id, got ${JSON.stringify(v)}`);
  };

  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) fail(`num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  const headDim = c.head_dim === undefined || c.head_dim === null ? hiddenSize / numHeads : int('head_dim');
  if (!Number.isInteger(headDim)) fail(`hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads}`);
  if (c.tie_word_embeddings !== undefined && typeof c.tie_word_embeddings !== 'boolean') fail('"tie_word_embeddings" must be true or false');
  unsupportedFeatures(path, c);

  return checkLlamaConfig(path, Object.freeze({
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int('vocab_size'),
    rmsNormEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 10000),
    ropeScaling: ropeScaling(path, c.rope_scaling),
    maxPositionEmbeddings: int('max_position_embeddings', 2048),
    tieWordEmbeddings: c.tie_word_embeddings === true,
    bosTokenId: tokenId('bos_token_id'),
    eosTokenId: tokenId('eos_token_id'),
  }));
}

/** SiLU under either of its names in transformers' ACT2FN. */
const SILU = ['silu', 'swish'];

/**
 * LlamaForCausalLM options that change the computation and that the engine does not implement:
 * refused, so that a model is never evaluated as something it is not.
 */
function unsupportedFeatures(path: string, c: Json): void {
  const fail = (msg: string): never => { throw new FormatError(path, msg); };
  if (c.hidden_act !== undefined && !SILU.includes(c.hidden_act as string)) {
    fail(`"hidden_act" ${JSON.stringify(c.hidden_act)} is not supported (lowbit's MLP is SwiGLU: "silu")`);
  }
  for (const key of ['attention_bias', 'mlp_bias']) {
    const v = c[key];
    if (v === undefined || v === null || v === false) continue;
    fail(v === true ? `"${key}": true is not supported (lowbit's LLaMA blocks have no biases)` : `"${key}" must be true or false, got ${JSON.stringify(v)}`);
  }
}

function ropeScaling(path: string, raw: unknown): Llama3RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new FormatError(path, '"rope_scaling" must be an object or null');
  const r = raw as Json;
  const type = r.rope_type ?? r.type;
  if (type === 'default') return null;
  if (type !== 'llama3') throw new FormatError(path, `rope_scaling type ${JSON.stringify(type ?? null)} is not supported (only "llama3")`);
  const field = (key: string): number => {
    const v = r[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new FormatError(path, `rope_scaling.${key} must be a positive number, got ${JSON.stringify(v ?? null)}`);
    return v;
  };
  return Object.freeze({
    type: 'llama3',
    factor: field('factor'),
    lowFreqFactor: field('low_freq_factor'),
    highFreqFactor: field('high_freq_factor'),
    originalMaxPositionEmbeddings: field('original_max_position_embeddings'),
  });
}
