/**
 * KL-divergence of a quantized model against its base (llama.cpp's `perplexity --kl-divergence`), over the windows
 * of the GPTQ perplexity protocol (ppl.ts): every predicted position 1..seqlen−1 of every window is scored.
 *
 * Design: no logits file. llama.cpp first writes the base's logits to disk (as uint16 log-probabilities, about
 * 2·vocab bytes per token: 74 GB for WikiText2 under LLaMA-3's 128k vocabulary) and reads them back while running
 * the quantized model. Here both models are block-streamed over the same windows up to their final-normed hidden
 * rows (ppl.ts's memory, twice: [windows, seqlen−1, hidden] per model, no vocabulary dimension), then both LM heads
 * are read in the same vocabulary chunks and each chunk's two logit blocks [seqlen−1, chunk] are folded on the host
 * in float64 into per-position accumulators (kldStats.ts). No full-vocabulary row of either model ever exists, on
 * disk or in memory, and each head is read once.
 */
import type { Backend } from '../backend/backend.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { headChunks, streamedFinalRows, type StreamProgress } from '../model/stream.js';
import { windowPasses } from './ppl.js';
import { pplStream } from '../data/pplData.js';
import { UsageError } from '../errors.js';
import { KlAccumulator, summarizeKl, type KlSummary } from './kldStats.js';

export interface KldResult {
  readonly dataset: string;
  readonly protocol: 'gptq';
  readonly base: string;
  readonly model: string;
  /** GPTQ-protocol perplexities (mean of window means) of the two models over the same windows, and quant − base */
  readonly pplBase: number;
  readonly pplQuant: number;
  readonly deltaPpl: number;
  readonly kl: KlSummary;
  readonly seqlen: number;
  readonly bos: boolean;
  readonly tokenizer: string;
  readonly tokens: number;
  readonly windows: number;
  readonly windowsEvaluated: number;
  readonly limit: number | null;
  readonly backend: string;
  readonly seconds: number;
  readonly files: readonly string[];
}

export interface KldOptions {
  seqlen: number;
  limit?: number | undefined;
  dataDir?: string | undefined;
  /** windows per pass through both models (default: all; see PplOptions.windowsPerPass) */
  windowsPerPass?: number | undefined;
  /** LM-head rows per chunk (default: streamedNll's, halved for the two logit blocks) */
  headChunk?: number | undefined;
  onProgress?: ((p: StreamProgress & { dataset: string; model: 'base' | 'quant' }) => void) | undefined;
}

/** The two models must predict over the same vocabulary from the same token ids; one line saying how they differ. */
function checkCompatible(quant: ModelCheckpoint, base: ModelCheckpoint): void {
  const vq = quant.config.vocabSize, vb = base.config.vocabSize;
  if (vq !== vb) throw new UsageError(`--kld: vocabulary mismatch: ${quant.path} has ${vq} tokens, base ${base.path} has ${vb}`);
}

/** Per-token KL(P_base ‖ P_quant) of `quant` against `base` on a named set or text file, with both perplexities. */
export async function evaluateKld(quant: ModelCheckpoint, base: ModelCheckpoint, be: Backend, dataset: string, opts: KldOptions): Promise<KldResult> {
  const t0 = performance.now();
  if (!Number.isInteger(opts.seqlen) || opts.seqlen < 2) throw new UsageError(`seqlen must be an integer ≥ 2 (got ${opts.seqlen})`);
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1)) throw new UsageError(`--limit must be a positive integer (got ${opts.limit})`);
  checkCompatible(quant, base);
  const stream = pplStream(dataset, base.tokenizer, { seqlen: opts.seqlen, dataDir: opts.dataDir, bos: true });
  const mine = pplStream(dataset, quant.tokenizer, { seqlen: opts.seqlen, dataDir: opts.dataDir, bos: true });
  const at = firstDifference(stream.ids, mine.ids);
  if (at >= 0) {
    throw new UsageError(`--kld: tokenizer mismatch on ${dataset}: ${quant.path} and base ${base.path} encode it differently (first at token ${at}: ` +
      `${mine.ids[at] ?? 'end'} vs ${stream.ids[at] ?? 'end'})`);
  }
  const all = Math.floor(stream.ids.length / opts.seqlen);
  if (all < 1) throw new UsageError(`${dataset}: seqlen ${opts.seqlen} is longer than the data (${stream.ids.length} tokens)`);
  const take = opts.limit === undefined ? all : Math.min(all, opts.limit);
  const windows = Array.from({ length: take }, (_, i) => stream.ids.subarray(i * opts.seqlen, (i + 1) * opts.seqlen));
  const progress = (model: 'base' | 'quant') => opts.onProgress && ((p: StreamProgress) => opts.onProgress!({ ...p, dataset, model }));

  const P = opts.seqlen - 1;
  const passes = windowPasses(windows, opts.windowsPerPass);
  const hb = headChunks(base, P, opts.headChunk, 2), hq = headChunks(quant, P, opts.headChunk, 2);
  if (hb.head.rows !== hq.head.rows) throw new UsageError(`--kld: vocabulary mismatch: the LM head of ${quant.path} has ${hq.head.rows} rows, base's ${hb.head.rows}`);
  const V = hb.head.rows, chunk = Math.min(hb.chunk, hq.chunk);
  const accs = windows.map((w) => {
    const targets = w.subarray(1);
    for (const id of targets) if (!(id >= 0 && id < V)) throw new RangeError(`evaluateKld: target ${id} outside the vocabulary of ${V}`);
    return new KlAccumulator(P, Int32Array.from(targets));
  });
  let first = 0;
  for (const pass of passes) {
    const xsBase = await streamedFinalRows(base, be, pass, { onProgress: progress('base') });
    const xsQuant = await streamedFinalRows(quant, be, pass, { onProgress: progress('quant') });
    for (let v0 = 0; v0 < V; v0 += chunk) {
      const c = Math.min(chunk, V - v0);
      const wb = be.uploadWeight(hb.head.read(v0, c)), wq = be.uploadWeight(hq.head.read(v0, c));
      for (let s = 0; s < pass.length; s++) {
        const lb = be.linear(xsBase[s]!, wb), lq = be.linear(xsQuant[s]!, wq);
        const a = await be.read(lb), b = await be.read(lq);
        be.free(lb); be.free(lq);
        accs[first + s]!.fold(a, b, v0, c);
      }
      be.free(wb); be.free(wq);
    }
    for (const x of [...xsBase, ...xsQuant]) be.free(x);
    first += pass.length;
  }

  const kl = new Float64Array(windows.length * P);
  let same = 0, nllBase = 0, nllQuant = 0;
  accs.forEach((acc, s) => {
    const r = acc.finish();
    kl.set(r.kl, s * P);
    for (let t = 0; t < P; t++) same += r.sameTop[t]!;
    nllBase += mean(r.nllBase); nllQuant += mean(r.nllQuant);
  });
  const pplBase = Math.exp(nllBase / windows.length), pplQuant = Math.exp(nllQuant / windows.length);
  return {
    dataset, protocol: 'gptq', base: base.path, model: quant.path, pplBase, pplQuant, deltaPpl: pplQuant - pplBase, kl: summarizeKl(kl, same),
    seqlen: opts.seqlen, bos: stream.info.bos, tokenizer: base.tokenizer.description, tokens: stream.ids.length, windows: all, windowsEvaluated: take,
    limit: opts.limit ?? null, backend: be.description, seconds: (performance.now() - t0) / 1000, files: stream.info.files,
  };
}

function mean(xs: Float64Array): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return s / xs.length;
}

/** Index of the first position where the two id streams differ (or one ends), −1 when equal. */
function firstDifference(a: Int32Array, b: Int32Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
