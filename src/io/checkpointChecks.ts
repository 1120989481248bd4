/**
 * What every checkpoint must satisfy before anything runs, whatever its format: the tensors the
 * config implies, with those shapes and a float dtype, and nothing the engine would silently ignore
 * (biases, layers past num_hidden_layers, unknown tensors); a tokenizer whose ids the embedding
 * covers. Each failure is a FormatError naming the file. Nothing here loops over a count a header
 * merely claims: layers are checked one by one and the first missing one ends the check.
 */
import { FormatError } from '../errors.js';
import type { LlamaConfig } from './config.js';
import type { DType } from '../tensor/dtype.js';
import { fileOf, LAYER_PARTS, NAMES, type TensorInfo, type TensorSource } from './source.js';
import type { Tokenizer } from './tokenizer.js';

/** Dtypes a weight may be stored in; integers are codes or flags, never weights (GPTQ codes are listed as their float weight). */
const FLOAT_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'f64'];
const LAYER_TENSOR = /^model\.layers\.(\d+)\.(.+)$/;
const LAYER_WEIGHTS = new Set(LAYER_PARTS.map((p) => `${p}.weight`));
/** Buffers older transformers saved with the weights; recomputed from the config, so ignored. */
const IGNORED = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;
const GLOBAL_WEIGHTS: ReadonlySet<string> = new Set([NAMES.embed, NAMES.finalNorm, NAMES.lmHead]);

/** Every tensor of `w` is one the engine runs, and every tensor `c` implies is there with its shape. */
export function checkWeights(w: TensorSource, c: LlamaConfig): void {
  const fail = (msg: string, name?: string): never => { throw new FormatError(name === undefined ? w.path : fileOf(w, name), msg); };
  const infos = new Map<string, TensorInfo>();
  let layersHeld = 0;
  for (const t of w.list()) {
    infos.set(t.name, t);
    if (IGNORED.test(t.name)) continue;
    const m = LAYER_TENSOR.exec(t.name);
    if (m ? !LAYER_WEIGHTS.has(m[2]!) : !GLOBAL_WEIGHTS.has(t.name)) fail(unsupported(t.name), t.name);
    if (m) {
      const layer = Number(m[1]);
      if (layer >= c.numLayers) fail(`tensor "${t.name}" belongs to layer ${layer}, but the config has ${c.numLayers} layers (num_hidden_layers / block_count); refusing to drop it`, t.name);
      layersHeld = Math.max(layersHeld, layer + 1);
    }
    if (!FLOAT_DTYPES.includes(t.dtype)) fail(`tensor "${t.name}" is stored as ${t.storedAs}; a weight must be floating point (F32, F16, BF16)`, t.name);
  }
  const expect = (name: string, shape: number[], required = true): void => {
    const t = infos.get(name);
    if (!t) {
      if (!required) return;
      fail(`tensor "${name}" is missing` + (name.startsWith('model.layers.') ? ` (the config has ${c.numLayers} layers, the file holds ${layersHeld})` : ''));
      return;
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      fail(`tensor "${name}" has shape [${t.shape.join(', ')}], the config implies [${shape.join(', ')}]`, name);
    }
  };
  const D = c.hiddenSize, F = c.intermediateSize, qDim = c.numHeads * c.headDim, kvDim = c.numKvHeads * c.headDim;
  expect(NAMES.embed, [c.vocabSize, D]);
  expect(NAMES.finalNorm, [D]);
  expect(NAMES.lmHead, [c.vocabSize, D], !c.tieWordEmbeddings);
  const shapes: Record<(typeof LAYER_PARTS)[number], number[]> = {
    input_layernorm: [D], post_attention_layernorm: [D],
    'self_attn.q_proj': [qDim, D], 'self_attn.k_proj': [kvDim, D], 'self_attn.v_proj': [kvDim, D], 'self_attn.o_proj': [D, qDim],
    'mlp.gate_proj': [F, D], 'mlp.up_proj': [F, D], 'mlp.down_proj': [D, F],
  };
  // layer by layer: a claimed count beyond what the file holds stops at the first missing tensor
  for (let l = 0; l < c.numLayers; l++) for (const p of LAYER_PARTS) expect(NAMES.layer(l, p), shapes[p]);
}

function unsupported(name: string): string {
  return name.endsWith('.bias')
    ? `tensor "${name}" is a bias; lowbit's LLaMA blocks have none, so it would be ignored`
    : `tensor "${name}" is not part of a LLaMA checkpoint lowbit can run; it would be ignored`;
}

/**
 * The tokenizer's ids all index rows of the embedding: its vocabulary is no larger than the model's,
 * and its BOS/EOS ids are inside it. `file` is the tokenizer's file, named in the error.
 */
export function checkTokenizerFits(file: string, tok: Tokenizer, c: LlamaConfig): void {
  if (tok.vocabSize > c.vocabSize) {
    throw new FormatError(file, `the tokenizer's ids go up to ${tok.vocabSize - 1}, beyond the model's ${c.vocabSize} embedding rows`);
  }
  for (const [what, id] of [['BOS', tok.bosId], ['EOS', tok.eosId]] as const) {
    if (id !== undefined && !(Number.isSafeInteger(id) && id >= 0 && id < c.vocabSize)) {
      throw new FormatError(file, `${what} token id ${id} is outside the model's ${c.vocabSize} embedding rows`);
    }
  }
}
