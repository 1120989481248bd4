/**
 * Statistics of one linear input over the calibration tokens, accumulated once per distinct input
 * (q/k/v share one, gate/up share one): GPTQ's Hessian (core/hessian.ts), and per-channel mean |x|
 * (AWQ's activation scale) and max |x| (SmoothQuant's), both summed or compared in float64.
 */
import type { QuantLinalg } from './core/linalgProvider.js';
import { HessianAccumulator, type HessianPrecision } from './core/hessian.js';
import type { InputStats, StatKind } from './method.js';

export class InputStatsAccumulator {
  private readonly hessian: HessianAccumulator | undefined;
  private readonly absSum: Float64Array | undefined;
  private readonly absMax: Float64Array | undefined;
  private tokens = 0;

  constructor(readonly cols: number, kinds: ReadonlySet<StatKind>, opts: { linalg?: QuantLinalg; precision?: HessianPrecision } = {}) {
    this.hessian = kinds.has('hessian') ? new HessianAccumulator(cols, opts) : undefined;
    this.absSum = kinds.has('meanAbs') ? new Float64Array(cols) : undefined;
    this.absMax = kinds.has('maxAbs') ? new Float64Array(cols) : undefined;
  }

  /** x: [nTokens, cols] row-major, one calibration sequence (one sample for the Hessian's n). */
  add(x: Float32Array, nTokens: number): void {
    const { cols, absSum, absMax } = this;
    this.hessian?.add(x, nTokens);
    if (absSum || absMax) {
      for (let t = 0; t < nTokens; t++) {
        const o = t * cols;
        for (let c = 0; c < cols; c++) {
          const a = Math.abs(x[o + c]!);
          if (absSum) absSum[c]! += a;
          if (absMax && a > absMax[c]!) absMax[c] = a;
        }
      }
    }
    this.tokens += nTokens;
  }

  finish(): InputStats {
    const n = this.tokens;
    return {
      tokens: n,
      ...(this.hessian ? { H: this.hessian.finish() } : {}),
      ...(this.absSum ? { meanAbs: Float32Array.from(this.absSum, (s) => s / n) } : {}),
      ...(this.absMax ? { maxAbs: Float32Array.from(this.absMax) } : {}),
    };
  }
}
