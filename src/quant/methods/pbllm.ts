/**
 * PB-LLM, partially binarized LLM (Shang et al., 2023), its post-training path GPTQ-PB as
 * hahnyuan/PB-LLM `gptq_pb/run.py <model> c4 xnor --low_frac F --high_bit 8 --salient_metric hessian
 * [--groupsize G]` runs it (gptq_pb/gptq.py LowHighGPT.fasterquant, low_quant.py, high_quant.py):
 *
 * 1. The salient weights' grid: GPTQ's Quantizer at `highBit` bits, asymmetric, per row, min-max
 *    over the whole original row (range widened to contain 0), fitted once before anything else.
 * 2. Dead columns (H_ii = 0: H_ii = 1, W[:, i] = 0), damping percdamp · mean(diag H), and U, the
 *    upper Cholesky factor of (H + λI)⁻¹: exactly GPTQ's (gptq.ts).
 * 3. The mask, once per layer before the sweep, from that W (dead columns zeroed, no update yet):
 *    per group of G columns (G = cols with group -1), s = W² / diag(U)² over the whole
 *    [rows × G] slice, k = int(rows · G · lowFrac), and every weight with s ≤ the k-th smallest
 *    (0-based) s is binarized: k + 1 of them, plus any ties at the threshold. lowFrac = 0 binarizes
 *    nothing (the reference never runs that rule at 0: `elif args.low_frac:` skips quantization), and
 *    lowFrac = 1 everything (the reference's index would run past the end).
 * 4. The binarizer's μ and α per (row, group), from that W with the salient weights zeroed, zeros
 *    included in the means: μ = Σ_binarized w / G, α = Σ_j |x_j − μ| / G with x_j = w_j or 0.
 * 5. GPTQ's sweep in natural column order (no act-order), blocks of 128 with lazy batch updates,
 *    each column quantized with the frozen parameters: binarized → μ + α·sign(w − μ) (sign 0: μ),
 *    salient → the grid; err = (w − q) / U_jj pushed right. That is gptq.ts's solver with the
 *    per-column quantizer swapped (gptqSolve.ts ColumnQuantizer): the same blocks, the same order.
 *
 * Precision, as lowbit's GPTQ: W and U in float64, every value a float32 tensor would hold rounded
 * with Math.fround (s, μ, α, μ ± α, the grid's scale and dequantized values). The sign of w − μ is
 * taken on the float64 w. The reference casts the final weights to fp16; lowbit keeps float32 Q,
 * exactly what the stored kind (tensor/pbllmPack.ts) decodes to. scaleDtype 'f16' rounds μ, α and
 * the grid's scale through fp16 before the sweep and stores them as fp16.
 *
 * Bits. The nominal figure is the paper's, lowFrac · 1 + (1 − lowFrac) · highBit: 0.9 at 8 bits gives
 * the "1.7-bit" row. The LLaMA-3 study (Huang et al. 2024, Table 1: PB-LLM at #W 2 and 1.7, #G 128)
 * does not say which fraction its 2-bit row used, and its repository (Macaronlin/LLaMA3-Quantization)
 * has no PB-LLM command: it only evaluates fake-quantized checkpoints from its model hub
 * (scripts/eval_fake_ptq.sh); PB-LLM's own scripts use 0.5, 0.8, 0.9 and 0.95 (4.5, 2.4, 1.7, 1.35
 * bits). lowbit's 2-bit row uses 6/7, the fraction that gives exactly 2 bits at 8. What the checkpoint
 * stores (two bit planes, a byte per salient code, μ and α per row and group, the grid per row) is
 * more, and is reported beside it.
 *
 * Column groups. The reference asserts groupsize % blocksize == 0 because it takes the group of a
 * whole 128-column block from the block's first column; lowbit takes each column's own group,
 * which is the same whenever the reference runs, and accepts any group that divides the width.
 */
import { UsageError } from '../../errors.js';
import { f16ToF32, f32ToF16 } from '../../tensor/codecs.js';
import { packPbllm } from '../../tensor/pbllmPack.js';
import { checkBits, maxqOf, paramsFromRange, type ScaleDtype } from '../core/grid.js';
import type { QuantLinalg } from '../core/linalgProvider.js';
import type { QuantMethod } from '../method.js';
import { inputReaders } from '../../model/layout.js';
import { GPTQ } from './gptq.js';
import { inputFactor } from '../core/inverseFactor.js';
import { GptqSolver, gridCode, type BlockColumns, type ColumnQuantizer, type GridState } from './gptqSolve.js';

export interface PbllmOptions {
  /** fraction of each group's weights that is binarized (the reference's low_frac) */
  lowFrac: number;
  /** bits of the salient weights' grid (8) */
  highBit?: number;
  /** columns per group for the mask and μ, α; -1 = the whole row (the reference's default) */
  groupSize: number;
  percdamp?: number;   // 0.01
  blocksize?: number;  // 128
  scaleDtype?: ScaleDtype;
  where?: string;
  linalg?: QuantLinalg;
  /** The layers quantized against this same H (q/k/v 3, gate/up 2; default 1): they share its inverse factor (core/inverseFactor.ts). */
  readers?: number;
}

export interface PbllmResult {
  /** fake-quantized weights [rows, cols] */
  Q: Float32Array;
  /** 1 = binarized, 0 = salient [rows, cols] (the reference's mask, True = low) */
  binarized: Uint8Array;
  /** salient: the grid code; binarized: 0 (μ − α), 1 (w exactly at μ), 2 (μ + α) [rows, cols] */
  codes: Uint8Array;
  mu: Float32Array;    // [rows, groups]
  alpha: Float32Array; // [rows, groups]
  scale: Float32Array; // [rows]
  zero: Uint8Array;    // [rows]
  groupSize: number;   // effective (cols for -1)
  /** Σ (w − q)² / U_jj² / 2, as the reference's Losses */
  loss: number;
  dampUsed: number;
  notes: string[];
}

const SUB_BLOCK = 32, LAZY_BLOCK = 512; // gptq.ts's defaults with a provider gemmF64

/** Nominal bits per weight: lowFrac · 1 + (1 − lowFrac) · highBit (the paper's accounting; 0.9 → 1.7), to 6 decimals. */
export function pbllmNominalBits(lowFrac: number, highBit: number): number {
  return Math.round((lowFrac + (1 - lowFrac) * highBit) * 1e6) / 1e6;
}

const f16 = (x: number) => f16ToF32(f32ToF16(x));

export function pbllm(W: Float32Array, rows: number, cols: number, H: Float64Array, o: PbllmOptions): PbllmResult {
  const at = o.where ? `${o.where}: ` : '';
  const highBit = o.highBit ?? 8, lowFrac = o.lowFrac, blocksize = o.blocksize ?? 128, percdamp = o.percdamp ?? 0.01;
  const G = o.groupSize === -1 ? cols : o.groupSize;
  if (!Number.isInteger(G) || G < 1 || cols % G !== 0) throw new UsageError(`${at}group size ${o.groupSize} does not divide the ${cols} input columns (use -1 for one group per row)`);
  if (!(lowFrac >= 0 && lowFrac <= 1)) throw new UsageError(`${at}the low fraction must be in 0..1, got ${lowFrac}`);
  checkBits(highBit, 8, o.where);
  if (!Number.isInteger(blocksize) || blocksize < 1) throw new UsageError(`${at}blocksize must be a positive integer, got ${blocksize}`);
  if (W.length !== rows * cols) throw new UsageError(`${at}weight has ${W.length} values, expected ${rows}x${cols}`);
  if (H.length !== cols * cols) throw new UsageError(`${at}Hessian has ${H.length} values, expected ${cols}x${cols}`);
  const n = cols, nGroups = cols / G, maxq = maxqOf(highBit), notes: string[] = [];

  // 1. W in float64; the salient grid per row from the whole original row.
  const Wd = new Float64Array(rows * cols);
  for (let i = 0; i < W.length; i++) {
    const x = W[i]!;
    if (!Number.isFinite(x)) throw new UsageError(`${at}weight [${Math.floor(i / cols)}, ${i % cols}] is ${x}`);
    Wd[i] = x;
  }
  const scale = new Float32Array(rows), zero = new Uint8Array(rows);
  const gScale = new Float64Array(rows), gZero = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let min = Infinity, max = -Infinity;
    for (let i = r * cols; i < (r + 1) * cols; i++) { const x = Wd[i]!; if (x < min) min = x; if (x > max) max = x; }
    const p = paramsFromRange(min, max, highBit, false, o.scaleDtype);
    scale[r] = gScale[r] = p.scale; zero[r] = gZero[r] = p.zero;
  }

  // 2. Dead columns (their weights zeroed), damping, U = chol_upper((H + λI)⁻¹) in Hinv: one factor per input.
  let dead = 0;
  for (let i = 0; i < n; i++) {
    if (H[i * n + i] === 0) { for (let r = 0; r < rows; r++) Wd[r * cols + i] = 0; dead++; }
  }
  if (dead > 0) notes.push(`${dead} dead input column(s) (H_ii = 0): weights zeroed`);
  const { Hinv, dampUsed, notes: damping } = inputFactor(H, n, { readers: o.readers, percdamp, at, linalg: o.linalg });
  notes.push(...damping);

  // 3. The mask, 4. μ and α: from W before the sweep.
  const binarized = binarizedMask(Wd, rows, cols, G, Hinv, lowFrac);
  const mu = new Float32Array(rows * nGroups), alpha = new Float32Array(rows * nGroups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < nGroups; g++) {
      const c0 = r * cols + g * G;
      let sum = 0;
      for (let i = c0; i < c0 + G; i++) sum += Wd[i]! * binarized[i]!; // the salient weights as zeros
      const m = Math.fround(sum / G);
      let dev = 0;
      for (let i = c0; i < c0 + G; i++) dev += Math.abs(Math.fround(Wd[i]! * binarized[i]! - m));
      const a = Math.fround(dev / G);
      mu[r * nGroups + g] = o.scaleDtype === 'f16' ? f16(m) : m;
      alpha[r * nGroups + g] = o.scaleDtype === 'f16' ? f16(a) : a;
    }
  }

  // 5. The sweep: gptq.ts's solver, each column through the blend of binarizer and grid.
  const maskT = new Uint8Array(rows * cols); // [col][row], transposed 64 rows at a time
  for (let r0 = 0; r0 < rows; r0 += 64) {
    const r1 = Math.min(r0 + 64, rows);
    for (let c = 0; c < cols; c++) for (let r = r0, i = r0 * cols + c; r < r1; r++, i += cols) maskT[c * rows + r] = binarized[i]!;
  }
  const muT = new Float64Array(rows * nGroups), hiT = new Float64Array(rows * nGroups), loT = new Float64Array(rows * nGroups); // [group][row]
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < nGroups; g++) {
      const m = mu[r * nGroups + g]!, a = alpha[r * nGroups + g]!, t = g * rows + r;
      muT[t] = m; hiT[t] = Math.fround(m + a); loT[t] = Math.fround(m - a);
    }
  }
  const column: ColumnQuantizer = (P, codesP, qP, off, R, r0, col, d) => {
    const mo = col * rows + r0, po = Math.floor(col / G) * rows + r0;
    let loss = 0;
    for (let r = 0; r < R; r++) {
      const x = P[off + r]!;
      let code: number, q: number;
      if (maskT[mo + r]) {
        const m = muT[po + r]!;
        if (x > m) { code = 2; q = hiT[po + r]!; } else if (x < m) { code = 0; q = loT[po + r]!; } else { code = 1; q = m; }
      } else {
        const s = gScale[r0 + r]!, z = gZero[r0 + r]!;
        code = gridCode(x, s, z, maxq);
        q = Math.fround(s * (code - z));
      }
      codesP[off + r] = code;
      qP[off + r] = q;
      const e = (x - q) / d;
      loss += (e * e) / 2;
      P[off + r] = e;
    }
    return loss;
  };
  const gemm64 = o.linalg?.gemmF64?.bind(o.linalg);
  const sub = gemm64 ? SUB_BLOCK : blocksize;
  const outer = Math.max(1, Math.floor((gemm64 ? LAZY_BLOCK : blocksize) / blocksize)) * blocksize;
  const grid: GridState = {
    spec: { bits: highBit, groupSize: -1, sym: false }, gs: cols, nGroups: 1,
    scale: gScale, zero: gZero, scales: new Float32Array(rows), zeros: new Uint8Array(rows),
  };
  const solver = new GptqSolver(Wd, rows, cols, Hinv, grid, {
    maxq, blocksize, outer, sub, column, ...(gemm64 ? { gemm64 } : {}), lazy: gemm64 ? { kind: 'f64', gemm: gemm64 } : { kind: 'ts' },
  });
  const codes = new Uint8Array(rows * cols), Q = new Float32Array(rows * cols);
  const width = Math.min(outer, cols);
  const bc: BlockColumns = { col: new Int32Array(width), paramOffset: new Int32Array(width), groupStart: new Int32Array(width).fill(-1) };
  let loss = 0;
  for (let o1 = 0; o1 < cols; o1 += outer) {
    const o2 = Math.min(o1 + outer, cols);
    for (let j = o1; j < o2; j++) bc.col[j - o1] = j;
    loss += solver.solveBlock(o1, o2, bc, codes, Q);
  }
  let ties = 0;
  for (let i = 0; i < codes.length; i++) if (binarized[i] && codes[i] === 1) ties++;
  if (ties > 0) notes.push(`${ties} binarized weight(s) exactly at μ (sign 0): stored as μ`);
  return { Q, binarized, codes, mu, alpha, scale, zero, groupSize: G, loss, dampUsed, notes };
}

/**
 * 1 = binarized, per group of G columns: s = fround(w²) / fround(U_jj²) in float32, and s ≤ the
 * k-th smallest s of the [rows × G] slice, k = int(rows · G · lowFrac) (lowFrac 0: none; 1: all).
 */
export function binarizedMask(Wd: Float64Array, rows: number, cols: number, G: number, U: Float64Array, lowFrac: number): Uint8Array {
  const mask = new Uint8Array(rows * cols);
  if (lowFrac === 0) return mask;
  const u2 = new Float32Array(cols);
  for (let j = 0; j < cols; j++) { const u = Math.fround(U[j * cols + j]!); u2[j] = Math.fround(u * u); }
  const numel = rows * G, s = new Float32Array(numel), work = new Float32Array(numel);
  const k = Math.min(Math.floor(numel * lowFrac), numel - 1);
  for (let c0 = 0; c0 < cols; c0 += G) {
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < G; j++) {
        const w = Wd[r * cols + c0 + j]!;
        s[r * G + j] = Math.fround(w * w) / u2[c0 + j]!;
      }
    }
    work.set(s);
    const thresh = kthSmallest(work, k);
    for (let r = 0; r < rows; r++) for (let j = 0, o = r * cols + c0, t = r * G; j < G; j++) mask[o + j] = s[t + j]! <= thresh ? 1 : 0;
  }
  return mask;
}

/** The k-th smallest (0-based) of a, which it reorders: quickselect with three-way partitions (many equal values stay linear). */
export function kthSmallest(a: Float32Array, k: number): number {
  let lo = 0, hi = a.length - 1;
  for (;;) {
    if (lo >= hi) return a[lo]!;
    const x = a[lo]!, y = a[(lo + hi) >>> 1]!, z = a[hi]!;
    const p = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y); // median of three
    let lt = lo, i = lo, gt = hi;
    while (i <= gt) {
      const v = a[i]!;
      if (v < p) { a[i] = a[lt]!; a[lt++] = v; i++; } else if (v > p) { a[i] = a[gt]!; a[gt--] = v; } else i++;
    }
    if (k < lt) hi = lt - 1; else if (k > gt) lo = gt + 1; else return p;
  }
}

/** PB-LLM as a pipeline method: Hessians from one forward of the float block, the `pbllm` stored kind. */
export const PBLLM: QuantMethod = {
  name: 'pbllm',
  label: 'PB-LLM',
  description: 'PB-LLM: salient weights at 8 bits, the rest binarized, GPTQ error compensation (Shang et al., 2023; hahnyuan/PB-LLM gptq_pb)',
  stats: ['hessian'],
  needsCalibration: true,
  defaultGroupSize: 128,
  symmetric: false,
  nextInputs: 'quantized',
  sequential: false,
  options: {
    lowFrac: {
      kind: 'number', default: 0.9, min: 0, max: 1, flag: '--low-frac', key: (v) => `lf${Number((v as number).toFixed(4))}`,
      help: 'fraction of each group\'s weights binarized, the rest salient at --high-bit (0.9: 1.7 bits; 6/7: 2 bits)',
    },
    highBit: { kind: 'integer', default: 8, min: 1, max: 8, flag: '--high-bit', help: 'bits of the salient weights\' per-row asymmetric grid', key: (v) => `hb${v}` },
    percdamp: GPTQ.options.percdamp!,
  },
  format: () => 'pbllm',
  nominalBits: (_spec, options) => pbllmNominalBits(options.lowFrac as number, options.highBit as number),
  validate(spec) {
    if (spec.bits !== 1) throw new UsageError(`pbllm binarizes the non-salient weights: --wbits must be 1, got ${spec.bits} (the salient weights' bits are --high-bit, their share 1 − --low-frac)`);
  },
  quantizeLayer(l, o) {
    if (!l.stats?.H) throw new UsageError(`pbllm needs calibration statistics for ${l.name}`);
    if (l.cols % 8 !== 0) throw new UsageError(`${l.name}: pbllm stores 8 binary weights a byte and needs an input width that is a multiple of 8, got ${l.cols}`);
    const r = pbllm(l.W, l.rows, l.cols, l.stats.H, {
      lowFrac: o.options.lowFrac as number, highBit: o.options.highBit as number, groupSize: o.spec.groupSize,
      percdamp: o.options.percdamp as number, where: l.name, ...(o.spec.scaleDtype ? { scaleDtype: o.spec.scaleDtype } : {}),
      ...(o.linalg ? { linalg: o.linalg } : {}), readers: inputReaders(l.linear),
    });
    const stored = packPbllm({ rows: l.rows, cols: l.cols, ...r, paramDtype: o.spec.scaleDtype === 'f16' ? 'f16' : 'f32' });
    return { Q: r.Q, stored: { kind: 'pbllm', parts: stored }, dampUsed: r.dampUsed, notes: r.notes };
  },
};
