import { Tensor } from '../src/tensor/tensor.js';
import { NAMES, LAYER_PARTS, type TensorInfo, type TensorSource } from '../src/io/source.js';
import { checkRowRange } from '../src/io/rows.js';
import type { LlamaConfig } from '../src/io/config.js';
import type { ModelCheckpoint } from '../src/io/checkpoint.js';
import type { Tokenizer } from '../src/io/tokenizer.js';

/**
 * A random bf16 checkpoint of any LLaMA shape whose tensors are generated when read, so that
 * benchmarks of block streaming measure what streaming keeps resident, not a preloaded model.
 */
export class LazyRandomSource implements TensorSource {
  readonly path: string;
  private readonly infos: TensorInfo[] = [];
  constructor(cfg: LlamaConfig, private readonly seed = 1) {
    this.path = `random-${cfg.hiddenSize}x${cfg.numLayers}`;
    const D = cfg.hiddenSize, qd = cfg.numHeads * cfg.headDim, kvd = cfg.numKvHeads * cfg.headDim, F = cfg.intermediateSize;
    const add = (name: string, shape: number[]) => this.infos.push({ name, dtype: 'bf16', shape, storedAs: 'BF16' });
    add(NAMES.embed, [cfg.vocabSize, D]);
    add(NAMES.finalNorm, [D]);
    if (!cfg.tieWordEmbeddings) add(NAMES.lmHead, [cfg.vocabSize, D]);
    const shapes: Record<string, number[]> = {
      input_layernorm: [D], post_attention_layernorm: [D], 'self_attn.q_proj': [qd, D], 'self_attn.k_proj': [kvd, D],
      'self_attn.v_proj': [kvd, D], 'self_attn.o_proj': [D, qd], 'mlp.gate_proj': [F, D], 'mlp.up_proj': [F, D], 'mlp.down_proj': [D, F],
    };
    for (let i = 0; i < cfg.numLayers; i++) for (const p of LAYER_PARTS) add(NAMES.layer(i, p), shapes[p]!);
  }
  list(): readonly TensorInfo[] { return this.infos; }
  has(name: string): boolean { return this.infos.some((i) => i.name === name); }
  private info(name: string): TensorInfo {
    const info = this.infos.find((i) => i.name === name);
    if (!info) throw new Error(`${this.path}: no tensor named "${name}"`);
    return info;
  }
  read(name: string): Tensor {
    return this.readRows(name, 0, this.info(name).shape[0]!);
  }
  /**
   * Rows [start, start + count): the values of row r are a function of (seed, name, r) alone, so
   * any rows can be generated without the others (and equal the same rows of `read`).
   */
  readRows(name: string, start: number, count: number): Tensor {
    const info = this.info(name);
    checkRowRange(this.path, name, info.shape, start, count);
    const isNorm = info.shape.length === 1;
    const cols = isNorm ? 1 : info.shape[1]!;
    const scale = isNorm ? 0 : 1 / Math.sqrt(cols);
    let h = 0x811c9dc5 ^ this.seed; // FNV-1a of the name
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    const out = new Uint16Array(count * cols);
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    for (let r = 0; r < count; r++) {
      let s = mix32(h ^ Math.imul(start + r + 1, 0x9e3779b1));
      const o = r * cols;
      for (let i = 0; i < cols; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        f[0] = isNorm ? 1 : ((s / 4294967296) * 2 - 1) * scale * 1.7;
        out[o + i] = u[0]! >>> 16;
      }
    }
    return new Tensor('bf16', [count, ...info.shape.slice(1)], out);
  }
}

/** murmur3's 32-bit finalizer: decorrelates the per-row seeds. */
function mix32(x: number): number {
  x ^= x >>> 16; x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13; x = Math.imul(x, 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

export const LLAMA3_8B_2BLOCKS: LlamaConfig = Object.freeze({
  hiddenSize: 4096, intermediateSize: 14336, numLayers: 2, numHeads: 32, numKvHeads: 8, headDim: 128, vocabSize: 128256,
  rmsNormEps: 1e-5, ropeTheta: 500000,
  ropeScaling: { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
  maxPositionEmbeddings: 8192, tieWordEmbeddings: false, bosTokenId: 128000, eosTokenId: 128001,
});

const rawTokenizer: Tokenizer = {
  kind: 'none', description: 'none (random token ids)', vocabSize: 128256, bosId: 128000, eosId: 128001,
  encode: () => { throw new Error('the random benchmark model has no tokenizer'); },
  decode: (ids) => ids.join(' '),
};

export function randomLlama3Blocks(blocks = 2): ModelCheckpoint {
  const config = blocks === 2 ? LLAMA3_8B_2BLOCKS : Object.freeze({ ...LLAMA3_8B_2BLOCKS, numLayers: blocks });
  return { path: `random LLaMA-3-8B block shapes, ${blocks} block${blocks === 1 ? '' : 's'}, bf16`, format: 'hf', config, tokenizer: rawTokenizer, weights: new LazyRandomSource(config) };
}
