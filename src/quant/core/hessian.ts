/**
 * GPTQ's layer Hessian H = 2/n · Σ x xᵀ over calibration inputs (reference: IST-DASLab/gptq gptq.py add_batch).
 *
 * n counts calibration samples the way gptq.py does: add_batch increments it by the batch dimension,
 * i.e. by the number of sequences, not tokens (llama.py feeds one 2048-token sequence per call). So
 * add(X, nTokens) counts one sample unless told otherwise. The scale of H does not change GPTQ's
 * result (damping is relative to mean(diag H)); it only scales the reported loss.
 *
 * Numerics: we keep the plain sum S = Σ x xᵀ in float64 and scale once in finish(), rather than
 * gptq.py's running mean (H *= n/(n+m); H += 2/(n+m)·XᵀX). Both give the same matrix in exact
 * arithmetic, but the running mean re-rounds every entry of H on every call (one extra rounding per
 * sample, 128+ of them) and costs an extra O(cols²) pass per call; the float64 sum rounds each product
 * sum once, and x·y of two float32 values is exact in float64.
 *
 * The hot loop is S += XᵀX. A chunk of tokens is transposed into Xt [cols, T] (column a's values over
 * the chunk contiguous), then S[a][b] = Σ_t Xt[a][t]·Xt[b][t] is computed for b ≥ a only (upper
 * triangle, mirrored in finish()), tile by tile so both panels stay in cache, with a 4×4 register block.
 *
 * With a linear-algebra provider that has `gram` (linalgProvider.ts), add() hands X to it instead:
 * S += XᵀX in float64 from the float32 inputs (BLAS dgemm in the native provider), the same sums up
 * to their order. Providers fill the upper triangle only; finish() mirrors it once.
 *
 * Precision 'f32' is gptq.py's: each call's XᵀX summed in float32 (one 2048-token sequence per call
 * there), then added into S in float64 — through the provider's `gramF32` (sgemm on the upper
 * triangle's tiles: half the flops of gptq.py's full matmul) or, without one, its `gemm`.
 */
import { UsageError } from '../../errors.js';
import type { QuantLinalg } from './linalgProvider.js';

const TOKEN_CHUNK = 256; // tokens per transposed panel
const TILE = 64;         // columns per tile side (two 64×256 float32 panels = 128 KiB)
const BLOCK = 4;         // register block: 4×4 sums per pass over a chunk

export type HessianPrecision = 'f64' | 'f32';

export interface HessianOptions {
  /** Provider for S += XᵀX (its `gram`); without one, the TypeScript loops below. */
  linalg?: QuantLinalg;
  /**
   * 'f64' (default): every product summed in float64. 'f32': each add() call's XᵀX is one float32
   * GEMM (the provider's `gemm`, as gptq.py computes it in float32), and the per-call results are
   * summed in float64 — blocked summation, about twice as fast through sgemm; needs `linalg.gemm`.
   */
  precision?: HessianPrecision;
}

export class HessianAccumulator {
  readonly cols: number;
  private readonly cp: number;        // row stride of S: cols rounded up to a multiple of BLOCK, or cols with gram
  private readonly S: Float64Array;   // [cp, cp], upper triangle valid
  private readonly Xt: Float32Array;  // [cp, TOKEN_CHUNK] (empty with gram)
  private readonly gram: QuantLinalg['gram'];
  private readonly gemm: QuantLinalg['gemm'];
  private readonly gramF32: QuantLinalg['gramF32'];
  private Y: Float32Array | undefined; // [cols, cols] float32 XᵀX of one call ('f32' precision)
  private n = 0;
  private tokens = 0;

  constructor(cols: number, opts: HessianOptions = {}) {
    if (!Number.isInteger(cols) || cols < 1) throw new UsageError(`Hessian needs a positive column count, got ${cols}`);
    this.cols = cols;
    if (opts.precision === 'f32') {
      this.gramF32 = opts.linalg?.gramF32?.bind(opts.linalg);
      this.gemm = this.gramF32 ? undefined : opts.linalg?.gemm?.bind(opts.linalg);
      if (!this.gramF32 && !this.gemm) {
        throw new UsageError(`Hessian precision 'f32' needs a kernel provider with gramF32 or gemm (${opts.linalg?.name ?? 'none given'})`);
      }
    }
    const f32 = this.gramF32 ?? this.gemm;
    this.gram = f32 ? undefined : opts.linalg?.gram?.bind(opts.linalg);
    const provided = Boolean(f32 ?? this.gram);
    this.cp = provided ? cols : Math.ceil(cols / BLOCK) * BLOCK;
    this.S = new Float64Array(this.cp * this.cp);
    this.Xt = new Float32Array(provided ? 0 : this.cp * TOKEN_CHUNK);
  }

  /** Samples counted so far (n in H = 2/n Σ x xᵀ). */
  get nSamples(): number { return this.n; }
  get nTokens(): number { return this.tokens; }

  /** X: [nTokens, cols] row-major (tokens are rows); nSamples: how much this call adds to n. */
  add(X: Float32Array, nTokens: number, nSamples = 1): void {
    const { cols, cp, Xt } = this;
    if (X.length !== nTokens * cols) throw new UsageError(`Hessian input has ${X.length} values, expected ${nTokens}x${cols}`);
    if (this.gramF32) this.gramF32(X, this.S, nTokens, cols);
    else if (this.gemm) this.addF32(X, nTokens);
    else if (this.gram) this.gram(X, this.S, nTokens, cols);
    else for (let t0 = 0; t0 < nTokens; t0 += TOKEN_CHUNK) {
      const T = Math.min(TOKEN_CHUNK, nTokens - t0);
      for (let t = 0; t < T; t++) {
        const row = (t0 + t) * cols;
        for (let a = 0; a < cols; a++) Xt[a * T + t] = X[row + a]!;
      }
      if (cp !== cols) Xt.fill(0, cols * T, cp * T);
      this.accumulate(T);
    }
    this.n += nSamples;
    this.tokens += nTokens;
  }

  /** S += float32 XᵀX of this call, by one GEMM over the transposed tokens. */
  private addF32(X: Float32Array, T: number): void {
    const { cols, S } = this;
    const Xt = new Float32Array(cols * T);
    for (let t = 0; t < T; t++) for (let a = 0; a < cols; a++) Xt[a * T + t] = X[t * cols + a]!;
    const Y = (this.Y ??= new Float32Array(cols * cols));
    this.gemm!(Xt, Xt, Y, cols, cols, T);
    for (let i = 0; i < Y.length; i++) S[i]! += Y[i]!;
  }

  /** S[a][b] += Σ_t Xt[a][t] Xt[b][t] for b ≥ a, by 4×4 register blocks (diagonal blocks' lower entries are junk). */
  private accumulate(T: number): void {
    const { cp, S, Xt } = this;
    for (let A0 = 0; A0 < cp; A0 += TILE) {
      const A1 = Math.min(A0 + TILE, cp);
      for (let B0 = A0; B0 < cp; B0 += TILE) {
        const B1 = Math.min(B0 + TILE, cp);
        for (let a = A0; a < A1; a += BLOCK) {
          const pa0 = a * T, pa1 = pa0 + T, pa2 = pa1 + T, pa3 = pa2 + T;
          for (let b = Math.max(B0, a); b < B1; b += BLOCK) {
            const pb0 = b * T, pb1 = pb0 + T, pb2 = pb1 + T, pb3 = pb2 + T;
            let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
            let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
            for (let t = 0; t < T; t++) {
              const x0 = Xt[pa0 + t]!, x1 = Xt[pa1 + t]!, x2 = Xt[pa2 + t]!, x3 = Xt[pa3 + t]!;
              const y0 = Xt[pb0 + t]!, y1 = Xt[pb1 + t]!, y2 = Xt[pb2 + t]!, y3 = Xt[pb3 + t]!;
              s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
              s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
              s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3;
              s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3;
            }
            let i = a * cp + b;
            S[i]! += s00; S[i + 1]! += s01; S[i + 2]! += s02; S[i + 3]! += s03; i += cp;
            S[i]! += s10; S[i + 1]! += s11; S[i + 2]! += s12; S[i + 3]! += s13; i += cp;
            S[i]! += s20; S[i + 1]! += s21; S[i + 2]! += s22; S[i + 3]! += s23; i += cp;
            S[i]! += s30; S[i + 1]! += s31; S[i + 2]! += s32; S[i + 3]! += s33;
          }
        }
      }
    }
  }

  /** H = 2/n · S as a full symmetric Float64Array [cols, cols] (a new array; the accumulator is unchanged). */
  finish(): Float64Array {
    const { cols, cp, S } = this;
    if (this.n === 0) throw new UsageError('Hessian has no calibration samples');
    const f = 2 / this.n;
    const H = new Float64Array(cols * cols);
    // tile by tile, so that the transposed writes stay in cache
    for (let A0 = 0; A0 < cols; A0 += TILE) {
      const A1 = Math.min(A0 + TILE, cols);
      for (let B0 = A0; B0 < cols; B0 += TILE) {
        const B1 = Math.min(B0 + TILE, cols);
        for (let a = A0; a < A1; a++) {
          for (let b = Math.max(B0, a); b < B1; b++) {
            const v = f * S[a * cp + b]!;
            H[a * cols + b] = v;
            H[b * cols + a] = v;
          }
        }
      }
    }
    return H;
  }
}

/**
 * H = 2/n · S from a full symmetric sum S = Σ x xᵀ [cols, cols] made elsewhere (a backend's
 * `gram`, e.g. on the device): entry for entry what HessianAccumulator.finish computes from the
 * same S, so a backend whose gram sums as the host does gives the same H bit for bit. In place: S
 * becomes H (a plain loop; a copy through TypedArray.map took 7.7 s at 14336² here, this 0.2 s).
 */
export function hessianFromSum(S: Float64Array, cols: number, nSamples: number): Float64Array {
  if (S.length !== cols * cols) throw new UsageError(`Gram sum has ${S.length} values, expected ${cols}x${cols}`);
  if (nSamples === 0) throw new UsageError('Hessian has no calibration samples');
  const f = 2 / nSamples;
  for (let i = 0; i < S.length; i++) S[i] = f * S[i]!;
  return S;
}
