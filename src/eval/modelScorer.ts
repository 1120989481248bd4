/**
 * A Scorer over a resident LlamaModel (the model side of eval/scorer.ts).
 *
 * loglikelihood, with KV reuse (default): requests are grouped by their (truncated) context; each context of length C
 * is run once, as `forwardHidden(context[:-1])` then `forward(context[-1:])` on that cache, so the only logits ever
 * computed for the context are its last row [1, V] (no [C, V] block, which for a 128k vocabulary would be large).
 * That row predicts continuation[0]; each continuation then runs `continuation[:-1]` on top of the context's cache
 * (the cache is immutable, so every continuation extends the same one) and its logits predict continuation[1:].
 *
 *   ll = −nll(lastRow, cont[0]) − Σ nll(forward(cont[:-1], cache), cont[1:])
 *
 * A context with a single request (Winogrande's partial scoring) has nothing to share and is scored from scratch.
 *
 * Without KV reuse every request is one forward of `(context + continuation)[:-1]` from scratch; the two must agree
 * to float tolerance (test/eval/modelScorer.test.ts). Continuations of one context are not concatenated into one
 * forward: the backend's attention is causal only, with no mask to keep one continuation from seeing another.
 * Memory is bounded by one context's cache plus one continuation's activations at a time.
 *
 * Batched (default, with KV reuse): the requests of one call are run as varlen batches (LlamaModel.forwardBatchPacked:
 * rows of several sequences concatenated for the row-wise ops, attention per sequence). In waves bounded by
 * `maxBatchRows`: (1) the distinct shared contexts of the wave run as one batch, keeping each one's last-row logits
 * and cache; (2) every continuation `cont[:-1]` of the wave runs on its context's cache, batched in chunks of at most
 * `maxBatchRows` rows, with one nll call per chunk. Single-request contexts are scored from scratch, also batched.
 * Memory is bounded by about `maxBatchRows` rows of caches and activations (a single longer sequence runs alone).
 */
import type { Backend, BTensor } from '../backend/backend.js';
import type { KvCache, LlamaModel } from '../model/llama.js';
import type { LoglikelihoodRequest, Scorer } from './scorer.js';

export interface ModelScorerOptions {
  /** run each distinct context once and score its continuations on its KV cache (default true) */
  readonly kvReuse?: boolean;
  /** longest model input in tokens (default: the model's maxPositionEmbeddings) */
  readonly maxContext?: number;
  /** run the requests of one call as varlen batches (default true; same numbers to float round-off, faster) */
  readonly batch?: boolean;
  /** most rows (tokens) per batched forward, and per wave of shared contexts (default 2048) */
  readonly maxBatchRows?: number;
}

/**
 * The context's cache after all its tokens and the logits [1, V] of its last position; `prefix` is the cache before
 * the last token, kept only to be freed once the work queued on it has been read back.
 */
interface ContextState { readonly cache: KvCache; readonly last: BTensor; readonly prefix?: { hidden: BTensor; cache: KvCache } }

export class ModelScorer implements Scorer {
  readonly maxContext: number;
  readonly kvReuse: boolean;
  readonly batch: boolean;
  readonly maxBatchRows: number;
  private readonly be: Backend;

  constructor(private readonly model: LlamaModel, opts: ModelScorerOptions = {}) {
    this.be = model.be;
    this.kvReuse = opts.kvReuse ?? true;
    this.maxContext = opts.maxContext ?? model.config.maxPositionEmbeddings;
    this.batch = opts.batch ?? true;
    this.maxBatchRows = opts.maxBatchRows ?? 2048;
    if (!Number.isInteger(this.maxBatchRows) || this.maxBatchRows < 1) throw new RangeError(`maxBatchRows must be a positive integer (got ${this.maxBatchRows})`);
    if (!Number.isInteger(this.maxContext) || this.maxContext < 1) throw new RangeError(`maxContext must be a positive integer (got ${this.maxContext})`);
  }

  async loglikelihood(reqs: LoglikelihoodRequest[]): Promise<number[]> {
    const out = new Array<number>(reqs.length).fill(0);
    const prepared = reqs.map((r) => this.prepare(r));
    if (!this.kvReuse) {
      for (const [i, r] of prepared.entries()) if (r.continuation.length > 0) out[i] = await this.scoreFromScratch(r);
      return out;
    }
    // group by context (after truncation, which can differ between continuations of different lengths)
    const groups = new Map<string, number[]>();
    for (const [i, r] of prepared.entries()) {
      if (r.continuation.length === 0) continue; // ll = 0, as lm-eval
      const key = r.context.join(',');
      const g = groups.get(key);
      if (g) g.push(i); else groups.set(key, [i]);
    }
    if (this.batch) {
      await this.loglikelihoodBatched(prepared, [...groups.values()], out);
      return out;
    }
    for (const indices of groups.values()) {
      if (indices.length === 1) {
        // nothing to share (Winogrande's partial scoring): one forward beats context + continuation separately
        out[indices[0]!] = await this.scoreFromScratch(prepared[indices[0]!]!);
        continue;
      }
      const ctx = this.runContext(prepared[indices[0]!]!.context);
      for (const i of indices) out[i] = await this.scoreOnContext(ctx, prepared[i]!.continuation);
      this.release(ctx);
    }
    return out;
  }

  /** The batched KV-reuse path (see the file comment); writes into `out`. */
  private async loglikelihoodBatched(prepared: LoglikelihoodRequest[], groups: number[][], out: number[]): Promise<void> {
    // single-request contexts: (context + continuation)[:-1] from scratch, batched
    const singles = groups.filter((g) => g.length === 1).map((g) => g[0]!);
    for (const chunk of chunkByRows(singles, (i) => prepared[i]!.context.length + prepared[i]!.continuation.length - 1, this.maxBatchRows)) {
      const segs = chunk.map((i) => {
        const ids = [...prepared[i]!.context, ...prepared[i]!.continuation];
        return { ids: Int32Array.from(ids.slice(0, -1)), targets: ids.slice(1), skip: prepared[i]!.context.length - 1 };
      });
      const lls = await this.scoreSegments(segs.map((s) => ({ ids: s.ids })), segs.map((s) => s.targets), segs.map((s) => s.skip));
      chunk.forEach((i, j) => { out[i] = lls[j]!; });
    }
    // shared contexts: in waves of about maxBatchRows context rows
    const shared = groups.filter((g) => g.length > 1);
    for (const wave of chunkByRows(shared, (g) => prepared[g[0]!]!.context.length, this.maxBatchRows)) {
      const { logits, caches } = this.model.forwardBatchPacked(
        wave.map((g) => ({ ids: Int32Array.from(prepared[g[0]!]!.context) })), { logits: 'last' });
      const last = await this.be.read(logits!);
      this.be.free(logits!);
      const V = this.model.config.vocabSize;
      // first continuation token from each context's last row
      wave.forEach((g, w) => {
        const row = last.subarray(w * V, (w + 1) * V);
        const lse = logSumExp(row);
        for (const i of g) out[i] = row[prepared[i]!.continuation[0]!]! - lse;
      });
      // the rest of every continuation on its context's cache
      const rest = wave.flatMap((g, w) => g.filter((i) => prepared[i]!.continuation.length > 1).map((i) => ({ i, cache: caches[w]! })));
      for (const chunk of chunkByRows(rest, (r) => prepared[r.i]!.continuation.length - 1, this.maxBatchRows)) {
        const conts = chunk.map((r) => prepared[r.i]!.continuation);
        const lls = await this.scoreSegments(
          chunk.map((r, j) => ({ ids: Int32Array.from(conts[j]!.slice(0, -1)), cache: r.cache })), conts.map((c) => c.slice(1)), conts.map(() => 0));
        chunk.forEach((r, j) => { out[r.i] = out[r.i]! + lls[j]!; });
      }
      for (const c of caches) this.freeCache(c);
    }
  }

  /** Σ log p(targets[s][skip[s]..]) of each segment's rows, in one batched forward and one nll call. */
  private async scoreSegments(segs: { ids: Int32Array; cache?: KvCache }[], targets: number[][], skip: number[]): Promise<number[]> {
    const { logits, rowStart, caches } = this.model.forwardBatchPacked(segs, { logits: 'all' });
    const nll = await this.be.nll(logits!, Int32Array.from(targets.flat()));
    this.be.free(logits!);
    for (const [s, c] of caches.entries()) this.freeNew(c, segs[s]!.cache);
    return segs.map((_, s) => -sum(nll.subarray(rowStart[s]! + skip[s]!, rowStart[s + 1]!)));
  }

  /** Frees the k/v of `cache` that a forward on top of `base` made (not base's own). */
  private freeNew(cache: KvCache, base?: KvCache): void {
    cache.layers.forEach(({ k, v }, l) => {
      if (base?.layers[l]?.k !== k) this.be.free(k);
      if (base?.layers[l]?.v !== v) this.be.free(v);
    });
  }

  async nextTokenLogprobs(context: number[], candidates: number[]): Promise<number[]> {
    const V = this.model.config.vocabSize;
    for (const c of candidates) if (!(Number.isInteger(c) && c >= 0 && c < V)) throw new RangeError(`candidate token ${c} is outside the vocabulary [0, ${V})`);
    const ctx = this.runContext(this.nonEmpty(context).slice(-this.maxContext));
    const row = await this.be.read(ctx.last);
    this.release(ctx);
    return logSoftmaxAt(row, candidates);
  }

  /** Non-empty context, left-truncated so that `(context + continuation)[:-1]` fits maxContext. */
  private prepare(r: LoglikelihoodRequest): LoglikelihoodRequest {
    const context = this.nonEmpty(r.context);
    const { continuation } = r;
    if (continuation.length > this.maxContext) {
      throw new RangeError(`a continuation of ${continuation.length} tokens does not fit the model's context of ${this.maxContext}`);
    }
    const over = context.length + continuation.length - 1 - this.maxContext;
    return over > 0 ? { context: context.slice(over), continuation } : { context, continuation };
  }

  /** The task code substitutes BOS/EOS for an empty context already; this is the same guard at the model side. */
  private nonEmpty(context: number[]): number[] {
    if (context.length > 0) return context;
    const start = this.model.config.bosTokenId ?? this.model.config.eosTokenId;
    if (start === undefined) throw new RangeError('an empty context needs a BOS or EOS token, and the model config has neither');
    return [start];
  }

  /** Prefix through forwardHidden (no logits), last token through forward: logits only for the last position. */
  private runContext(context: number[]): ContextState {
    const n = context.length;
    const prefix = n > 1 ? this.model.forwardHidden(Int32Array.from(context.slice(0, n - 1))) : undefined;
    const { logits, cache } = this.model.forward(Int32Array.of(context[n - 1]!), prefix?.cache);
    return { cache, last: logits, prefix };
  }

  private release(ctx: ContextState): void {
    this.be.free(ctx.last);
    this.freeCache(ctx.cache);
    if (ctx.prefix) { this.be.free(ctx.prefix.hidden); this.freeCache(ctx.prefix.cache); }
  }

  private async scoreOnContext(ctx: ContextState, cont: number[]): Promise<number> {
    let ll = -(await this.be.nll(ctx.last, Int32Array.of(cont[0]!)))[0]!;
    if (cont.length > 1) {
      const { logits, cache } = this.model.forward(Int32Array.from(cont.slice(0, -1)), ctx.cache);
      ll -= sum(await this.be.nll(logits, Int32Array.from(cont.slice(1))));
      this.be.free(logits);
      this.freeCache(cache);
    }
    return ll;
  }

  private async scoreFromScratch(r: LoglikelihoodRequest): Promise<number> {
    // nll of every position (cheap next to the forward), summed over the continuation's: no `rows` view to own
    const ids = [...r.context, ...r.continuation];
    const { logits, cache } = this.model.forward(Int32Array.from(ids.slice(0, -1)));
    const nll = await this.be.nll(logits, Int32Array.from(ids.slice(1)));
    this.be.free(logits);
    this.freeCache(cache);
    return -sum(nll.subarray(r.context.length - 1));
  }

  /** Frees the k/v a forward made (a no-op on the CPU backend; a GPU backend gets its buffers back). */
  private freeCache(cache: KvCache): void {
    for (const { k, v } of cache.layers) { this.be.free(k); this.be.free(v); }
  }
}

/** Greedy split of `items` into consecutive chunks of at most `budget` rows (an item over budget goes alone). */
function chunkByRows<T>(items: readonly T[], rows: (x: T) => number, budget: number): T[][] {
  const chunks: T[][] = [];
  let cur: T[] = [], n = 0;
  for (const x of items) {
    const r = rows(x);
    if (cur.length > 0 && n + r > budget) { chunks.push(cur); cur = []; n = 0; }
    cur.push(x); n += r;
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks;
}

/** log Σ exp(row), in float64. */
function logSumExp(row: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i]! - max);
  return max + Math.log(z);
}

function sum(xs: Float64Array): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return s;
}

/** log softmax(row)[c] for each candidate, in float64. */
export function logSoftmaxAt(row: Float32Array, candidates: readonly number[]): number[] {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i]! - max);
  const lse = max + Math.log(z);
  return candidates.map((c) => row[c]! - lse);
}
