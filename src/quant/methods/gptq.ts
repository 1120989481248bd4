/**
 * GPTQ (Frantar et al. 2022, Algorithm 1), following IST-DASLab/gptq gptq.py `fasterquant` line for line:
 * dead columns, act-order, damping percdamp · mean(diag H), Hinv = upper Cholesky factor of H⁻¹,
 * blocks of `blocksize` columns quantized one column at a time with err1 = (w - q) / d pushed right
 * inside the block, then the lazy batch update W[:, i2:] -= Err1 · Hinv[i1:i2, i2:].
 *
 * Details kept from gptq.py on purpose:
 * - per-channel parameters come from W before dead columns are zeroed (`find_params(W)` runs first);
 * - with groups (static_groups false), a group's parameters are found when its first column is
 *   reached, from W as it stood at the start of the current block (gptq.py reads W, not the
 *   block's working copy W1): lazy updates of earlier blocks are in, this block's are not;
 * - act-order sorts columns by decreasing diag H (ties by index), groups are formed in that permuted
 *   order and g_idx maps every original column to its group; static_groups finds every group's
 *   parameters up front from the unpermuted W (after dead-column zeroing) and keeps g_idx = c / g.
 *
 * Layout: W is row-major [rows, cols]; we work on Wt = Wᵀ [cols, rows] in float64 so that a column of
 * W, which every step reads or updates across all rows, is contiguous.
 *
 * Linear algebra provider (opts.linalg, see core/linalgProvider.ts): its cholesky and
 * triangularInverse compute Hinv (float64, the same factor as the TypeScript route to ~1e-15). The
 * lazy batch update, most of the solve's flops (≈ rows · cols²), goes to the provider's gemmF64 when
 * it has one, else stays in float64 TypeScript. The provider's float32 gemm (BLAS sgemm) is not
 * exact enough to be the default: rounding Err1 and Hinv to float32 and summing in float32 leaves
 * ~1e-7 relative error in each update, and GPTQ amplifies it: a weight near a rounding boundary takes
 * the neighbouring code, that column's err1 changes by a whole grid step, and the rest of the row
 * (and later groups' ranges) follow (2-bit test layers: ~1e-3 relative loss difference, codes of
 * whole row tails different). gptq.py runs in float32 throughout and has the same sensitivity, so
 * `lazyUpdate: 'f32'` opts in to the sgemm for speed; results then agree with the reference in loss,
 * not code for code.
 */
import { LowbitError, UsageError } from '../../errors.js';
import {
  QuantSpec, QuantizedMatrix, checkSpec, dequantize, maxqOf, paramsFromRange, quantize,
} from '../core/grid.js';
import { QuantLinalg, upperCholeskyOfInverse } from '../core/linalgProvider.js';

export interface GptqOptions {
  spec: QuantSpec;
  blocksize?: number;     // 128
  percdamp?: number;      // 0.01
  actOrder?: boolean;     // false
  staticGroups?: boolean; // false
  /** Times the damping is multiplied by 10 after a failed Cholesky before giving up (3). */
  maxDampRetries?: number;
  /** Work in H's own buffer (it is destroyed) instead of a copy: saves cols² · 8 bytes. */
  consumeH?: boolean;
  /** Layer name for error messages. */
  where?: string;
  /** Provider for Hinv (cholesky + triangularInverse) and the lazy batch update (gemm); default: TypeScript. */
  linalg?: QuantLinalg;
  /** Lazy batch update: 'f64' (default; provider's gemmF64 or TypeScript) or 'f32' (provider's gemm, as gptq.py). */
  lazyUpdate?: 'f64' | 'f32';
}

export interface GptqResult extends QuantizedMatrix {
  /** The fake-quantized weights [rows, cols] (= dequantizeMatrix of codes/scales/zeros/gIdx). */
  Q: Float32Array;
  /** Act-order permutation: position j of the processing order is original column perm[j]. */
  perm?: Int32Array;
  /** Σ of gptq.py's Losses: Σ (w - q)² / d² / 2. */
  loss: number;
  /** The damping actually used, as a fraction of mean(diag H) (percdamp, times 10 per retry). */
  dampUsed: number;
  notes: string[];
}

const ROW_CHUNK = 256;    // rows per panel in the lazy batch update
const GEMM_PANEL = 2048;  // target columns per gemm call in the provider's lazy batch update

export function gptq(W: Float32Array, rows: number, cols: number, H: Float64Array, opts: GptqOptions): GptqResult {
  const { spec, where } = opts;
  const blocksize = opts.blocksize ?? 128, percdamp = opts.percdamp ?? 0.01;
  const actOrder = opts.actOrder ?? false, staticGroups = opts.staticGroups ?? false;
  const gs = checkSpec(spec, cols, where);
  const at = where ? `${where}: ` : '';
  if (W.length !== rows * cols) throw new UsageError(`${at}weight has ${W.length} values, expected ${rows}x${cols}`);
  if (H.length !== cols * cols) throw new UsageError(`${at}Hessian has ${H.length} values, expected ${cols}x${cols}`);
  if (!Number.isInteger(blocksize) || blocksize < 1) throw new UsageError(`${at}blocksize must be a positive integer, got ${blocksize}`);
  const perChannel = spec.groupSize === -1;
  const nGroups = cols / gs, maxq = maxqOf(spec.bits), n = cols;
  const notes: string[] = [];

  // Wt = Wᵀ in float64; per-channel parameters from the untouched W, as gptq.py.
  let Wt = new Float64Array(cols * rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const x = W[r * cols + c]!;
      if (!Number.isFinite(x)) throw new UsageError(`${at}weight [${r}, ${c}] is ${x}`);
      Wt[c * rows + r] = x;
    }
  }
  const chScale = new Float64Array(rows), chZero = new Float64Array(rows);
  if (perChannel) rangeParams(Wt, rows, 0, cols, spec, chScale, chZero);

  // Dead columns: H_ii = 0 -> H_ii = 1, W[:, i] = 0.
  const diagH = new Float64Array(n);
  let dead = 0;
  for (let i = 0; i < n; i++) {
    diagH[i] = H[i * n + i]!;
    if (diagH[i] === 0) { diagH[i] = 1; Wt.fill(0, i * rows, (i + 1) * rows); dead++; }
  }
  if (dead > 0) notes.push(`${dead} dead input column(s) (H_ii = 0): weights zeroed`);

  // Static groups: every group's parameters from the unpermuted W, stored [group][row].
  let stScale: Float64Array | undefined, stZero: Float64Array | undefined;
  if (!perChannel && staticGroups) {
    stScale = new Float64Array(nGroups * rows); stZero = new Float64Array(nGroups * rows);
    for (let g = 0; g < nGroups; g++) {
      rangeParams(Wt, rows, g * gs, (g + 1) * gs, spec, stScale.subarray(g * rows), stZero.subarray(g * rows));
    }
  }

  // Act-order: columns by decreasing diag H; Wt's rows and Hinv's rows/columns in that order.
  let perm: Int32Array | undefined;
  let Hinv: Float64Array;
  if (actOrder) {
    perm = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => diagH[b]! - diagH[a]! || a - b);
    const Wp = new Float64Array(cols * rows);
    for (let j = 0; j < n; j++) Wp.set(Wt.subarray(perm[j]! * rows, (perm[j]! + 1) * rows), j * rows);
    Wt = Wp;
    Hinv = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      const src = perm[i]! * n, dst = i * n;
      for (let j = 0; j < n; j++) Hinv[dst + j] = H[src + perm[j]!]!;
    }
    for (let i = 0; i < n; i++) Hinv[i * n + i] = diagH[perm[i]!]!;
  } else {
    Hinv = opts.consumeH ? H : H.slice();
    for (let i = 0; i < n; i++) Hinv[i * n + i] = diagH[i]!;
  }

  const { linalg } = opts;
  const dampUsed = dampedInverseFactor(Hinv, n, percdamp, opts.maxDampRetries ?? 3, notes, at, linalg);
  const gemm32 = opts.lazyUpdate === 'f32' ? linalg?.gemm?.bind(linalg) : undefined;
  const gemm64 = linalg?.gemmF64?.bind(linalg);

  // Outputs in the original column order.
  const codes = new Uint8Array(rows * cols), Q = new Float32Array(rows * cols);
  const scales = new Float32Array(rows * nGroups), zeros = new Uint8Array(rows * nGroups);
  const gIdx = new Int32Array(cols);
  let scale: Float64Array = perChannel ? chScale : new Float64Array(rows);
  let zero: Float64Array = perChannel ? chZero : new Float64Array(rows);
  if (perChannel) for (let r = 0; r < rows; r++) { scales[r] = scale[r]!; zeros[r] = zero[r]!; }
  if (stScale && stZero) {
    for (let g = 0; g < nGroups; g++) {
      for (let r = 0; r < rows; r++) { scales[r * nGroups + g] = stScale[g * rows + r]!; zeros[r * nGroups + g] = stZero[g * rows + r]!; }
    }
  }

  const width = Math.min(blocksize, cols);
  const W1 = new Float64Array(width * rows);   // the block's working columns
  const Err1 = new Float64Array(width * rows); // (w - q) / d per column of the block
  let loss = 0;

  for (let i1 = 0; i1 < cols; i1 += blocksize) {
    const i2 = Math.min(i1 + blocksize, cols), count = i2 - i1;
    W1.set(Wt.subarray(i1 * rows, i2 * rows));

    for (let i = 0; i < count; i++) {
      const j = i1 + i;                      // position in processing order
      const c = perm ? perm[j]! : j;         // original column
      let g = 0;
      if (!perChannel) {
        if (stScale && stZero) {
          g = Math.floor(c / gs);
          scale = stScale.subarray(g * rows, (g + 1) * rows);
          zero = stZero.subarray(g * rows, (g + 1) * rows);
        } else {
          g = Math.floor(j / gs);
          if (j % gs === 0) {
            rangeParams(Wt, rows, j, Math.min(j + gs, cols), spec, scale, zero);
            for (let r = 0; r < rows; r++) { scales[r * nGroups + g] = scale[r]!; zeros[r * nGroups + g] = zero[r]!; }
          }
        }
      }
      gIdx[c] = g;

      const d = Hinv[j * n + j]!;
      const e = i * rows; // column i of W1 and of Err1
      for (let r = 0; r < rows; r++) {
        const x = W1[e + r]!;
        const code = quantize(x, scale[r]!, zero[r]!, maxq);
        const q = dequantize(code, scale[r]!, zero[r]!);
        codes[r * cols + c] = code;
        Q[r * cols + c] = q;
        const err = (x - q) / d;
        loss += (err * err) / 2;
        Err1[e + r] = err;
      }
      // W1[:, i+1:] -= err1 · Hinv1[i, i+1:]
      const hrow = j * n;
      for (let k = i + 1; k < count; k++) {
        const h = Hinv[hrow + i1 + k]!;
        if (h === 0) continue;
        const wk = k * rows;
        for (let r = 0; r < rows; r++) W1[wk + r]! -= Err1[e + r]! * h;
      }
    }
    if (gemm32) lazyBatchUpdateGemm(gemm32, (m) => new Float32Array(m), Wt, rows, cols, Hinv, Err1, i1, i2);
    else if (gemm64) lazyBatchUpdateGemm(gemm64, (m) => new Float64Array(m), Wt, rows, cols, Hinv, Err1, i1, i2);
    else lazyBatchUpdate(Wt, rows, cols, Hinv, Err1, i1, i2);
  }

  return { Q, codes, scales, zeros, gIdx, ...(perm ? { perm } : {}), loss, dampUsed, notes };
}

/** Per-row grid parameters over columns [c0, c1) of Wt (rows of Wt are columns of W). */
function rangeParams(Wt: Float64Array, rows: number, c0: number, c1: number, spec: QuantSpec, scale: Float64Array, zero: Float64Array): void {
  const min = new Float64Array(rows).fill(Infinity), max = new Float64Array(rows).fill(-Infinity);
  for (let c = c0; c < c1; c++) {
    const o = c * rows;
    for (let r = 0; r < rows; r++) {
      const x = Wt[o + r]!;
      if (x < min[r]!) min[r] = x;
      if (x > max[r]!) max[r] = x;
    }
  }
  for (let r = 0; r < rows; r++) {
    const p = paramsFromRange(min[r]!, max[r]!, spec.bits, spec.sym, spec.scaleDtype);
    scale[r] = p.scale; zero[r] = p.zero;
  }
}

/**
 * Adds percdamp · mean(diag H) to the diagonal and replaces Hinv (holding H) with the upper Cholesky
 * factor of its inverse. A failed factorization multiplies the damping by 10, up to maxRetries times.
 */
function dampedInverseFactor(Hinv: Float64Array, n: number, percdamp: number, maxRetries: number, notes: string[], at: string,
  linalg?: QuantLinalg): number {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += Hinv[i * n + i]!;
  mean /= n;
  const diag0 = new Float64Array(n);
  for (let i = 0; i < n; i++) diag0[i] = Hinv[i * n + i]!;
  let frac = percdamp;
  for (let attempt = 0; ; attempt++) {
    const damp = frac * mean;
    for (let i = 0; i < n; i++) Hinv[i * n + i] = diag0[i]! + damp;
    if (upperCholeskyOfInverse(Hinv, n, linalg)) {
      if (attempt > 0) notes.push(`Cholesky failed with damping ${percdamp}; succeeded with ${frac} of mean(diag H)`);
      return frac;
    }
    if (attempt >= maxRetries) {
      throw new LowbitError(`${at}the Hessian is not positive definite even with damping ${frac} of mean(diag H) `
        + `(${attempt} retries from ${percdamp}); use more calibration samples or a larger damping`);
    }
    frac *= 10;
  }
}

/** W[:, i2:] -= Err1 · Hinv[i1:i2, i2:], panel by panel of ROW_CHUNK rows so Err1's panel stays in cache. */
function lazyBatchUpdate(Wt: Float64Array, rows: number, cols: number, Hinv: Float64Array, Err1: Float64Array, i1: number, i2: number): void {
  const count = i2 - i1, n = cols, rest = cols - i2;
  if (rest <= 0) return;
  // C[j'][k] = Hinv[i1 + k][i2 + j'], contiguous per target column.
  const C = new Float64Array(rest * count);
  for (let k = 0; k < count; k++) {
    const h = (i1 + k) * n + i2;
    for (let jj = 0; jj < rest; jj++) C[jj * count + k] = Hinv[h + jj]!;
  }
  for (let r0 = 0; r0 < rows; r0 += ROW_CHUNK) {
    const r1 = Math.min(r0 + ROW_CHUNK, rows);
    for (let jj = 0; jj < rest; jj++) {
      const wo = (i2 + jj) * rows, co = jj * count;
      let k = 0;
      for (; k + 3 < count; k += 4) {
        const c0 = C[co + k]!, c1 = C[co + k + 1]!, c2 = C[co + k + 2]!, c3 = C[co + k + 3]!;
        const e0 = k * rows, e1 = e0 + rows, e2 = e1 + rows, e3 = e2 + rows;
        for (let r = r0; r < r1; r++) {
          Wt[wo + r]! -= c0 * Err1[e0 + r]! + c1 * Err1[e1 + r]! + c2 * Err1[e2 + r]! + c3 * Err1[e3 + r]!;
        }
      }
      for (; k < count; k++) {
        const c0 = C[co + k]!, e0 = k * rows;
        for (let r = r0; r < r1; r++) Wt[wo + r]! -= c0 * Err1[e0 + r]!;
      }
    }
  }
}

/**
 * The same update through a provider's gemm, y[M,N] = x[M,K]·w[N,K]ᵀ with M target columns, N = rows,
 * K = count: x = Hinv[i1:i2, i2:]ᵀ, w = Err1ᵀ, and Wt[i2 + j'] -= y[j'], in panels of GEMM_PANEL columns.
 */
function lazyBatchUpdateGemm<A extends Float32Array | Float64Array>(
  gemm: (x: A, w: A, y: A, M: number, N: number, K: number) => void, alloc: (length: number) => A,
  Wt: Float64Array, rows: number, cols: number, Hinv: Float64Array, Err1: Float64Array, i1: number, i2: number): void {
  const count = i2 - i1, n = cols, rest = cols - i2;
  if (rest <= 0) return;
  const E = alloc(rows * count); // Err1ᵀ [rows, count]
  for (let k = 0; k < count; k++) for (let r = 0; r < rows; r++) E[r * count + k] = Err1[k * rows + r]!;
  const panel = Math.min(GEMM_PANEL, rest);
  const C = alloc(panel * count), y = alloc(panel * rows);
  for (let j0 = 0; j0 < rest; j0 += panel) {
    const m = Math.min(panel, rest - j0);
    for (let k = 0; k < count; k++) {
      const h = (i1 + k) * n + i2 + j0;
      for (let jj = 0; jj < m; jj++) C[jj * count + k] = Hinv[h + jj]!;
    }
    gemm(C.subarray(0, m * count) as A, E, y.subarray(0, m * rows) as A, m, rows, count);
    const wo = (i2 + j0) * rows;
    for (let i = 0; i < m * rows; i++) Wt[wo + i]! -= y[i]!;
  }
}
