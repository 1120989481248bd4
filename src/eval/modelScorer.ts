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
 */
import type { Backend, BTensor } from '../backend/backend.js';
import type { KvCache, LlamaModel } from '../model/llama.js';
import type { LoglikelihoodRequest, Scorer } from './scorer.js';

export interface ModelScorerOptions {
  /** run each distinct context once and score its continuations on its KV cache (default true) */
  readonly kvReuse?: boolean;
  /** longest model input in tokens (default: the model's maxPositionEmbeddings) */
  readonly maxContext?: number;
}

/**
 * The context's cache after all its tokens and the logits [1, V] of its last position; `prefix` is the cache before
 * the last token, kept only to be freed once the work queued on it has been read back.
 */
interface ContextState { readonly cache: KvCache; readonly last: BTensor; readonly prefix?: { hidden: BTensor; cache: KvCache } }

export class ModelScorer implements Scorer {
  readonly maxContext: number;
  readonly kvReuse: boolean;
  private readonly be: Backend;

  constructor(private readonly model: LlamaModel, opts: ModelScorerOptions = {}) {
    this.be = model.be;
    this.kvReuse = opts.kvReuse ?? true;
    this.maxContext = opts.maxContext ?? model.config.maxPositionEmbeddings;
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
