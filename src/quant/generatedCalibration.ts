/**
 * Data-free calibration (`--calib generated`): windows the model being quantized writes itself, after
 * LLM-QAT's generator (Liu et al. 2023; facebookresearch/LLM-QAT generate_data.py), the data-free
 * workflow DB-LLM's summaries describe. Per window s:
 *   - a start token drawn uniformly from the vocabulary (the LLM-QAT paper's "randomly select the first
 *     token"; its script walks the ids in order), BOS and EOS excluded;
 *   - then greedy tokens until the window holds 3 + (s mod 3) generated tokens (the script's outer loop
 *     j = 3, 4, 5: `generate(..., do_sample=False, max_length=j)`);
 *   - then sampled tokens to the window's length with Hugging Face `generate`'s defaults the script relies
 *     on: temperature 1, top-k 50 (every logit ≥ the 50th largest kept, ties included, as TopKLogitsWarper),
 *     top-p 1. An EOS does not end the window (the script's texts stop there and are re-tokenized; a fixed
 *     window continues with whatever the model writes next).
 * The window starts with BOS when the tokenizer has one (as the script's training tokenization adds it),
 * and generation is conditioned on it. Draws come from the project's seeded generator (tensor/xoshiro.ts),
 * so windows are identical run to run for one seed and backend; they are not torch.multinomial's draws.
 * Windows are generated in batches (one forward per token for the whole batch, each window on its own
 * KV cache).
 */
import type { Backend, BTensor } from '../backend/backend.js';
import type { CalibrationSet } from '../data/calibration.js';
import { UsageError } from '../errors.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { LlamaModel, type KvCache } from '../model/llama.js';
import { Xoshiro128 } from '../tensor/xoshiro.js';

export const GENERATED_CALIBRATION = 'generated';
/** Hugging Face GenerationConfig's default top_k, which LLM-QAT's sampled continuation uses. */
export const GENERATED_TOP_K = 50;
/** Windows generated together (one batched forward per token). */
const BATCH = 16;
/** The xoshiro stream of the generator (distinct from training's data-order and init streams). */
const STREAM = 0x67656e; // "gen"

export interface GeneratedOptions {
  readonly nsamples: number;
  readonly seqlen: number;
  readonly seed: number;
  readonly topK?: number;
  /** called after each batch with the windows done so far */
  readonly onProgress?: (done: number, total: number) => void;
}

/** Greedy tokens (after the start token) of window s: LLM-QAT's max_length j = 3, 4, 5 counts the start token. */
export function greedyCount(s: number): number {
  return 2 + (s % 3);
}

/**
 * The top-k draw of Hugging Face's sampling at temperature 1: logits below the k-th largest are dropped (ties at
 * the k-th value kept), the rest softmaxed in float64 and one index drawn with `u` ∈ [0, 1).
 */
export function sampleTopK(logits: Float32Array, k: number, u: number): number {
  const V = logits.length;
  let kth = -Infinity;
  if (k < V) {
    const sorted = Float32Array.from(logits).sort();
    kth = sorted[V - k]!;
  }
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i]! >= kth && logits[i]! > max) max = logits[i]!;
  let total = 0;
  for (let i = 0; i < V; i++) if (logits[i]! >= kth) total += Math.exp(logits[i]! - max);
  let target = u * total, last = -1;
  for (let i = 0; i < V; i++) {
    if (logits[i]! < kth) continue;
    last = i;
    target -= Math.exp(logits[i]! - max);
    if (target < 0) return i;
  }
  return last;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** `nsamples` windows of `seqlen` tokens written by the model itself (see the file's comment). */
export async function generatedCalibration(ckpt: ModelCheckpoint, be: Backend, o: GeneratedOptions): Promise<CalibrationSet> {
  const V = ckpt.config.vocabSize;
  const topK = o.topK ?? GENERATED_TOP_K;
  if (!Number.isInteger(topK) || topK < 1) throw new UsageError(`generated calibration: top-k must be a positive integer (got ${topK})`);
  const bos = ckpt.tokenizer.bosId;
  const special = new Set([bos, ckpt.tokenizer.eosId, ckpt.config.bosTokenId, ckpt.config.eosTokenId].filter((x): x is number => x !== undefined));
  const head = bos !== undefined ? 1 : 0;
  if (o.seqlen < head + 5) throw new UsageError(`generated calibration: --seqlen ${o.seqlen} is too short (at least ${head + 5}: ${head ? 'BOS, ' : ''}a start token and up to 4 greedy ones)`);
  if (o.seqlen > ckpt.config.maxPositionEmbeddings) {
    throw new UsageError(`generated calibration: --seqlen ${o.seqlen} is beyond the model's context of ${ckpt.config.maxPositionEmbeddings}`);
  }
  if (V <= special.size) throw new UsageError(`generated calibration: the vocabulary of ${V} has no ordinary token to start from`);
  const rng = new Xoshiro128(o.seed, STREAM);
  const starts: number[] = [];
  const windows: Int32Array[] = [];
  for (let s = 0; s < o.nsamples; s++) {
    let t: number;
    do t = rng.int(V); while (special.has(t));
    starts.push(t);
    const w = new Int32Array(o.seqlen);
    if (head) w[0] = bos!;
    w[head] = t;
    windows.push(w);
  }
  const model = LlamaModel.load(ckpt, be);
  try {
    for (let b0 = 0; b0 < o.nsamples; b0 += BATCH) {
      const batch = windows.slice(b0, b0 + BATCH);
      let caches: (KvCache | undefined)[] = batch.map(() => undefined);
      let fed = 0; // tokens of each window already in its cache
      for (let pos = head + 1; pos < o.seqlen; pos++) {
        const feed = batch.map((w) => w.subarray(fed, pos));
        const r = be.scope(() => model.forwardBatchPacked(feed.map((ids, i) => ({ ids, ...(caches[i] ? { cache: caches[i] } : {}) })), { logits: 'last' }));
        const logits = await be.read(r.logits!);
        freeReplaced(be, caches, r.caches);
        be.free(r.logits!);
        caches = r.caches;
        fed = pos;
        batch.forEach((w, i) => {
          const row = logits.subarray(i * V, (i + 1) * V);
          const s = b0 + i;
          w[pos] = pos - head <= greedyCount(s) ? argmax(row) : sampleTopK(row, topK, rng.uniform());
        });
      }
      freeReplaced(be, caches, []);
      o.onProgress?.(Math.min(b0 + BATCH, o.nsamples), o.nsamples);
    }
  } finally {
    model.free();
  }
  return {
    windows,
    info: {
      source: GENERATED_CALIBRATION, file: ckpt.path, seed: o.seed, nsamples: o.nsamples, seqlen: o.seqlen,
      starts,
      notes: [`data-free: LLM-QAT's generator (start token uniform over the vocabulary, 3-5 greedy tokens, then top-k ${topK} sampling at temperature 1); starts are the start token ids`],
    },
  };
}

/** Frees the tensors of the old caches that the new ones do not hold. */
function freeReplaced(be: Backend, old: readonly (KvCache | undefined)[], next: readonly KvCache[]): void {
  const keep = new Set<BTensor>(next.flatMap((c) => c.layers.flatMap((l) => [l.k, l.v])));
  for (const c of old) for (const l of c?.layers ?? []) for (const t of [l.k, l.v]) if (!keep.has(t)) be.free(t);
}
