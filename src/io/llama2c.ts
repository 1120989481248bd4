/**
 * llama2.c legacy checkpoints (export.py `legacy_export`, read by run.c): 7 int32
 * (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
 * means the classifier is stored separately), then float32 arrays in this order:
 *   token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim],
 *   wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim],
 *   w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim],
 *   freq_cis_real [seq_len, head_size/2], freq_cis_imag [same], then wcls [vocab, dim] if unshared.
 * q/k rows are in Meta's adjacent-pair RoPE order; we return them in HF rotate-half order.
 */
import { FormatError, UsageError } from '../errors.js';
import type { LlamaConfig } from './config.js';
import { Tensor } from '../tensor/tensor.js';
import { fileSize, readAt } from './fileBytes.js';
import { pairsToHalves } from './qkPermute.js';
import { LAYER_PARTS, NAMES, type LayerPart, type TensorInfo, type TensorSource } from './source.js';
import { checkRowRange, rotateHalfRows, rowElements } from './rows.js';
import { checkLlamaConfig } from './configChecks.js';

const LLAMA2C_HEADER_BYTES = 28;

export interface Llama2cHeader {
  readonly dim: number;
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly vocabSize: number;
  readonly seqLen: number;
  readonly sharedClassifier: boolean;
}

interface Entry extends TensorInfo {
  readonly start: number;
}

function readHeader(path: string, size: number): Llama2cHeader {
  if (size < LLAMA2C_HEADER_BYTES) throw new FormatError(path, `truncated: ${size} bytes, a llama2.c checkpoint starts with a ${LLAMA2C_HEADER_BYTES}-byte header`);
  const v = new DataView(readAt(path, 0, LLAMA2C_HEADER_BYTES, 'header').buffer);
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = Array.from({ length: 7 }, (_, i) => v.getInt32(4 * i, true)) as number[];
  const fields = { dim, hidden_dim: hiddenDim, n_layers: nLayers, n_heads: nHeads, n_kv_heads: nKvHeads, seq_len: seqLen };
  for (const [k, x] of Object.entries(fields)) if (!(x! > 0)) throw new FormatError(path, `header field ${k} = ${x} must be positive (not a llama2.c checkpoint?)`);
  if (vocab === 0) throw new FormatError(path, 'header field vocab_size = 0');
  if (dim! % nHeads! !== 0 || (dim! / nHeads!) % 2 !== 0) throw new FormatError(path, `dim ${dim} does not split into ${nHeads} heads of even size`);
  if (nHeads! % nKvHeads! !== 0) throw new FormatError(path, `n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  return Object.freeze({
    dim: dim!, hiddenDim: hiddenDim!, nLayers: nLayers!, nHeads: nHeads!, nKvHeads: nKvHeads!,
    vocabSize: Math.abs(vocab!), seqLen: seqLen!, sharedClassifier: vocab! > 0,
  });
}

export class Llama2cSource implements TensorSource {
  readonly header: Llama2cHeader;
  private readonly entries = new Map<string, Entry>();

  constructor(readonly path: string) {
    const size = fileSize(path);
    const h = (this.header = readHeader(path, size));
    const headSize = h.dim / h.nHeads;
    const kvDim = headSize * h.nKvHeads;
    // the size the header implies, checked before any per-layer bookkeeping (a hostile n_layers must not loop)
    const perLayerFloats = 2 * h.dim + 2 * h.dim * h.dim + 2 * kvDim * h.dim + 3 * h.hiddenDim * h.dim;
    const implied = LLAMA2C_HEADER_BYTES + 4 * (h.vocabSize * h.dim * (h.sharedClassifier ? 1 : 2) + h.nLayers * perLayerFloats + h.dim + h.seqLen * headSize);
    if (implied !== size) {
      throw new FormatError(path, `file has ${size} bytes, but the header (dim ${h.dim}, hidden ${h.hiddenDim}, ${h.nLayers} layers, ` +
        `${h.nHeads}/${h.nKvHeads} heads, vocab ${h.sharedClassifier ? '' : '-'}${h.vocabSize}, seq ${h.seqLen}) implies ${implied}`);
    }
    let at = LLAMA2C_HEADER_BYTES;
    const add = (name: string, shape: number[]): void => {
      this.entries.set(name, Object.freeze({ name, dtype: 'f32', shape: Object.freeze(shape), storedAs: 'F32', start: at }));
      at += 4 * shape.reduce((a, b) => a * b, 1);
    };
    const perLayer = (part: LayerPart, shape: number[]): void => {
      for (let l = 0; l < h.nLayers; l++) add(NAMES.layer(l, part), shape);
    };
    add(NAMES.embed, [h.vocabSize, h.dim]);
    perLayer('input_layernorm', [h.dim]);
    perLayer('self_attn.q_proj', [h.dim, h.dim]);
    perLayer('self_attn.k_proj', [kvDim, h.dim]);
    perLayer('self_attn.v_proj', [kvDim, h.dim]);
    perLayer('self_attn.o_proj', [h.dim, h.dim]);
    perLayer('post_attention_layernorm', [h.dim]);
    perLayer('mlp.gate_proj', [h.hiddenDim, h.dim]);
    perLayer('mlp.down_proj', [h.dim, h.hiddenDim]);
    perLayer('mlp.up_proj', [h.hiddenDim, h.dim]);
    add(NAMES.finalNorm, [h.dim]);
    at += 2 * 4 * h.seqLen * (headSize / 2); // freq_cis_real, freq_cis_imag: unused
    if (!h.sharedClassifier) add(NAMES.lmHead, [h.vocabSize, h.dim]);
    if (at !== size) {
      throw new FormatError(path, `file has ${size} bytes, but the header (dim ${h.dim}, hidden ${h.hiddenDim}, ${h.nLayers} layers, ` +
        `${h.nHeads}/${h.nKvHeads} heads, vocab ${h.sharedClassifier ? '' : '-'}${h.vocabSize}, seq ${h.seqLen}) implies ${at}`);
    }
  }

  /** Canonical order: embed, then per layer LAYER_PARTS, final norm, head. */
  list(): readonly TensorInfo[] {
    const names: string[] = [NAMES.embed];
    for (let l = 0; l < this.header.nLayers; l++) for (const p of LAYER_PARTS) names.push(NAMES.layer(l, p));
    names.push(NAMES.finalNorm);
    if (this.entries.has(NAMES.lmHead)) names.push(NAMES.lmHead);
    return names.map((n) => {
      const { name, dtype, shape, storedAs } = this.entries.get(n)!;
      return { name, dtype, shape, storedAs };
    });
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  read(name: string): Tensor {
    const e = this.entries.get(name);
    if (!e) throw new UsageError(`${this.path}: no tensor named "${name}"`);
    const n = e.shape.reduce((a, b) => a * b, 1);
    let data = new Float32Array(readAt(this.path, e.start, 4 * n, `tensor "${name}"`).buffer);
    const heads = name.endsWith('.self_attn.q_proj.weight') ? this.header.nHeads
      : name.endsWith('.self_attn.k_proj.weight') ? this.header.nKvHeads : 0;
    if (heads > 0) data = pairsToHalves(data, e.shape[0]!, e.shape[1]!, heads);
    return new Tensor('f32', e.shape, data);
  }

  /** Rows [start, start + count) along the first dimension, reading only their bytes (q/k: the heads holding them). */
  readRows(name: string, start: number, count: number): Tensor {
    const e = this.entries.get(name);
    if (!e) throw new UsageError(`${this.path}: no tensor named "${name}"`);
    checkRowRange(this.path, name, e.shape, start, count);
    const cols = rowElements(e.shape);
    const stored = (first: number, n: number) =>
      new Float32Array(readAt(this.path, e.start + 4 * first * cols, 4 * n * cols, `tensor "${name}" rows [${first}, ${first + n})`).buffer);
    const heads = name.endsWith('.self_attn.q_proj.weight') ? this.header.nHeads
      : name.endsWith('.self_attn.k_proj.weight') ? this.header.nKvHeads : 0;
    const data = heads > 0 ? rotateHalfRows(e.shape[0]!, cols, heads, start, count, stored) : stored(start, count);
    return new Tensor('f32', [count, ...e.shape.slice(1)], data);
  }

  config(): LlamaConfig {
    const h = this.header;
    return checkLlamaConfig(this.path, Object.freeze({
      hiddenSize: h.dim,
      intermediateSize: h.hiddenDim,
      numLayers: h.nLayers,
      numHeads: h.nHeads,
      numKvHeads: h.nKvHeads,
      headDim: h.dim / h.nHeads,
      vocabSize: h.vocabSize,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: null,
      maxPositionEmbeddings: h.seqLen,
      tieWordEmbeddings: h.sharedClassifier,
      // llama2.c's run.c: BOS 1, EOS 2 (SentencePiece LLaMA convention)
      bosTokenId: h.vocabSize > 1 ? 1 : undefined,
      eosTokenId: h.vocabSize > 2 ? 2 : undefined,
    }));
  }
}
