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
 * Layout: W is copied to float64, row-major [rows, cols], columns in processing order; the loops
 * themselves (row panels, left-looking updates, nested blocks, the lazy update) are in gptqSolve.ts.
 *
 * Linear algebra provider (opts.linalg, see core/linalgProvider.ts): its cholesky and
 * triangularInverse compute Hinv (float64, the same factor as the TypeScript route to ~1e-15). The
 * lazy batch update, most of the solve's flops (≈ rows · cols²), goes to the provider's gemmF64 when
 * it has one, else stays in float64 TypeScript. With gemmF64 the blocks are also nested (gptqSolve.ts):
 * lazy updates every `lazyBlock` columns (512), gptq.py's blocks of `blocksize` inside, sub-blocks of
 * `subBlock` (32) inside those, the pushes between them float64 GEMMs. That is the same algorithm in
 * exact arithmetic, so results differ from the plain route (subBlock = lazyBlock = blocksize) only by
 * float64 rounding. Without gemmF64 the plain route is the default and every weight sees gptq.py's
 * per-column subtractions in gptq.py's order, in TypeScript, bit for bit as before the nesting (a
 * smaller subBlock keeps those bits too; a larger lazyBlock regroups the lazy update's sums).
 *
 * The provider's float32 gemm (BLAS sgemm) is not exact enough to be the default: rounding Err1 and
 * Hinv to float32 and summing in float32 leaves ~1e-7 relative error in each update, and GPTQ
 * amplifies it: a weight near a rounding boundary takes the neighbouring code, that column's err1
 * changes by a whole grid step, and the rest of the row (and later groups' ranges) follow (2-bit test
 * layers: ~1e-3 relative loss difference, codes of whole row tails different). gptq.py runs in float32 throughout and has the same sensitivity, so
 * `lazyUpdate: 'f32'` opts in to the sgemm for speed (for the lazy update only; the pushes inside a
 * lazy block stay float64); results then agree with the reference in loss, not code for code.
 */
import { UsageError } from '../../errors.js';
import { QuantSpec, QuantizedMatrix, checkSpec, maxqOf, paramsFromRange } from '../core/grid.js';
import type { QuantLinalg } from '../core/linalgProvider.js';
import { dampedInverseFactor, dampingRetried, factorKey, FactorShare, InverseFactor, keepFactor, notPositiveDefinite, takeFactor } from '../core/inverseFactor.js';
import { BlockColumns, GptqSolver, GridState } from './gptqSolve.js';
import type { QuantMethod } from '../method.js';
import type { Backend, GptqDeviceFactor } from '../../backend/backend.js';
import { inputReaders } from '../../model/layout.js';

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
  /**
   * The layers quantized against this same H (q/k/v 3, gate/up 2; default 1): they share its inverse factor
   * (core/inverseFactor.ts: factored once, the same bits). Not with consumeH (H is the factor's buffer then).
   */
  readers?: number;
  /** Provider for Hinv (cholesky + triangularInverse) and the lazy batch update (gemm); default: TypeScript. */
  linalg?: QuantLinalg;
  /** Lazy batch update: 'f64' (default; provider's gemmF64 or TypeScript) or 'f32' (provider's gemm, as gptq.py). */
  lazyUpdate?: 'f64' | 'f32';
  /**
   * Columns per sub-block: quantized with per-column updates, then pushed to the rest of their block
   * in one GEMM. Default 32 with a provider gemmF64, else blocksize (no sub-blocks).
   */
  subBlock?: number;
  /**
   * Columns per lazy batch update, rounded down to a multiple of blocksize (the pushes between the
   * blocksize blocks inside are GEMMs). Default 512 with a provider gemmF64, else blocksize; with
   * dynamic groups it falls back to blocksize unless it is a multiple of the group size.
   */
  lazyBlock?: number;
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

const SUB_BLOCK = 32, LAZY_BLOCK = 512; // defaults with a provider gemmF64

/** What both solves start from: W and H in processing order, the grid, and each column's group. */
interface Prepared {
  Wd: Float64Array;
  /** H in processing order with dead columns' diagonal set to 1, not yet damped (unless prepare was told it is not needed) */
  Hp?: Float64Array;
  /** diag H in processing order, dead columns' set to 1 (Hp's diagonal, whether or not Hp was made) */
  diag: Float64Array;
  perm?: Int32Array;
  grid: GridState;
  gIdx: Int32Array;
  /** per processing position: its group, and the dynamic group that starts there (else −1) */
  group: Int32Array;
  groupStart: Int32Array;
  blocksize: number;
  percdamp: number;
  maxq: number;
  notes: string[];
  at: string;
}

function prepare(W: Float32Array, rows: number, cols: number, H: Float64Array, opts: GptqOptions, withH = true): Prepared {
  const { spec, where } = opts;
  const blocksize = opts.blocksize ?? 128, percdamp = opts.percdamp ?? 0.01;
  const actOrder = opts.actOrder ?? false, staticGroups = opts.staticGroups ?? false;
  const gs = checkSpec(spec, cols, where);
  const at = where ? `${where}: ` : '';
  if (W.length !== rows * cols) throw new UsageError(`${at}weight has ${W.length} values, expected ${rows}x${cols}`);
  if (H.length !== cols * cols) throw new UsageError(`${at}Hessian has ${H.length} values, expected ${cols}x${cols}`);
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`${at}${name} must be a positive integer, got ${v}`);
  };
  positive('blocksize', blocksize);
  if (opts.subBlock !== undefined) positive('subBlock', opts.subBlock);
  if (opts.lazyBlock !== undefined) positive('lazyBlock', opts.lazyBlock);
  const perChannel = spec.groupSize === -1;
  const nGroups = cols / gs, maxq = maxqOf(spec.bits), n = cols;
  const notes: string[] = [];

  // W in float64; per-channel parameters from the untouched W, as gptq.py.
  let Wd = new Float64Array(rows * cols);
  for (let i = 0; i < W.length; i++) {
    const x = W[i]!;
    if (!Number.isFinite(x)) throw new UsageError(`${at}weight [${Math.floor(i / cols)}, ${i % cols}] is ${x}`);
    Wd[i] = x;
  }
  const chScale = new Float64Array(rows), chZero = new Float64Array(rows);
  if (perChannel) rangeParams(Wd, rows, cols, 0, cols, spec, chScale, chZero);

  // Dead columns: H_ii = 0 -> H_ii = 1, W[:, i] = 0.
  const diagH = new Float64Array(n);
  let dead = 0;
  for (let i = 0; i < n; i++) {
    diagH[i] = H[i * n + i]!;
    if (diagH[i] === 0) { diagH[i] = 1; for (let r = 0; r < rows; r++) Wd[r * cols + i] = 0; dead++; }
  }
  if (dead > 0) notes.push(`${dead} dead input column(s) (H_ii = 0): weights zeroed`);

  // Static groups: every group's parameters from the unpermuted W, stored [group][row].
  let stScale: Float64Array | undefined, stZero: Float64Array | undefined;
  if (!perChannel && staticGroups) {
    stScale = new Float64Array(nGroups * rows); stZero = new Float64Array(nGroups * rows);
    for (let g = 0; g < nGroups; g++) {
      rangeParams(Wd, rows, cols, g * gs, (g + 1) * gs, spec, stScale.subarray(g * rows), stZero.subarray(g * rows));
    }
  }

  // Act-order: columns by decreasing diag H; W's columns and H's rows/columns in that order.
  let perm: Int32Array | undefined;
  let Hp: Float64Array | undefined;
  if (actOrder) {
    perm = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => diagH[b]! - diagH[a]! || a - b);
    const Wp = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let j = 0; j < n; j++) Wp[o + j] = Wd[o + perm[j]!]!;
    }
    Wd = Wp;
    if (withH) {
      Hp = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        const src = perm[i]! * n, dst = i * n;
        for (let j = 0; j < n; j++) Hp[dst + j] = H[src + perm[j]!]!;
      }
      for (let i = 0; i < n; i++) Hp[i * n + i] = diagH[perm[i]!]!;
    }
  } else if (withH) {
    Hp = opts.consumeH ? H : H.slice();
    for (let i = 0; i < n; i++) Hp[i * n + i] = diagH[i]!;
  }

  // Outputs in the original column order. Grid parameters [group][row]: per channel one group; static
  // groups all found above; dynamic groups found by the solver when their first column is reached.
  const scales = new Float32Array(rows * nGroups), zeros = new Uint8Array(rows * nGroups);
  const grid: GridState = {
    spec, gs, nGroups, scales, zeros,
    scale: perChannel ? chScale : stScale ?? new Float64Array(nGroups * rows),
    zero: perChannel ? chZero : stZero ?? new Float64Array(nGroups * rows),
  };
  if (perChannel || stScale) {
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < nGroups; g++) { scales[r * nGroups + g] = grid.scale[g * rows + r]!; zeros[r * nGroups + g] = grid.zero[g * rows + r]!; }
    }
  }
  const gIdx = new Int32Array(cols), group = new Int32Array(cols), groupStart = new Int32Array(cols);
  for (let j = 0; j < cols; j++) {
    const c = perm ? perm[j]! : j; // processing position j, original column c
    const g = perChannel ? 0 : stScale ? Math.floor(c / gs) : Math.floor(j / gs);
    gIdx[c] = g;
    group[j] = g;
    groupStart[j] = !perChannel && !stScale && j % gs === 0 ? g : -1;
  }
  const diag = perm ? Float64Array.from(perm, (c) => diagH[c]!) : diagH;
  return { Wd, ...(Hp ? { Hp } : {}), diag, ...(perm ? { perm } : {}), grid, gIdx, group, groupStart, blocksize, percdamp, maxq, notes, at };
}

/** Who shares H's factor (core/inverseFactor.ts): 1 reader (none shared) with consumeH, whose H becomes the factor. */
function shareOf(opts: GptqOptions): FactorShare {
  return {
    readers: opts.consumeH ? 1 : opts.readers ?? 1, linalg: opts.linalg,
    key: factorKey(opts.actOrder ?? false, opts.percdamp ?? 0.01, opts.maxDampRetries ?? 3),
  };
}

/** Hinv: the kept one (its notes replayed), else pr.Hp damped and factored, kept for the other readers. */
function inverseFactor(H: Float64Array, pr: Prepared, n: number, opts: GptqOptions, share: FactorShare, taken: InverseFactor | undefined): InverseFactor {
  let f = taken;
  if (!f) {
    const notes: string[] = [];
    const dampUsed = dampedInverseFactor(pr.Hp!, n, pr.percdamp, opts.maxDampRetries ?? 3, notes, pr.at, opts.linalg);
    keepFactor(H, share, f = { Hinv: pr.Hp!, dampUsed, notes });
  }
  pr.notes.push(...f.notes);
  return f;
}

export function gptq(W: Float32Array, rows: number, cols: number, H: Float64Array, opts: GptqOptions): GptqResult {
  const share = shareOf(opts), taken = takeFactor(H, share);
  const pr = prepare(W, rows, cols, H, opts, !taken);
  const { Wd, perm, grid, gIdx, blocksize, maxq, notes } = pr;
  const perChannel = opts.spec.groupSize === -1, staticGroups = !perChannel && (opts.staticGroups ?? false);
  const { linalg } = opts;
  const { Hinv, dampUsed } = inverseFactor(H, pr, cols, opts, share, taken);
  const gemm32 = opts.lazyUpdate === 'f32' ? linalg?.gemm?.bind(linalg) : undefined;
  const gemm64 = linalg?.gemmF64?.bind(linalg);
  const sub = opts.subBlock ?? (gemm64 ? SUB_BLOCK : blocksize);
  // Lazy block: a multiple of blocksize; with dynamic groups also of the group size, so that no group
  // reaches past its lazy block and every group's range is read as of its gptq.py block's start.
  let outer = Math.max(1, Math.floor((opts.lazyBlock ?? (gemm64 ? LAZY_BLOCK : blocksize)) / blocksize)) * blocksize;
  if (!perChannel && !staticGroups && outer % grid.gs !== 0) outer = blocksize;

  const codes = new Uint8Array(rows * cols), Q = new Float32Array(rows * cols);
  const solver = new GptqSolver(Wd, rows, cols, Hinv, grid, {
    maxq, blocksize, outer, sub, ...(gemm64 ? { gemm64 } : {}),
    lazy: gemm32 ? { kind: 'f32', gemm: gemm32 } : gemm64 ? { kind: 'f64', gemm: gemm64 } : { kind: 'ts' },
  });
  const width = Math.min(outer, cols);
  const bc: BlockColumns = { col: new Int32Array(width), paramOffset: new Int32Array(width), groupStart: new Int32Array(width) };
  let loss = 0;
  for (let o1 = 0; o1 < cols; o1 += outer) {
    const o2 = Math.min(o1 + outer, cols);
    for (let j = o1; j < o2; j++) {
      bc.col[j - o1] = perm ? perm[j]! : j;
      bc.paramOffset[j - o1] = pr.group[j]! * rows;
      bc.groupStart[j - o1] = pr.groupStart[j]!;
    }
    loss += solver.solveBlock(o1, o2, bc, codes, Q);
  }

  return { Q, codes, scales: grid.scales, zeros: grid.zeros, gIdx, ...(perm ? { perm } : {}), loss, dampUsed, notes };
}

/**
 * GPTQ with its solve on the backend's device in float32 (`Backend.gptqFactor`/`gptqSolve`, gptq.py's precision):
 * the same preparation as `gptq` (dead columns, act-order, static groups, per-channel parameters on the
 * host), damping retried ×10 when H is not positive definite in float32, the factor kept on the device for
 * the other layers that read H (GptqOptions.readers, as the host's), the dynamic groups' parameters
 * found on the host from the device's per-row ranges (paramsFromRange, as the host solve), outputs back in
 * the original column order. Results agree with the float64 solve in loss, not code for code (see the
 * comment at the top on float32 updates).
 */
export async function gptqOnDevice(be: Backend, W: Float32Array, rows: number, cols: number, H: Float64Array, opts: GptqOptions): Promise<GptqResult> {
  if (!be.gptqSolve || !be.gptqFactor) throw new UsageError(`gptq --device-solve needs a backend with a device solve (--backend webgpu); ${be.name} has none`);
  const pr = prepare(W, rows, cols, H, opts, false);
  const { spec } = opts;
  const { grid, perm, maxq, notes } = pr;
  const nGroups = grid.nGroups;
  const Wf = new Float32Array(pr.Wd);
  const scale = new Float32Array(grid.scale), zero = new Float32Array(grid.zero);
  const dynamic = pr.groupStart.some((g) => g >= 0) ? {
    size: grid.gs,
    starts: pr.groupStart,
    params: (min: Float32Array, max: Float32Array) => {
      const s = new Float32Array(rows), z = new Float32Array(rows);
      for (let r = 0; r < rows; r++) {
        const p = paramsFromRange(min[r]!, max[r]!, spec.bits, spec.sym, spec.scaleDtype);
        s[r] = p.scale; z[r] = p.zero;
      }
      return { scale: s, zero: z };
    },
  } : undefined;
  // the factor: the one an earlier reader of H kept on this device, else made here and kept for the other readers;
  // the last reader frees it (a run that fails between readers leaves it to the device's end)
  const host = shareOf(opts), share = { readers: host.readers, key: `device-f32/${host.key}`, linalg: be };
  let f = takeFactor<GptqDeviceFactor>(H, share);
  if (!f) {
    const made = await deviceFactor(be, H, pr, opts, rows);
    keepFactor(H, share, made);
    f = { ...made, last: share.readers <= 1 };
  }
  notes.push(...f.notes);
  try {
    const out = await be.gptqSolve({
      W: Wf, rows, cols, blocksize: pr.blocksize, maxq, group: pr.group, scale, zero, ...(dynamic ? { dynamic } : {}),
    }, f.Hinv);
    const codes = new Uint8Array(rows * cols), Q = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let j = 0; j < cols; j++) { const c = o + (perm ? perm[j]! : j); codes[c] = out.codes[o + j]!; Q[c] = out.Q[o + j]!; }
      for (let g = 0; g < nGroups; g++) { grid.scales[r * nGroups + g] = out.scale[g * rows + r]!; grid.zeros[r * nGroups + g] = out.zero[g * rows + r]!; }
    }
    return { Q, codes, scales: grid.scales, zeros: grid.zeros, gIdx: pr.gIdx, ...(perm ? { perm } : {}), loss: out.loss, dampUsed: f.dampUsed, notes };
  } finally {
    if (f.last) f.Hinv.release();
  }
}

/**
 * H in processing order made float32 in one pass (no float64 copies), its diagonal damped (in float64, then
 * rounded) and factored on the device; damped ×10 and retried when not positive definite in float32, as the host.
 */
async function deviceFactor(be: Backend, H: Float64Array, pr: Prepared, opts: GptqOptions, rows: number): Promise<InverseFactor<GptqDeviceFactor>> {
  const n = pr.diag.length, diag = pr.diag;
  const Hf = processingOrderF32(H, n, pr.perm);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += diag[i]!;
  mean /= n;
  const maxRetries = opts.maxDampRetries ?? 3;
  let frac = pr.percdamp;
  for (let attempt = 0; ; attempt++) {
    const damp = frac * mean;
    for (let i = 0; i < n; i++) Hf[i * n + i] = diag[i]! + damp;
    const factor = await be.gptqFactor!(Hf, n, { rows, blocksize: pr.blocksize });
    if (factor) return { Hinv: factor, dampUsed: frac, notes: attempt > 0 ? [dampingRetried(pr.percdamp, frac)] : [] };
    if (attempt >= maxRetries) throw notPositiveDefinite(pr.at, ' in float32', frac, attempt, pr.percdamp);
    frac *= 10;
  }
}

/** H[perm[i], perm[j]] (H itself without perm) rounded to float32, [n, n] row-major. */
function processingOrderF32(H: Float64Array, n: number, perm: Int32Array | undefined): Float32Array {
  if (!perm) return new Float32Array(H);
  const Hf = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    const src = perm[i]! * n, dst = i * n;
    for (let j = 0; j < n; j++) Hf[dst + j] = H[src + perm[j]!]!;
  }
  return Hf;
}

/** Per-row grid parameters over columns [c0, c1) of the row-major W. */
function rangeParams(W: Float64Array, rows: number, cols: number, c0: number, c1: number, spec: QuantSpec,
  scale: Float64Array, zero: Float64Array): void {
  for (let r = 0; r < rows; r++) {
    let min = Infinity, max = -Infinity;
    for (let o = r * cols + c0, e = r * cols + c1; o < e; o++) {
      const x = W[o]!;
      if (x < min) min = x;
      if (x > max) max = x;
    }
    const p = paramsFromRange(min, max, spec.bits, spec.sym, spec.scaleDtype);
    scale[r] = p.scale; zero[r] = p.zero;
  }
}

/** GPTQ as a pipeline method: Hessians of each layer's inputs, true-sequential groups, the GPTQ checkpoint layout. */
export const GPTQ: QuantMethod = {
  name: 'gptq',
  label: 'GPTQ',
  description: 'GPTQ: second-order error compensation with the inverse Hessian (Frantar et al., 2022)',
  stats: ['hessian'],
  needsCalibration: true,
  nextInputs: 'quantized',
  sequential: true,
  options: {
    actOrder: { kind: 'boolean', default: false, flag: '--act-order', help: 'process columns by decreasing Hessian diagonal (writes g_idx)', key: () => 'act' },
    staticGroups: {
      kind: 'boolean', default: false, flag: '--static-groups', key: () => 'static',
      help: 'with --act-order: every group\'s parameters from the weights before any update, groups kept sequential (AutoGPTQ\'s static_groups)',
    },
    percdamp: { kind: 'number', default: 0.01, min: 0, max: 10, flag: '--percdamp', help: 'damping as a fraction of mean(diag H)', key: (v) => `d${v}` },
    blocksize: { kind: 'integer', default: 128, min: 1, max: 1 << 20, flag: '--blocksize', help: 'columns per GPTQ block (lazy batch update)', key: (v) => `b${v}` },
    deviceSolve: {
      kind: 'boolean', default: false, flag: '--device-solve', key: () => 'device-f32',
      help: 'solve on the --backend webgpu device in float32 (gptq.py\'s precision) instead of the host\'s float64',
    },
  },
  format: () => 'gptq',
  validate(spec, options) {
    if (options.staticGroups && !options.actOrder) throw new UsageError('--static-groups only applies with --act-order (it keeps act-order\'s groups sequential, as AutoGPTQ\'s static_groups)');
    if (options.staticGroups && spec.groupSize === -1) throw new UsageError('--static-groups needs groups (--group N); per-channel quantization has one group per row');
  },
  checkBackend(be, options) {
    if (options.deviceSolve && !be.gptqSolve) throw new UsageError(`--device-solve needs --backend webgpu: the ${be.name} backend has no device solve (its solve is the host's)`);
  },
  quantizeLayer(l, o) {
    if (!l.stats?.H) throw new UsageError(`gptq needs calibration statistics for ${l.name}`);
    const g: GptqOptions = {
      spec: o.spec, blocksize: o.options.blocksize as number, percdamp: o.options.percdamp as number,
      actOrder: o.options.actOrder as boolean, staticGroups: o.options.staticGroups as boolean,
      consumeH: false, where: l.name, ...(o.linalg ? { linalg: o.linalg } : {}),
      readers: inputReaders(l.linear),
    };
    const out = (r: GptqResult) => ({ Q: r.Q, stored: { kind: 'uniform' as const, grid: { codes: r.codes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx } }, dampUsed: r.dampUsed, notes: r.notes });
    if (o.options.deviceSolve) {
      if (!o.backend) throw new UsageError('--device-solve needs --backend webgpu');
      return gptqOnDevice(o.backend, l.W, l.rows, l.cols, l.stats.H, g).then(out);
    }
    return out(gptq(l.W, l.rows, l.cols, l.stats.H, g));
  },
};
