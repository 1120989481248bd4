import type { Backend } from '../backend/backend.js';
import type { ActivationQuant, ModelCheckpoint } from '../io/checkpoint.js';
import { streamedNll, type StreamProgress } from '../model/stream.js';
import { pplStream } from '../data/pplData.js';
import { UsageError } from '../errors.js';

/** One perplexity number with everything needed to compare it with another. */
export interface PplResult {
  readonly dataset: string;
  /** 'gptq' (non-overlapping windows, tail dropped, mean of window means) */
  readonly protocol: 'gptq';
  readonly ppl: number;
  readonly seqlen: number;
  readonly bos: boolean;
  readonly tokenizer: string;
  /** tokens in the stream, windows it makes, windows scored (fewer with --limit) */
  readonly tokens: number;
  readonly windows: number;
  readonly windowsEvaluated: number;
  readonly limit: number | null;
  readonly backend: string;
  /** the activation quantization the model ran with (a SmoothQuant checkpoint), null for none */
  readonly activation: ActivationQuant | null;
  readonly seconds: number;
  readonly files: readonly string[];
  readonly notes: readonly string[];
}

export interface PplOptions {
  seqlen: number;
  limit?: number | undefined;
  dataDir?: string | undefined;
  /**
   * windows streamed through the model per pass (default: all): the hidden states of that many windows are
   * resident at once, at the cost of reading the weights once per pass. Results do not depend on it.
   */
  windowsPerPass?: number | undefined;
  /** each pass's block-streaming steps, with the windows scored before that pass and the windows to score */
  onProgress?: ((p: StreamProgress & { dataset: string; windowsDone: number; windows: number }) => void) | undefined;
}

/** The windows in passes of `perPass` (all at once when undefined); a bad value is a UsageError. */
export function windowPasses<T>(windows: readonly T[], perPass: number | undefined): T[][] {
  if (perPass !== undefined && (!Number.isInteger(perPass) || perPass < 1)) throw new UsageError(`--windows-per-pass must be a positive integer (got ${perPass})`);
  const n = perPass ?? Math.max(windows.length, 1), out: T[][] = [];
  for (let i = 0; i < windows.length; i += n) out.push(windows.slice(i, i + n));
  return out;
}

/** Splits a token stream into floor(n/seqlen) windows, the tail dropped (GPTQ protocol). */
function gptqWindows(ids: Int32Array, seqlen: number, limit?: number): Int32Array[] {
  const n = Math.floor(ids.length / seqlen);
  const take = limit === undefined ? n : Math.min(n, limit);
  return Array.from({ length: take }, (_, i) => ids.subarray(i * seqlen, (i + 1) * seqlen));
}

/** ppl = exp(mean over windows of each window's mean NLL over its seqlen−1 predicted tokens). */
function pplFromWindowNlls(nlls: readonly Float64Array[]): number {
  let sum = 0;
  for (const w of nlls) {
    let s = 0;
    for (let i = 0; i < w.length; i++) s += w[i]!;
    sum += s / w.length;
  }
  return Math.exp(sum / nlls.length);
}

/** Perplexity of `ckpt` on a named set (wikitext2, ptb, ptb-new, c4, c4-new, tinystories) or a text file. */
export async function evaluatePpl(ckpt: ModelCheckpoint, be: Backend, dataset: string, opts: PplOptions): Promise<PplResult> {
  const t0 = performance.now();
  if (!Number.isInteger(opts.seqlen) || opts.seqlen < 2) throw new UsageError(`seqlen must be an integer ≥ 2 (got ${opts.seqlen})`);
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1)) throw new UsageError(`--limit must be a positive integer (got ${opts.limit})`);
  const stream = pplStream(dataset, ckpt.tokenizer, { seqlen: opts.seqlen, dataDir: opts.dataDir, bos: true });
  const all = Math.floor(stream.ids.length / opts.seqlen);
  if (all < 1) throw new UsageError(`${dataset}: seqlen ${opts.seqlen} is longer than the data (${stream.ids.length} tokens)`);
  const windows = gptqWindows(stream.ids, opts.seqlen, opts.limit);
  const nlls: Float64Array[] = [];
  for (const pass of windowPasses(windows, opts.windowsPerPass)) {
    const windowsDone = nlls.length;
    nlls.push(...await streamedNll(ckpt, be, pass, {
      onProgress: opts.onProgress && ((p) => opts.onProgress!({ ...p, dataset, windowsDone, windows: windows.length })),
    }));
  }
  return {
    dataset, protocol: 'gptq', ppl: pplFromWindowNlls(nlls), seqlen: opts.seqlen, bos: stream.info.bos,
    tokenizer: ckpt.tokenizer.description, tokens: stream.ids.length, windows: all, windowsEvaluated: windows.length,
    limit: opts.limit ?? null, backend: be.description, activation: ckpt.activation ?? null, seconds: (performance.now() - t0) / 1000,
    files: stream.info.files, notes: stream.info.notes ?? [],
  };
}
