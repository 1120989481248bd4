import type { Backend, BTensor } from '../backend/backend.js';
import type { ModelCheckpoint } from './checkpoint.js';
import { blockForward, type KvState } from './block.js';
import { ropeFor } from './stream.js';
import { loadBlock, loadEmbedding, loadHead, type BlockWeights } from './weights.js';

/** Keys/values of every block for positions 0..length-1. Immutable: extending makes a new cache. */
export interface KvCache { readonly length: number; readonly layers: readonly KvState[] }

/**
 * A LLaMA model with all blocks resident, for work that needs random access to positions:
 * greedy generation and multiple-choice scoring with a shared-context KV cache.
 * (Perplexity and calibration stream blocks instead: see stream.ts.)
 */
export class LlamaModel {
  private constructor(
    readonly ckpt: ModelCheckpoint, readonly be: Backend,
    private readonly embed: BTensor, private readonly blocks: BlockWeights[],
    private readonly norm: BTensor, private readonly head: BTensor,
  ) {}

  static load(ckpt: ModelCheckpoint, be: Backend): LlamaModel {
    const embed = loadEmbedding(ckpt, be);
    const blocks = Array.from({ length: ckpt.config.numLayers }, (_, i) => loadBlock(ckpt, be, i));
    const { norm, head } = loadHead(ckpt, be, embed);
    return new LlamaModel(ckpt, be, embed, blocks, norm, head);
  }

  get config() { return this.ckpt.config; }

  /** Runs `ids` after the cached positions; returns final-normed hidden rows [T, D] and the extended cache. */
  forwardHidden(ids: Int32Array, cache?: KvCache): { hidden: BTensor; cache: KvCache } {
    const offset = cache?.length ?? 0;
    const rope = ropeFor(this.ckpt, this.be, offset, ids.length);
    let x = this.be.embedding(this.embed, ids);
    const layers: KvState[] = [];
    this.blocks.forEach((w, i) => {
      const r = blockForward(this.be, this.config, w, x, rope, offset, cache?.layers[i]);
      x = r.out;
      layers.push(r.kv);
    });
    return { hidden: this.be.rmsnorm(x, this.norm, this.config.rmsNormEps), cache: { length: offset + ids.length, layers } };
  }

  /** Logits [T, vocab] for `ids` after the cache. */
  forward(ids: Int32Array, cache?: KvCache): { logits: BTensor; cache: KvCache } {
    const { hidden, cache: next } = this.forwardHidden(ids, cache);
    return { logits: this.be.linear(hidden, this.head), cache: next };
  }

  /** Greedy decoding: `steps` new tokens after `prompt` (stops early at EOS when stopAtEos). */
  async generate(prompt: number[], steps: number, opts: { stopAtEos?: boolean } = {}): Promise<number[]> {
    if (prompt.length === 0) throw new RangeError('generate: the prompt has no tokens');
    const out: number[] = [];
    let { logits, cache } = this.forward(Int32Array.from(prompt));
    const V = this.config.vocabSize;
    for (let s = 0; s < steps; s++) {
      const all = await this.be.read(logits);
      const last = all.subarray(all.length - V);
      let best = 0;
      for (let i = 1; i < V; i++) if (last[i]! > last[best]!) best = i;
      out.push(best);
      if (opts.stopAtEos && best === this.config.eosTokenId) break;
      if (prompt.length + out.length >= this.config.maxPositionEmbeddings) break;
      ({ logits, cache } = this.forward(Int32Array.of(best), cache));
    }
    return out;
  }
}
