/**
 * AWQ's captured linear inputs (awq.ts steps 1–4), one [T, cols] block of rows per calibration sequence,
 * and the four things AWQ does with them: the mean |x| per channel, the scale search's inputs, the division
 * by the chosen scales, and the clip search's token sample. When the backend has `columnAbsMean` and
 * `divColumns` the rows stay there for the whole block (captured without a read, the means read back as
 * [cols], divided there, the sample gathered there by `embedding` and handed to the clip search as it is);
 * otherwise they are host arrays, as before. Both give the same bits: the ops equal the host's loops.
 */
import type { Backend, BTensor } from '../../backend/backend.js';
import { concatAllRows } from '../../model/block.js';
import type { InputName } from '../../model/layout.js';
import type { BlockJob } from '../blockJob.js';
import { sampledRows, sampleTokens, type TokenRows } from './awqClip.js';

export type CapturedRows =
  | { readonly on: 'backend'; xs: BTensor[] }
  | { readonly on: 'host'; xs: Float32Array[] };

/** Whether AWQ keeps its captured inputs on this backend. */
export function rowsStayOnBackend(be: Backend): boolean {
  return typeof be.columnAbsMean === 'function' && typeof be.divColumns === 'function';
}

/** Each requested input's rows over every calibration sequence, the block run with the current weights. */
export async function captureRows(job: BlockJob, names: readonly InputName[]): Promise<Map<InputName, CapturedRows>> {
  if (rowsStayOnBackend(job.be)) return new Map([...await job.captureOn(names)].map(([n, xs]) => [n, { on: 'backend', xs }]));
  return new Map([...await job.capture(names)].map(([n, xs]) => [n, { on: 'host', xs }]));
}

/** Frees rows kept on the backend (host rows are left to the collector). */
export function freeRows(job: BlockJob, rows: Iterable<CapturedRows>): void {
  for (const r of rows) if (r.on === 'backend') { job.free(r.xs); r.xs = []; }
}

/** mean over all tokens of |x| per channel (llm-awq's get_act_scale): Σ in float64, sequence after sequence, / tokens, to float32. */
export async function meanAbs(be: Backend, r: CapturedRows, cols: number): Promise<Float32Array> {
  if (r.on === 'backend') return be.columnAbsMean!(r.xs);
  const sum = new Float64Array(cols);
  let n = 0;
  for (const x of r.xs) {
    for (let i = 0; i < x.length; i++) sum[i % cols]! += Math.abs(x[i]!);
    n += x.length / cols;
  }
  return Float32Array.from(sum, (v) => v / n);
}

/** The rows as tensors for a search, and those made for it (uploaded host rows), which the caller frees. */
export function rowsOnBackend(job: BlockJob, r: CapturedRows, cols: number): { xs: readonly BTensor[]; made: BTensor[] } {
  if (r.on === 'backend') return { xs: r.xs, made: [] };
  const xs = job.uploadRows(r.xs, cols);
  return { xs, made: xs };
}

/** x /= s per column (apply_scale with input_feat_dict), each quotient Math.fround(x / s). */
export function divideRows(be: Backend, r: CapturedRows, s: Float32Array): void {
  if (r.on === 'host') {
    for (const x of r.xs) for (let i = 0; i < x.length; i++) x[i] = Math.fround(x[i]! / s[i % s.length]!);
    return;
  }
  const sd = be.upload(s, [s.length]);
  try {
    for (let i = 0; i < r.xs.length; i++) { // r.xs holds live tensors whenever this throws
      const y = be.divColumns!(r.xs[i]!, sd);
      be.free(r.xs[i]!);
      r.xs[i] = y;
    }
  } finally {
    be.free(sd);
  }
}

/**
 * The clip search's tokens (every ⌊N/512⌋-th, awqClip.ts sampledRows): host rows gathered on the host; rows
 * on the backend gathered there, row for row, into one tensor [n, cols] (the caller frees it).
 */
export function sampleRows(be: Backend, r: CapturedRows, cols: number): TokenRows {
  if (r.on === 'host') return sampleTokens(r.xs, cols);
  const picks = sampledRows(r.xs.map((x) => x.shape[0]!));
  return be.scope(() => concatAllRows(be, r.xs.flatMap((x, s) => (picks[s]!.length ? [be.embedding(x, picks[s]!)] : []))));
}
