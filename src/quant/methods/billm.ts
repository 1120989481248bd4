/**
 * BiLLM (Huang et al., 2024, "BiLLM: Pushing the Limit of Post-Training Quantization for LLMs"), as its
 * repository runs it: `run.py <model> c4 braq --blocksize 128 --salient_metric hessian`
 * (Aaronhuang-778/BiLLM @ dc137eb, bigptq.py BRAGPTQ.fasterquant):
 * - dead input columns (H_jj = 0): H_jj = 1, W[:, j] = 0; damping percdamp · mean(diag H) (after the
 *   dead fix); U = the upper Cholesky factor of the damped H⁻¹ (H⁻¹ = UᵀU), computed once per layer;
 * - blocks of g = 128 columns (lowbit's --group), left to right: the block's masks are searched on
 *   its current weights (earlier blocks' updates included) with d_j = U_jj, and the whole block is
 *   binarized at once (braq.ts) — no error feedback inside a block;
 * - Err1 = (W1 − Q1) / U_jj column by column, then one lazy update of every later column:
 *   W[:, ed:] −= Err1 · U[st:ed, ed:] (GPTQ's formula, once per block).
 * Precision as the reference's float32 tensors: W, Err1 and U are held in float32 (U computed in
 * float64 by linalgProvider.ts and rounded), the lazy update's products summed in float64 and the
 * result rounded to float32 (the provider's float64 GEMM when it has one, else TypeScript summing k
 * ascending). A damping that fails to factor is multiplied by 10 (at most 3 times), as lowbit's GPTQ.
 *
 * Bits per weight as the paper counts them (§"Extra storing bits"): N_param = 2·r + 1·(1 − r) over
 * the salient fraction r, i.e. 1 + (salient columns)/(columns) per layer, averaged over its blocks;
 * each layer's figure is in its notes, and nominalBits() gives the paper's 1.1 for tables. The stored
 * layout (tensor/billmPack.ts) costs more: 2 bit planes and 8 parameters per row per block.
 */
import { LowbitError, UsageError } from '../../errors.js';
import { f16ToF32, f32ToF16 } from '../../tensor/codecs.js';
import { BILLM_MAX_WEIGHTS, billmTensors, planeBytes, BILLM_PARAMS, type BillmParts } from '../../tensor/billmPack.js';
import type { QuantLinalg } from '../core/linalgProvider.js';
import type { QuantMethod } from '../method.js';
import { inputReaders } from '../../model/layout.js';
import { inputFactor } from '../core/inverseFactor.js';
import { binarizeBlock, salience, searchBlock, splitLevels, type BlockSearch } from './braq.js';

/** The paper's bit width for its tables (BiLLM, ~1.1 bits: README's LLaMA 1.09, LLaMA-2 1.08, OPT 1.11). */
export const BILLM_NOMINAL_BITS = 1.1;

export interface BillmOptions {
  /** columns per block (the reference's --blocksize, lowbit's --group): 128 */
  blockSize?: number;
  percdamp?: number;
  /** 'f16': every μ and α rounded through fp16 before it is used, and stored as f16 */
  scaleDtype?: 'f32' | 'f16';
  /** layer name for messages */
  where?: string;
  linalg?: QuantLinalg | undefined;
  /** The layers quantized against this same H (q/k/v 3, gate/up 2; default 1): they share its inverse factor (core/inverseFactor.ts). */
  readers?: number;
  /** each block as it was binarized (tests): its weights then (a copy), U's diagonal over it, the searches */
  onBlock?: (b: { col0: number; W1: Float32Array; d: Float32Array; search: BlockSearch }) => void;
}

export interface BillmResult {
  /** the fake-quantized weights [rows, cols] */
  Q: Float32Array;
  parts: BillmParts;
  /** salient columns chosen per block, and the break-point candidate (0..80) */
  salientCounts: Int32Array;
  splitIndices: Int32Array;
  /** the paper's count for this layer: 1 + salient columns / columns */
  paperBits: number;
  dampUsed: number;
  notes: string[];
}

/** BiLLM's block size must be an integer ≥ 2 (one salient column and one other at least) and divide the layer's input columns. */
export function checkBlockSize(g: number, cols?: number, where?: string): void {
  const at = where ? `${where}: ` : '';
  if (!Number.isInteger(g) || g < 2) throw new UsageError(`${at}BiLLM's block size (--group) must be an integer of at least 2, got ${g}`);
  if (cols !== undefined && cols % g !== 0) throw new UsageError(`${at}BiLLM's block size --group ${g} does not divide the ${cols} input columns`);
}

const LAZY_ROWS = 256, LAZY_COLS = 1024;

export function billm(W: Float32Array, rows: number, cols: number, H: Float64Array, opts: BillmOptions = {}): BillmResult {
  const g = opts.blockSize ?? 128, percdamp = opts.percdamp ?? 0.01, where = opts.where;
  const at = where ? `${where}: ` : '';
  checkBlockSize(g, cols, where);
  if (W.length !== rows * cols) throw new UsageError(`${at}weight has ${W.length} values, expected ${rows}x${cols}`);
  if (H.length !== cols * cols) throw new UsageError(`${at}Hessian has ${H.length} values, expected ${cols}x${cols}`);
  if (rows * cols > BILLM_MAX_WEIGHTS) throw new UsageError(`${at}${rows}x${cols} is too large for the billm layout (at most ${BILLM_MAX_WEIGHTS} weights)`);
  const Wf = Float32Array.from(W);
  for (let i = 0; i < Wf.length; i++) if (!Number.isFinite(Wf[i]!)) throw new UsageError(`${at}weight [${Math.floor(i / cols)}, ${i % cols}] is ${Wf[i]}`);
  const notes: string[] = [];
  const n = cols;
  let dead = 0;
  for (let j = 0; j < n; j++) {
    if (H[j * n + j] !== 0) continue;
    for (let r = 0; r < rows; r++) Wf[r * cols + j] = 0;
    dead++;
  }
  if (dead > 0) notes.push(`${dead} dead input column(s) (H_jj = 0): weights zeroed`);
  // one factor per input (core/inverseFactor.ts)
  const { Hinv, dampUsed, notes: damping } = inputFactor(H, n, { readers: opts.readers, percdamp, at, linalg: opts.linalg });
  notes.push(...damping);
  const U = Float32Array.from(Hinv);

  const round = opts.scaleDtype === 'f16' ? (x: number) => {
    const h = f16ToF32(f32ToF16(x));
    if (!Number.isFinite(h)) throw new UsageError(`${at}a BiLLM parameter (${x}) does not fit fp16: use --scale-dtype f32`);
    return h;
  } : (x: number) => x;
  const nb = cols / g;
  const parts = {
    planes: new Uint8Array(2 * rows * planeBytes(cols)), salient: new Uint8Array(cols),
    params: new Float32Array(rows * nb * BILLM_PARAMS), zeroSigns: [] as number[],
  };
  const Q = new Float32Array(rows * cols);
  const salientCounts = new Int32Array(nb), splitIndices = new Int32Array(nb);
  const W1 = new Float32Array(rows * g), d = new Float32Array(g), err = new Float32Array(rows * g);
  for (let b = 0; b < nb; b++) {
    const st = b * g, ed = st + g;
    for (let r = 0; r < rows; r++) W1.set(Wf.subarray(r * cols + st, r * cols + ed), r * g);
    for (let k = 0; k < g; k++) d[k] = U[(st + k) * n + st + k]!;
    const S = salience(W1, rows, g, d);
    let search: BlockSearch;
    try { search = searchBlock(S, rows, g); } catch (e) { throw new LowbitError(`${at}block at column ${st}: ${(e as Error).message}`); }
    opts.onBlock?.({ col0: st, W1: W1.slice(), d: d.slice(), search });
    salientCounts[b] = search.salient;
    splitIndices[b] = search.splitIndex;
    parts.salient.set(search.isSalient, st);
    binarizeBlock(W1, S, g, search.isSalient, search.split, round, {
      rows, cols, col0: st, block: b, blocks: nb, planes: parts.planes, params: parts.params, zeroSigns: parts.zeroSigns, Q,
    });
    if (ed === cols) break;
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < g; k++) err[r * g + k] = Math.fround(Math.fround(W1[r * g + k]! - Q[r * cols + st + k]!) / d[k]!);
    }
    lazyUpdate(Wf, rows, cols, U, st, ed, err, opts.linalg);
  }

  const zeroSigns = Int32Array.from(parts.zeroSigns).sort();
  const salientCols = salientCounts.reduce((a, x) => a + x, 0);
  const paperBits = 1 + salientCols / cols;
  const levels = splitLevels();
  notes.push(`BiLLM: ${paperBits.toFixed(4)} bits per weight as the paper counts them (1 + salient fraction ${(salientCols / cols).toFixed(4)}); `
    + `salient columns per block of ${g}: ${[...salientCounts].join(',')}; break points at the |S| quantiles (%) ${[...splitIndices].map((i) => Math.round(levels[i]! * 100)).join(',')}`
    + (zeroSigns.length ? `; ${zeroSigns.length} zero sign(s)` : ''));
  return {
    Q, salientCounts, splitIndices, paperBits, dampUsed, notes,
    parts: { rows, cols, blockSize: g, planes: parts.planes, salient: parts.salient, params: parts.params, paramsDtype: opts.scaleDtype ?? 'f32', zeroSigns },
  };
}

/**
 * W[:, ed:] −= Err · U[st:ed, ed:], each weight rounded to float32 after its products (float64) are
 * summed: through the provider's float64 GEMM in tiles, or in TypeScript with k ascending.
 */
export function lazyUpdate(W: Float32Array, rows: number, cols: number, U: Float32Array, st: number, ed: number, err: Float32Array,
  linalg?: QuantLinalg): void {
  const g = ed - st, rest = cols - ed;
  const gemm = linalg?.gemmF64?.bind(linalg);
  if (!gemm) {
    const acc = new Float64Array(rest);
    for (let r = 0; r < rows; r++) {
      acc.fill(0);
      for (let k = 0; k < g; k++) {
        const e = err[r * g + k]!, u = (st + k) * cols + ed;
        if (e === 0) continue;
        for (let j = 0; j < rest; j++) acc[j]! += e * U[u + j]!;
      }
      const o = r * cols + ed;
      for (let j = 0; j < rest; j++) W[o + j] = Math.fround(W[o + j]! - acc[j]!);
    }
    return;
  }
  const x = Float64Array.from(err), nc = Math.min(LAZY_COLS, rest);
  const ut = new Float64Array(nc * g), y = new Float64Array(Math.min(LAZY_ROWS, rows) * nc);
  for (let j0 = 0; j0 < rest; j0 += LAZY_COLS) {
    const m = Math.min(LAZY_COLS, rest - j0);
    for (let jj = 0; jj < m; jj++) for (let k = 0; k < g; k++) ut[jj * g + k] = U[(st + k) * cols + ed + j0 + jj]!;
    for (let r0 = 0; r0 < rows; r0 += LAZY_ROWS) {
      const nr = Math.min(LAZY_ROWS, rows - r0);
      gemm(x.subarray(r0 * g, (r0 + nr) * g), ut.subarray(0, m * g), y.subarray(0, nr * m), nr, m, g);
      for (let r = 0; r < nr; r++) {
        const o = (r0 + r) * cols + ed + j0;
        for (let jj = 0; jj < m; jj++) W[o + jj] = Math.fround(W[o + jj]! - y[r * m + jj]!);
      }
    }
  }
}

/** BiLLM as a pipeline method: Hessians, all seven linears of a block from one forward, the `billm` stored kind. */
export const BILLM: QuantMethod = {
  name: 'billm',
  label: 'BiLLM',
  description: 'BiLLM: residual binarization of salient columns, bell-shaped split of the rest, ~1.1 bits (Huang et al., 2024)',
  stats: ['hessian'],
  needsCalibration: true,
  nextInputs: 'quantized',
  sequential: false,
  defaultGroupSize: 128,
  options: {
    percdamp: { kind: 'number', default: 0.01, min: 0, max: 10, flag: '--percdamp', help: 'damping as a fraction of mean(diag H)', key: (v) => `d${v}` },
  },
  format: () => 'billm',
  nominalBits: () => BILLM_NOMINAL_BITS,
  validate(spec) {
    if (spec.bits !== 1) throw new UsageError(`BiLLM binarizes: --wbits 1 (got ${spec.bits})`);
    if (spec.groupSize === -1) throw new UsageError('BiLLM binarizes blocks of columns: --group is the block size (128 as the paper), not -1');
    checkBlockSize(spec.groupSize);
    if (spec.sym) throw new UsageError('BiLLM has no integer grid: drop --sym');
  },
  quantizeLayer(l, o) {
    if (!l.stats?.H) throw new UsageError(`billm needs calibration statistics for ${l.name}`);
    const r = billm(l.W, l.rows, l.cols, l.stats.H, {
      blockSize: o.spec.groupSize, percdamp: o.options.percdamp as number, scaleDtype: o.spec.scaleDtype ?? 'f32', where: l.name, linalg: o.linalg,
      readers: inputReaders(l.linear),
    });
    return { Q: r.Q, stored: { kind: 'billm', parts: billmTensors(r.parts) }, dampUsed: r.dampUsed, notes: r.notes };
  },
};
