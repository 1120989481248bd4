/**
 * AWQ's clip search (llm-awq `auto_clip.py`), step 4 of awq.ts: per linear (not q, k), 512 sampled tokens
 * X; per output row and group of gs input columns, the group's max |w| shrunk by (1 − i/20), i = 0..9, a
 * symmetric clamp to it, then the quantizer (clampQuantizeGroup); error = mean over the tokens of the
 * group's partial product's squared change, X_g·(Q − W_g)ᵀ; the first strict minimum per row wins, and
 * the weights are clamped in place to its bound.
 *
 * The bounds are made on the host (Math.fround(max |w| · (1 − i/20)), the factor in float64), so both
 * searches clamp to the same floats. The search itself runs on the backend when it has `clipSearch`
 * (WebGPU: candidates equal to the host's bit for bit, the products from its GEMM, errors as two-float
 * sums), else on the host with its sgemm and float64 errors, as before. The sample may already be on the
 * backend (awqRows.ts gathers it there from the captured inputs): then nothing is uploaded but the weight and
 * the bounds.
 */
import type { Backend, BTensor } from '../../backend/backend.js';
import type { HostMatrix } from '../blockJob.js';
import type { ScaleDtype } from '../core/grid.js';
import { Tensor } from '../../tensor/tensor.js';
import { clampQuantizeGroup } from './awqQuantizer.js';

/** auto_clip: n_grid 20, max_shrink 0.5 (shrinks 0..9), 512 sampled tokens. */
export const CLIP_GRID = 20, CLIP_STEPS = 10, CLIP_TOKENS = 512;

export type Gemm = (x: Float32Array, w: Float32Array, y: Float32Array, M: number, N: number, K: number) => void;

/** Sampled tokens [n, cols], row-major. */
export interface Tokens { x: Float32Array; n: number }

/** The sample as the search takes it: host rows, or a float32 tensor [n, cols] already on the backend. */
export type TokenRows = Tokens | BTensor;

/**
 * Every ⌊N/512⌋-th of the N captured tokens (at least 1 apart), counted across the sequences in order:
 * for sequences of the given row counts, each one's sampled rows (local indices, ascending).
 */
export function sampledRows(lengths: readonly number[]): Int32Array[] {
  const total = lengths.reduce((a, T) => a + T, 0);
  const step = Math.max(1, Math.floor(total / CLIP_TOKENS));
  let t0 = 0;
  return lengths.map((T) => {
    const first = (step - (t0 % step)) % step; // the first local row whose global index is a multiple of step
    const rows = first < T ? Int32Array.from({ length: Math.ceil((T - first) / step) }, (_, k) => first + k * step) : new Int32Array(0);
    t0 += T;
    return rows;
  });
}

/** The sampled tokens of host rows, as one [n, cols] array. */
export function sampleTokens(xs: readonly Float32Array[], cols: number): Tokens {
  const picks = sampledRows(xs.map((x) => x.length / cols));
  const n = picks.reduce((a, r) => a + r.length, 0);
  const out = new Float32Array(n * cols);
  let k = 0;
  xs.forEach((x, s) => { for (const i of picks[s]!) out.set(x.subarray(i * cols, (i + 1) * cols), (k++) * cols); });
  return { x: out, n };
}

/** The clamp bounds [CLIP_STEPS, rows, groups]: step i of (row, group) is Math.fround(max |w_group| · (1 − i/20)). */
export function clipBounds(W: HostMatrix, gs: number): Float32Array {
  const { rows, cols } = W, groups = cols / gs;
  const mv = new Float32Array(CLIP_STEPS * rows * groups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      let mn = Infinity, mx = -Infinity;
      for (let j = r * cols + g * gs, e = j + gs; j < e; j++) { const v = W.data[j]!; if (v < mn) mn = v; if (v > mx) mx = v; }
      const orgMax = Math.max(-mn, mx);
      for (let i = 0; i < CLIP_STEPS; i++) mv[(i * rows + r) * groups + g] = Math.fround(orgMax * (1 - i / CLIP_GRID));
    }
  }
  return mv;
}

/**
 * The host search: per (row, group) the chosen step [rows, groups], X_g·W_gᵀ and each candidate's
 * products by `gemm`, the errors summed in float64; a row whose errors are all non-finite keeps step 0.
 */
export function clipStepsOnHost(W: HostMatrix, X: Tokens, gs: number, bits: number, scaleDtype: ScaleDtype | undefined, mv: Float32Array, gemm: Gemm): Uint8Array {
  const { rows, cols } = W, n = X.n, groups = cols / gs;
  const steps = new Uint8Array(rows * groups);
  const xg = new Float32Array(n * gs), wg = new Float32Array(rows * gs), q = new Float32Array(rows * gs);
  const gMin = new Float32Array(rows), gMax = new Float32Array(rows);
  const org = new Float32Array(n * rows), out = new Float32Array(n * rows);
  const minErr = new Float64Array(rows);
  for (let g = 0; g < groups; g++) {
    const g0 = g * gs;
    for (let t = 0; t < n; t++) xg.set(X.x.subarray(t * cols + g0, t * cols + g0 + gs), t * gs);
    for (let r = 0; r < rows; r++) {
      wg.set(W.data.subarray(r * cols + g0, r * cols + g0 + gs), r * gs);
      let mn = Infinity, mx = -Infinity;
      for (let j = 0; j < gs; j++) { const v = wg[r * gs + j]!; if (v < mn) mn = v; if (v > mx) mx = v; }
      gMin[r] = mn; gMax[r] = mx;
    }
    gemm(xg, wg, org, n, rows, gs);
    minErr.fill(Infinity);
    for (let i = 0; i < CLIP_STEPS; i++) {
      for (let r = 0; r < rows; r++) clampQuantizeGroup(wg, r * gs, gs, mv[(i * rows + r) * groups + g]!, gMin[r]!, gMax[r]!, bits, scaleDtype, q);
      gemm(xg, q, out, n, rows, gs);
      for (let r = 0; r < rows; r++) {
        let e = 0;
        for (let t = 0; t < n; t++) { const d = out[t * rows + r]! - org[t * rows + r]!; e += d * d; }
        e /= n;
        if (e < minErr[r]!) { minErr[r] = e; steps[r * groups + g] = i; }
      }
    }
  }
  return steps;
}

/** Whether a sample is host rows (else a tensor on the backend). */
export function onHost(X: TokenRows): X is Tokens { return 'x' in X && X.x instanceof Float32Array; }

/**
 * The search on the backend (Backend.clipSearch): weight and bounds uploaded, the tokens too unless they
 * are there already (then the caller's to free), the steps read back.
 */
export async function clipStepsOnBackend(be: Backend, W: HostMatrix, X: TokenRows, gs: number, bits: number, scaleDtype: ScaleDtype | undefined, mv: Float32Array): Promise<Uint8Array> {
  const made: BTensor[] = [];
  try {
    const x = onHost(X) ? be.upload(X.x, [X.n, W.cols]) : X;
    if (onHost(X)) made.push(x);
    const w = be.uploadWeight(new Tensor('f32', [W.rows, W.cols], W.data));
    made.push(w);
    const m = be.upload(mv, [CLIP_STEPS, W.rows, W.cols / gs]);
    made.push(m);
    return await be.clipSearch!(x, w, m, { groupSize: gs, bits, f16Scale: scaleDtype === 'f16' });
  } finally {
    for (const t of made) be.free(t);
  }
}

/** Clamps W in place to ±mv at each (row, group)'s chosen step; returns how often each step was chosen. */
export function applyClip(W: HostMatrix, gs: number, mv: Float32Array, steps: Uint8Array): number[] {
  const { rows, cols } = W, groups = cols / gs;
  const chosen = new Array<number>(CLIP_STEPS).fill(0);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const i = steps[r * groups + g]!;
      chosen[i]!++;
      const b = mv[(i * rows + r) * groups + g]!;
      for (let k = r * cols + g * gs, e = k + gs; k < e; k++) {
        const v = W.data[k]!;
        W.data[k] = v > b ? b : v < -b ? -b : v;
      }
    }
  }
  return chosen;
}

/**
 * auto_clip for one linear (groupSize −1: each whole row is one group): W clamped in place; returns how
 * often each shrink step was chosen and where the search ran.
 */
export async function autoClip(be: Backend, W: HostMatrix, X: TokenRows, groupSize: number, bits: number, scaleDtype: ScaleDtype | undefined):
  Promise<{ chosen: number[]; on: 'backend' | 'host' }> {
  const gs = groupSize === -1 ? W.cols : groupSize;
  const mv = clipBounds(W, gs);
  const on = be.clipSearch ? 'backend' : 'host';
  const steps = on === 'backend'
    ? await clipStepsOnBackend(be, W, X, gs, bits, scaleDtype, mv)
    : clipStepsOnHost(W, onHost(X) ? X : { x: await be.read(X), n: X.shape[0]! }, gs, bits, scaleDtype, mv, be.hostKernels.gemm.bind(be.hostKernels));
  return { chosen: applyClip(W, gs, mv, steps), on };
}
