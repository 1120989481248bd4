/**
 * The inner loops of GPTQ (gptq.ts): blocks of columns quantized against Hinv, and the lazy batch
 * update that pushes a block's errors to the columns after it. The arithmetic is gptq.py's
 * `fasterquant` loop body; what changes is the order of the work, for the caches and for BLAS:
 *
 * - Row panels. Once a block's grid parameters are fixed every row is independent, so a block is
 *   solved PANEL_ROWS rows at a time on a contiguous copy P [count][R] (column k of the block over the
 *   panel's R rows) that stays in L2 while its count² / 2 updates run.
 * - Left-looking updates. Column i of P is brought up to date just before it is quantized,
 *   P[i] -= Σ_t err_t · Hinv[t, i] with t ascending: each element sees exactly the subtractions of
 *   gptq.py's right-looking `W1[:, i+1:] -= err1 · Hinv1[i, i+1:]`, in the same order (bit for bit),
 *   with P[i] loaded once per 8 products instead of once per product.
 * - Nested blocks (with a provider gemmF64). A block of `outer` columns is cut into gptq.py blocks of
 *   `blocksize` (whose starts fix the group parameters), those into sub-blocks of `sub`; after each
 *   sub-block and each gptq.py block its errors are pushed to the rest of the enclosing block in one
 *   float64 GEMM, so TypeScript is left with sub² / 2 products per row and sub-block, and the lazy
 *   update to the columns after the outer block has K = outer (fewer passes over W). In exact
 *   arithmetic this is the same algorithm: GPTQ does not depend on how columns are grouped into
 *   updates, and at each gptq.py block start every earlier column's update is in, as in gptq.py. In
 *   floating point BLAS sums each update in its own order, so results differ from the plain route by
 *   float64 rounding (~1e-16 relative, before any weight lands on the other side of a rounding tie).
 *
 * Layouts: W [rows][cols] float64, row-major, columns in processing order (act-order applied);
 * Hinv [n][n] the upper factor, in the same order.
 */
import { QuantSpec, paramsFromRange } from '../core/grid.js';

/** Rows per panel: P = outer · PANEL_ROWS float64 (512 KiB at outer 512) stays in L2. */
const PANEL_ROWS = 128;
const LAZY_ROWS = 512;  // rows per lazy-update GEMM
const LAZY_COLS = 512;  // target columns per lazy-update GEMM (y = 2 MiB in float64)
const TS_TILE = 64;     // rows and target columns per tile of the TypeScript lazy update
const TILE_ROWS = 8;    // rows per tile when a panel is transposed in from W or out to codes and Q

type Gemm<A> = (x: A, w: A, y: A, M: number, N: number, K: number) => void;

export interface SolverOptions {
  maxq: number;
  /** gptq.py's block: dynamic group parameters come from W as it stands at a block start. */
  blocksize: number;
  /** Columns per lazy batch update, a multiple of blocksize. */
  outer: number;
  /** Columns per sub-block. */
  sub: number;
  /** Float64 GEMM for the pushes inside an outer block; without it they run in TypeScript, in gptq.py's order. */
  gemm64?: Gemm<Float64Array>;
  /** Lazy batch update: float32 GEMM, float64 GEMM, or (neither) TypeScript. */
  lazy: { kind: 'f32'; gemm: Gemm<Float32Array> } | { kind: 'f64'; gemm: Gemm<Float64Array> } | { kind: 'ts' };
  /** A quantizer for each column in place of the grid's (PB-LLM's blend of a binarizer and a grid); default quantizeColumn. */
  column?: ColumnQuantizer;
}

/**
 * Quantizes P[o .. o + R) (rows r0 … r0 + R − 1 of original column `col`) in place to its errors
 * (w − q) / d, writing each weight's code and q to codesP and qP at the same offsets, as quantizeColumn
 * does; returns Σ err² / 2.
 */
export type ColumnQuantizer = (P: Float64Array, codesP: Uint8Array, qP: Float32Array, o: number, R: number, r0: number, col: number, d: number) => number;

/** Grid parameters and outputs, shared with gptq.ts. */
export interface GridState {
  spec: QuantSpec;
  /** Group size in columns (cols per channel). */
  gs: number;
  /** Parameters [group][row]; dynamic groups are filled here as their first column is reached. */
  scale: Float64Array;
  zero: Float64Array;
  /** Outputs [rows][nGroups], written for dynamic groups. */
  scales: Float32Array;
  zeros: Uint8Array;
  nGroups: number;
}

/** Per column of an outer block (index k = position - o1). */
export interface BlockColumns {
  /** Original column (output position). */
  col: Int32Array;
  /** Offset of the column's parameters in GridState.scale / zero (group · rows). */
  paramOffset: Int32Array;
  /** The dynamic group that starts at this column, else -1. */
  groupStart: Int32Array;
}

/** One step of an outer block's schedule, run on every panel; coefficients at coef[off…]. */
type Step =
  | { op: 'groups'; a: number; b: number }                      // dynamic group parameters for groups starting in [a, b)
  | { op: 'leaf'; a: number; b: number; off: number }           // quantize [a, b), left-looking inside it
  | { op: 'push'; a: number; b: number; c: number; off: number }; // P[b:c] -= Err[a:b] · Hinv[a:b, b:c]

export class GptqSolver {
  private readonly R: number;
  private readonly P: Float64Array;     // panel [count][R]: weights, then errors once quantized
  private readonly codesP: Uint8Array;  // panel codes [count][R]
  private readonly qP: Float32Array;    // panel fake-quantized weights [count][R]
  private readonly dB: Float64Array;    // Hinv[j, j] over the outer block
  private coef = new Float64Array(0);   // the schedule's Hinv slices (see Step)
  private readonly Es: Float64Array;    // a push's errors, row-major [R][K], for the GEMM
  private readonly yP: Float64Array;    // a push's GEMM output
  private readonly err: Float64Array | Float32Array; // the outer block's errors [rows][count] for the lazy update
  private readonly CT: Float64Array | Float32Array;  // Hinv[o1:o2, o2:]ᵀ [rest][count]
  private readonly yL: Float64Array | Float32Array;  // lazy-update GEMM output tile

  constructor(private readonly W: Float64Array, private readonly rows: number, private readonly cols: number,
    private readonly Hinv: Float64Array, private readonly grid: GridState, private readonly o: SolverOptions) {
    const width = Math.min(o.outer, cols);
    const R = this.R = Math.min(PANEL_ROWS, rows);
    this.P = new Float64Array(width * R);
    this.codesP = new Uint8Array(width * R);
    this.qP = new Float32Array(width * R);
    this.dB = new Float64Array(width);
    this.Es = new Float64Array(o.gemm64 ? R * Math.min(o.blocksize, width) : 0);
    this.yP = new Float64Array(o.gemm64 ? width * R : 0);
    const rest = Math.max(0, cols - width); // the most target columns a lazy update has
    const alloc = (m: number) => (o.lazy.kind === 'f32' ? new Float32Array(m) : new Float64Array(m));
    this.err = alloc(rest > 0 ? rows * width : 0);
    this.CT = alloc(rest * width);
    this.yL = alloc(o.lazy.kind === 'ts' ? 0 : Math.min(LAZY_ROWS, rows) * Math.min(LAZY_COLS, rest));
  }

  /**
   * Quantizes columns [o1, o2) (processing order; o2 - o1 ≤ outer, o1 a multiple of outer), writes
   * codes and Q (row-major [rows, cols], original column order) and the dynamic groups' parameters,
   * then applies the lazy batch update to the columns after o2. Returns Σ err² / 2.
   */
  solveBlock(o1: number, o2: number, bc: BlockColumns, codes: Uint8Array, Q: Float32Array): number {
    const count = o2 - o1;
    for (let k = 0; k < count; k++) this.dB[k] = this.Hinv[(o1 + k) * this.cols + o1 + k]!;
    const steps = this.schedule(o1, count);
    let loss = 0;
    for (let r0 = 0; r0 < this.rows; r0 += this.R) {
      loss += this.solvePanel(o1, count, r0, Math.min(this.R, this.rows - r0), steps, bc, codes, Q);
    }
    if (o2 < this.cols) this.lazyUpdate(o1, o2);
    return loss;
  }

  /** The steps of an outer block and their coefficients: Hinv slices, dense, in the layout each step reads. */
  private schedule(o1: number, count: number): Step[] {
    const { blocksize } = this.o, sub = Math.min(this.o.sub, blocksize);
    const steps: Step[] = [];
    let size = 0;
    for (let b1 = 0; b1 < count; b1 += blocksize) {
      const b2 = Math.min(b1 + blocksize, count);
      steps.push({ op: 'groups', a: b1, b: b2 });
      for (let s0 = b1; s0 < b2; s0 += sub) {
        const s1 = Math.min(s0 + sub, b2);
        steps.push({ op: 'leaf', a: s0, b: s1, off: size });
        size += (s1 - s0) * (s1 - s0);
        if (s1 < b2) { steps.push({ op: 'push', a: s0, b: s1, c: b2, off: size }); size += (b2 - s1) * (s1 - s0); }
      }
      if (b2 < count) { steps.push({ op: 'push', a: b1, b: b2, c: count, off: size }); size += (count - b2) * (b2 - b1); }
    }
    if (this.coef.length < size) this.coef = new Float64Array(size);
    const { coef, Hinv } = this, n = this.cols;
    for (const s of steps) {
      if (s.op === 'leaf') {
        // coef[off + (i - a) · S + (t - a)] = Hinv[t, i] for a ≤ t < i < b
        const S = s.b - s.a;
        for (let t = s.a; t < s.b; t++) {
          const h = (o1 + t) * n + o1;
          for (let i = t + 1; i < s.b; i++) coef[s.off + (i - s.a) * S + (t - s.a)] = Hinv[h + i]!;
        }
      } else if (s.op === 'push') {
        // coef[off + (k - b) · K + (t - a)] = Hinv[t, k]: the GEMM's x [c - b][K]
        const K = s.b - s.a;
        for (let t = s.a; t < s.b; t++) {
          const h = (o1 + t) * n + o1;
          for (let k = s.b; k < s.c; k++) coef[s.off + (k - s.b) * K + (t - s.a)] = Hinv[h + k]!;
        }
      }
    }
    return steps;
  }

  private solvePanel(o1: number, count: number, r0: number, R: number, steps: Step[], bc: BlockColumns,
    codes: Uint8Array, Q: Float32Array): number {
    const { W, cols, P, codesP, qP, dB, coef, grid } = this;
    const maxq = this.o.maxq, gemm64 = this.o.gemm64, column = this.o.column;
    // Transpositions in and out of the panel go TILE_ROWS rows at a time, so that both sides stay in cache.
    for (let ra = 0; ra < R; ra += TILE_ROWS) {
      const rb = Math.min(ra + TILE_ROWS, R);
      for (let k = 0; k < count; k++) {
        for (let r = ra, o = (r0 + ra) * cols + o1 + k; r < rb; r++, o += cols) P[k * R + r] = W[o]!;
      }
    }
    let loss = 0;
    for (const s of steps) {
      if (s.op === 'groups') {
        for (let k = s.a; k < s.b; k++) if (bc.groupStart[k]! >= 0) this.groupParams(o1, count, k, bc.groupStart[k]!, r0, R);
      } else if (s.op === 'leaf') {
        const S = s.b - s.a;
        for (let i = s.a; i < s.b; i++) {
          if (i > s.a) subtractProducts(P, R, i, s.a, i, coef, s.off + (i - s.a) * S - s.a);
          loss += column ? column(P, codesP, qP, i * R, R, r0, bc.col[i]!, dB[i]!)
            : quantizeColumn(P, codesP, qP, i * R, R, grid.scale, grid.zero, bc.paramOffset[i]! + r0, maxq, dB[i]!);
        }
      } else if (gemm64) {
        pushGemm(gemm64, P, R, s.a, s.b, s.c, coef.subarray(s.off, s.off + (s.c - s.b) * (s.b - s.a)), this.Es, this.yP);
      } else {
        const K = s.b - s.a;
        for (let k = s.b; k < s.c; k++) subtractProducts(P, R, k, s.a, s.b, coef, s.off + (k - s.b) * K - s.a);
      }
    }
    // Codes and Q to their rows, in original columns; errors to the lazy update's operand [rows][count].
    for (let ra = 0; ra < R; ra += TILE_ROWS) {
      const rb = Math.min(ra + TILE_ROWS, R);
      for (let k = 0; k < count; k++) {
        const src = k * R;
        for (let r = ra, o = (r0 + ra) * cols + bc.col[k]!; r < rb; r++, o += cols) {
          codes[o] = codesP[src + r]!;
          Q[o] = qP[src + r]!;
        }
      }
    }
    if (o1 + count < cols) {
      const err = this.err;
      for (let r = 0; r < R; r++) {
        const eo = (r0 + r) * count;
        for (let k = 0; k < count; k++) err[eo + k] = P[k * R + r]!;
      }
    }
    return loss;
  }

  /**
   * Parameters of dynamic group g, whose first column is block column k, for the panel's rows: from
   * P (W at this gptq.py block's start) and, past the outer block, from W (only when the outer block
   * is one gptq.py block, so that W there is also as of the block's start; see gptq.ts).
   */
  private groupParams(o1: number, count: number, k: number, g: number, r0: number, R: number): void {
    const { P, W, cols, rows } = this;
    const { spec, gs, scale, zero, scales, zeros, nGroups } = this.grid;
    const inP = Math.min(k + gs, count) * R, end = o1 + k + gs;
    for (let r = 0; r < R; r++) {
      let min = Infinity, max = -Infinity;
      for (let o = k * R + r; o < inP; o += R) {
        const x = P[o]!;
        if (x < min) min = x;
        if (x > max) max = x;
      }
      for (let o = (r0 + r) * cols + o1 + count, e = (r0 + r) * cols + end; o < e; o++) {
        const x = W[o]!;
        if (x < min) min = x;
        if (x > max) max = x;
      }
      const p = paramsFromRange(min, max, spec.bits, spec.sym, spec.scaleDtype);
      scale[g * rows + r0 + r] = p.scale; zero[g * rows + r0 + r] = p.zero;
      scales[(r0 + r) * nGroups + g] = p.scale; zeros[(r0 + r) * nGroups + g] = p.zero;
    }
  }

  /** W[:, o2:] -= Err · Hinv[o1:o2, o2:]. */
  private lazyUpdate(o1: number, o2: number): void {
    const { W, rows, cols, Hinv, CT, err } = this;
    const count = o2 - o1, rest = cols - o2, n = cols;
    // CT[j' · count + k] = Hinv[o1 + k, o2 + j']: contiguous per target column.
    for (let k = 0; k < count; k++) {
      const h = (o1 + k) * n + o2;
      for (let jj = 0; jj < rest; jj++) CT[jj * count + k] = Hinv[h + jj]!;
    }
    const lazy = this.o.lazy;
    if (lazy.kind === 'ts') lazyUpdateTs(W, rows, cols, o2, rest, count, CT as Float64Array, err as Float64Array);
    else if (lazy.kind === 'f64') lazyUpdateGemm(lazy.gemm, W, rows, cols, o2, rest, count, CT as Float64Array, err as Float64Array, this.yL as Float64Array);
    else lazyUpdateGemm(lazy.gemm, W, rows, cols, o2, rest, count, CT as Float32Array, err as Float32Array, this.yL as Float32Array);
  }
}

/**
 * P[target] -= Σ_{t ∈ [t0, t1)} P[t] · coef[hb + t], t ascending, one rounding per product as gptq.py;
 * eight (then four) source columns per pass so that P[target] is loaded and stored once per pass.
 */
function subtractProducts(P: Float64Array, R: number, target: number, t0: number, t1: number, coef: Float64Array, hb: number): void {
  const po = target * R;
  let t = t0;
  for (; t + 7 < t1; t += 8) {
    const h0 = coef[hb + t]!, h1 = coef[hb + t + 1]!, h2 = coef[hb + t + 2]!, h3 = coef[hb + t + 3]!;
    const h4 = coef[hb + t + 4]!, h5 = coef[hb + t + 5]!, h6 = coef[hb + t + 6]!, h7 = coef[hb + t + 7]!;
    const o0 = t * R, o1 = o0 + R, o2 = o1 + R, o3 = o2 + R, o4 = o3 + R, o5 = o4 + R, o6 = o5 + R, o7 = o6 + R;
    for (let r = 0; r < R; r++) {
      let w = P[po + r]!;
      w -= P[o0 + r]! * h0; w -= P[o1 + r]! * h1; w -= P[o2 + r]! * h2; w -= P[o3 + r]! * h3;
      w -= P[o4 + r]! * h4; w -= P[o5 + r]! * h5; w -= P[o6 + r]! * h6; w -= P[o7 + r]! * h7;
      P[po + r] = w;
    }
  }
  for (; t + 3 < t1; t += 4) {
    const h0 = coef[hb + t]!, h1 = coef[hb + t + 1]!, h2 = coef[hb + t + 2]!, h3 = coef[hb + t + 3]!;
    const o0 = t * R, o1 = o0 + R, o2 = o1 + R, o3 = o2 + R;
    for (let r = 0; r < R; r++) {
      let w = P[po + r]!;
      w -= P[o0 + r]! * h0; w -= P[o1 + r]! * h1; w -= P[o2 + r]! * h2; w -= P[o3 + r]! * h3;
      P[po + r] = w;
    }
  }
  for (; t < t1; t++) {
    const h = coef[hb + t]!, o = t * R;
    for (let r = 0; r < R; r++) P[po + r]! -= P[o + r]! * h;
  }
}

const TIES_EVEN = 6755399441055744; // 1.5 · 2^52: t + TIES_EVEN - TIES_EVEN rounds t (|t| < 2^51) half to even
const EXACT = 2251799813685248;     // 2^51

/**
 * grid.ts's quantize(x, s, z, maxq), code for code: clamp(roundHalfEven(fround(x / s)) + z, 0, maxq),
 * with the ties-to-even rounding done by the float64 adder and the clamp by min / max, so that there
 * are no data-dependent branches (random weights mispredict grid.ts's: ~3× slower in quantizeColumn).
 */
export function gridCode(x: number, s: number, z: number, maxq: number): number {
  const t = Math.fround(x / s);
  return Math.min(Math.max((Math.abs(t) < EXACT ? t + TIES_EVEN - TIES_EVEN : t) + z, 0), maxq);
}

/**
 * Quantizes P[o .. o + R) in place to its errors (w - q) / d, codes and q = fround(s · (code − z))
 * (grid.ts's dequantize) to the panel scratch; returns Σ err² / 2.
 */
function quantizeColumn(P: Float64Array, codesP: Uint8Array, qP: Float32Array, o: number, R: number,
  scale: Float64Array, zero: Float64Array, po: number, maxq: number, d: number): number {
  let loss = 0;
  for (let r = 0; r < R; r++) {
    const x = P[o + r]!, s = scale[po + r]!, z = zero[po + r]!;
    const code = gridCode(x, s, z, maxq);
    const q = Math.fround(s * (code - z));
    codesP[o + r] = code;
    qP[o + r] = q;
    const e = (x - q) / d;
    loss += (e * e) / 2;
    P[o + r] = e;
  }
  return loss;
}

/** P[b:c] -= Hinv[a:b, b:c]ᵀ · Err[a:b] through the float64 GEMM: y[k', r] = Σ_t x[k', t] · Es[r, t]. */
function pushGemm(gemm: Gemm<Float64Array>, P: Float64Array, R: number, a: number, b: number, c: number,
  x: Float64Array, Es: Float64Array, y: Float64Array): void {
  const K = b - a, M = c - b;
  for (let t = 0; t < K; t++) {
    const o = (a + t) * R;
    for (let r = 0; r < R; r++) Es[r * K + t] = P[o + r]!;
  }
  gemm(x, Es.subarray(0, R * K), y.subarray(0, M * R), M, R, K);
  const base = b * R, len = M * R;
  for (let i = 0; i < len; i++) P[base + i]! -= y[i]!;
}

/**
 * TypeScript lazy update, W[r, o2 + j'] -= Σ_k Err[r, k] · CT[j', k], in tiles; each element
 * subtracts its products summed four at a time, k ascending (the grouping gptq.ts has always used).
 */
function lazyUpdateTs(W: Float64Array, rows: number, cols: number, o2: number, rest: number, count: number,
  CT: Float64Array, Err: Float64Array): void {
  for (let r0 = 0; r0 < rows; r0 += TS_TILE) {
    const r1 = Math.min(r0 + TS_TILE, rows);
    for (let j0 = 0; j0 < rest; j0 += TS_TILE) {
      const j1 = Math.min(j0 + TS_TILE, rest);
      for (let r = r0; r < r1; r++) {
        const eo = r * count, wo = r * cols + o2;
        for (let jj = j0; jj < j1; jj++) {
          const co = jj * count;
          let w = W[wo + jj]!, k = 0;
          for (; k + 3 < count; k += 4) {
            w -= CT[co + k]! * Err[eo + k]! + CT[co + k + 1]! * Err[eo + k + 1]!
              + CT[co + k + 2]! * Err[eo + k + 2]! + CT[co + k + 3]! * Err[eo + k + 3]!;
          }
          for (; k < count; k++) w -= CT[co + k]! * Err[eo + k]!;
          W[wo + jj] = w;
        }
      }
    }
  }
}

/**
 * The lazy update through a provider GEMM y[M,N] = x[M,K] · w[N,K]ᵀ with x = Err's rows, w = CT's
 * target columns, K = count, in tiles of LAZY_ROWS × LAZY_COLS; W -= y right after each tile.
 */
function lazyUpdateGemm<A extends Float32Array | Float64Array>(gemm: Gemm<A>, W: Float64Array, rows: number, cols: number,
  o2: number, rest: number, count: number, CT: A, Err: A, y: A): void {
  for (let r0 = 0; r0 < rows; r0 += LAZY_ROWS) {
    const nr = Math.min(LAZY_ROWS, rows - r0);
    const x = Err.subarray(r0 * count, (r0 + nr) * count) as A;
    for (let j0 = 0; j0 < rest; j0 += LAZY_COLS) {
      const m = Math.min(LAZY_COLS, rest - j0);
      gemm(x, CT.subarray(j0 * count, (j0 + m) * count) as A, y.subarray(0, nr * m) as A, nr, m, count);
      for (let r = 0; r < nr; r++) {
        const wo = (r0 + r) * cols + o2 + j0, yo = r * m;
        for (let jj = 0; jj < m; jj++) W[wo + jj]! -= y[yo + jj]!;
      }
    }
  }
}
