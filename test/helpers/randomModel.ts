import { Tensor } from '../../src/tensor/tensor.js';
import { MemorySource } from '../../src/io/memorySource.js';
import { NAMES, LAYER_PARTS } from '../../src/io/source.js';
import type { LlamaConfig } from '../../src/io/config.js';
import type { ModelCheckpoint } from '../../src/io/checkpoint.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { mulberry32 } from '../../src/tensor/mulberry32.js';

/** Deterministic uniform(-1, 1) numbers (mulberry32). */
export function rng(seed: number): () => number {
  const u = mulberry32(seed);
  return () => u() * 2 - 1;
}

/** A byte-level toy tokenizer (ids = UTF-16 code units mod vocab), enough for plumbing tests. */
export function toyTokenizer(vocab: number): Tokenizer {
  return {
    kind: 'toy', description: `toy (${vocab})`, vocabSize: vocab, bosId: 1, eosId: 2,
    encode: (text, { bos }) => [...(bos ? [1] : []), ...[...text].map((c) => 3 + (c.charCodeAt(0) % (vocab - 3)))],
    decode: (ids) => ids.map((i) => String.fromCharCode(i)).join(''),
  };
}

export const SMALL_GQA_LLAMA3: LlamaConfig = Object.freeze({
  hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8, vocabSize: 61,
  rmsNormEps: 1e-5, ropeTheta: 500000,
  ropeScaling: { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 },
  maxPositionEmbeddings: 128, tieWordEmbeddings: false, bosTokenId: 1, eosTokenId: 2,
});

/** Random weights of `cfg` (scaled so activations stay O(1)); dtype f32, or bf16 to test that path. */
export function randomCheckpoint(cfg: LlamaConfig, seed = 1, dtype: 'f32' | 'bf16' = 'f32'): ModelCheckpoint {
  const r = rng(seed);
  const D = cfg.hiddenSize, qd = cfg.numHeads * cfg.headDim, kvd = cfg.numKvHeads * cfg.headDim, F = cfg.intermediateSize;
  const mk = (shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = Float32Array.from({ length: n }, () => offset + r() * scale);
    if (dtype === 'f32') return new Tensor('f32', shape, d);
    const u = new Uint32Array(d.buffer);
    return new Tensor('bf16', shape, Uint16Array.from(u, (x) => x >>> 16));
  };
  const src = new MemorySource('random-model', []);
  src.set(NAMES.embed, mk([cfg.vocabSize, D], 1));
  src.set(NAMES.finalNorm, mk([D], 0.2, 1));
  if (!cfg.tieWordEmbeddings) src.set(NAMES.lmHead, mk([cfg.vocabSize, D], 0.3));
  const shapes: Record<string, number[]> = {
    input_layernorm: [D], post_attention_layernorm: [D],
    'self_attn.q_proj': [qd, D], 'self_attn.k_proj': [kvd, D], 'self_attn.v_proj': [kvd, D], 'self_attn.o_proj': [D, qd],
    'mlp.gate_proj': [F, D], 'mlp.up_proj': [F, D], 'mlp.down_proj': [D, F],
  };
  for (let i = 0; i < cfg.numLayers; i++) {
    for (const part of LAYER_PARTS) {
      const shape = shapes[part]!;
      src.set(NAMES.layer(i, part), shape.length === 1 ? mk(shape, 0.2, 1) : mk(shape, 1 / Math.sqrt(shape[1]!)));
    }
  }
  return { path: 'random-model', format: 'hf', config: cfg, tokenizer: toyTokenizer(cfg.vocabSize), weights: src };
}
