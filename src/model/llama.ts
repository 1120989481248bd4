import type { Backend, BTensor } from '../backend/backend.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { blockForward, concatAllRows, type BatchSegment, type KvState, type LinearFn } from './block.js';
import { checkpointLinear } from './activation.js';
import { ropeForSegments } from './batch.js';
import { ropeFor } from './stream.js';
import { loadBlock, loadEmbedding, loadHead, type BlockWeights } from './weights.js';

/** Keys/values of every block for positions 0..length-1. Immutable: extending makes a new cache. */
export interface KvCache { readonly length: number; readonly layers: readonly KvState[] }

/** One sequence of a batched forward: `ids` run after `cache` (positions cache.length..). */
export interface BatchInput { readonly ids: Int32Array; readonly cache?: KvCache }

/** Which logits a batched forward computes: every row, each segment's last row, or none (hidden states only). */
export type BatchLogits = 'all' | 'last' | 'none';

/**
 * A batched forward with its logits packed: rows of segment s are `rowStart[s]..rowStart[s+1]-1` of `logits`
 * (for 'last', row s is segment s's last row).
 */
export interface PackedBatch { readonly logits?: BTensor; readonly rowStart: number[]; readonly caches: KvCache[] }

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
  ) {
    this.linear = blocks.map((_, i) => checkpointLinear(ckpt, be, i));
  }

  /** each block's linears' runner: activation fake-quantization and adapters when the checkpoint has them */
  private readonly linear: (LinearFn | undefined)[];

  static load(ckpt: ModelCheckpoint, be: Backend): LlamaModel {
    const embed = loadEmbedding(ckpt, be);
    const blocks = Array.from({ length: ckpt.config.numLayers }, (_, i) => loadBlock(ckpt, be, i));
    const { norm, head } = loadHead(ckpt, be, embed);
    return new LlamaModel(ckpt, be, embed, blocks, norm, head);
  }

  get config() { return this.ckpt.config; }

  /** Frees the resident weights (the model cannot be used afterwards). */
  free(): void {
    const all = new Set([this.embed, ...this.blocks.flatMap((b) => Object.values(b)), this.norm, this.head]);
    for (const t of all) this.be.free(t);
  }

  /** Runs `ids` after the cached positions; returns final-normed hidden rows [T, D] and the extended cache. */
  forwardHidden(ids: Int32Array, cache?: KvCache): { hidden: BTensor; cache: KvCache } {
    const offset = cache?.length ?? 0;
    const rope = ropeFor(this.ckpt, this.be, offset, ids.length);
    let x = this.be.embedding(this.embed, ids);
    const layers: KvState[] = [];
    this.blocks.forEach((w, i) => {
      const r = blockForward(this.be, this.config, w, x, rope, { offset, past: [cache?.layers[i]], linear: this.linear[i] });
      x = r.out;
      layers.push(r.kvs[0]!);
    });
    return { hidden: this.be.rmsnorm(x, this.norm, this.config.rmsNormEps), cache: { length: offset + ids.length, layers } };
  }

  /** Logits [T, vocab] for `ids` after the cache. */
  forward(ids: Int32Array, cache?: KvCache): { logits: BTensor; cache: KvCache } {
    const { hidden, cache: next } = this.forwardHidden(ids, cache);
    return { logits: this.be.linear(hidden, this.head), cache: next };
  }

  /**
   * Several sequences in one pass (varlen batching): their rows are concatenated so the row-wise ops run once, and
   * attention runs per sequence on its own cache. Logits of every segment are packed into one tensor (see PackedBatch).
   * Each segment must have at least one id. Equals `forward` on each segment alone, to float round-off.
   */
  forwardBatchPacked(segments: readonly BatchInput[], opts: { logits?: BatchLogits } = {}): PackedBatch {
    const mode = opts.logits ?? 'all';
    if (segments.length === 0) return { rowStart: [0], caches: [], logits: undefined };
    const segs: BatchSegment[] = [];
    let R = 0;
    for (const [i, s] of segments.entries()) {
      if (s.ids.length === 0) throw new RangeError(`forwardBatch: segment ${i} has no ids`);
      segs.push({ start: R, count: s.ids.length, offset: s.cache?.length ?? 0 });
      R += s.ids.length;
    }
    const ids = new Int32Array(R);
    for (const [i, s] of segments.entries()) ids.set(s.ids, segs[i]!.start);
    const rope = ropeForSegments(this.ckpt, this.be, segs);
    let x = this.be.embedding(this.embed, ids);
    const layers: KvState[][] = segments.map(() => []);
    this.blocks.forEach((w, b) => {
      const r = blockForward(this.be, this.config, w, x, rope, { segments: segs, past: segments.map((s) => s.cache?.layers[b]), linear: this.linear[b] });
      x = r.out;
      r.kvs.forEach((kv, s) => layers[s]!.push(kv));
    });
    const caches = segs.map((g, s) => ({ length: g.offset + g.count, layers: layers[s]! }));
    if (mode === 'none') return { rowStart: segs.map((g) => g.start).concat(R), caches };
    if (mode === 'last') {
      const lastRows = segs.length === 1 && segs[0]!.count === 1 ? x : concatAllRows(this.be, segs.map((g) => this.be.rows(x, g.start + g.count - 1, 1)));
      const hidden = this.be.rmsnorm(lastRows, this.norm, this.config.rmsNormEps);
      return { logits: this.be.linear(hidden, this.head), rowStart: segs.map((_, s) => s).concat(segs.length), caches };
    }
    const hidden = this.be.rmsnorm(x, this.norm, this.config.rmsNormEps);
    return { logits: this.be.linear(hidden, this.head), rowStart: segs.map((g) => g.start).concat(R), caches };
  }

  /**
   * `forwardBatchPacked` with the logits split per segment: logits[s] is [ids.length, V] ('all') or [1, V] ('last');
   * empty for 'none'.
   */
  forwardBatch(segments: readonly BatchInput[], opts: { logits?: BatchLogits } = {}): { logits: BTensor[]; caches: KvCache[] } {
    const { logits, rowStart, caches } = this.forwardBatchPacked(segments, opts);
    if (!logits) return { logits: [], caches };
    if (segments.length === 1) return { logits: [logits], caches };
    return { logits: caches.map((_, s) => this.be.rows(logits, rowStart[s]!, rowStart[s + 1]! - rowStart[s]!)), caches };
  }

  /**
   * Greedy decoding: `steps` new tokens after `prompt`; stops early at EOS when stopAtEos, and when
   * prompt and output reach `maxLength` tokens (default: the model's context).
   */
  async generate(prompt: number[], steps: number, opts: { stopAtEos?: boolean; maxLength?: number } = {}): Promise<number[]> {
    if (prompt.length === 0) throw new RangeError('generate: the prompt has no tokens');
    const out: number[] = [];
    let { logits, cache } = this.forward(Int32Array.from(prompt));
    const V = this.config.vocabSize;
    for (let s = 0; s < steps; s++) {
      const best = argmaxLastRow(await this.be.read(logits), V);
      out.push(best);
      if (opts.stopAtEos && best === this.config.eosTokenId) break;
      if (prompt.length + out.length >= (opts.maxLength ?? this.config.maxPositionEmbeddings)) break;
      ({ logits, cache } = this.forward(Int32Array.of(best), cache));
    }
    return out;
  }
}

/** Greedy choice: the index of the largest logit in the last row of `logits` (rows of `vocab`). */
export function argmaxLastRow(logits: Float32Array, vocab: number): number {
  const last = logits.subarray(logits.length - vocab);
  let best = 0;
  for (let i = 1; i < vocab; i++) if (last[i]! > last[best]!) best = i;
  return best;
}
