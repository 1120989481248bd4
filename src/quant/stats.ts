/**
 * Statistics of one linear input over the calibration tokens, accumulated once per distinct input
 * (q/k/v share one, gate/up share one): GPTQ's Hessian (core/hessian.ts), and per-channel mean |x|
 * (AWQ's activation scale) and max |x| (SmoothQuant's), both summed or compared in float64.
 *
 * Inputs arrive as backend tensors. With a backend that has `gram` (and float64 Hessian sums asked
 * for), the Hessian's S = Σ xᵀx stays where the backend computes and is read back once, in finish();
 * only the per-channel statistics, when a method needs them, read the activations back.
 */
import type { Backend, BTensor, GramAccumulator } from '../backend/backend.js';
import type { QuantLinalg } from './core/linalgProvider.js';
import { HessianAccumulator, hessianFromSum, type HessianPrecision } from './core/hessian.js';
import type { InputStats, StatKind } from './method.js';

export class InputStatsAccumulator {
  private readonly hessian: HessianAccumulator | undefined;
  private readonly gram: GramAccumulator | undefined;
  private readonly absSum: Float64Array | undefined;
  private readonly absMax: Float64Array | undefined;
  private tokens = 0;
  private samples = 0;

  /**
   * `deviceGram`: the backend whose `gram` accumulates the Hessian, where it takes the precision (its
   * `gramPrecisions`; 'f64' when absent); else the host sums it. 'f32' is gptq.py's float32 GEMM per
   * sequence: on WebGPU a device GEMM, equal to the host's sgemm path to float32 rounding, not bit for bit.
   */
  constructor(readonly cols: number, kinds: ReadonlySet<StatKind>,
    opts: { linalg?: QuantLinalg; precision?: HessianPrecision; deviceGram?: Backend } = {}) {
    const precision = opts.precision ?? 'f64';
    const takes = opts.deviceGram?.gramPrecisions ?? ['f64'];
    const dev = kinds.has('hessian') && takes.includes(precision) ? opts.deviceGram : undefined;
    this.gram = dev?.gramAccumulator?.(cols, precision);
    this.hessian = kinds.has('hessian') && !this.gram ? new HessianAccumulator(cols, opts) : undefined;
    this.absSum = kinds.has('meanAbs') ? new Float64Array(cols) : undefined;
    this.absMax = kinds.has('maxAbs') ? new Float64Array(cols) : undefined;
  }

  /**
   * One calibration sequence's input x[nTokens, cols] on `be` (one sample for the Hessian's n). The
   * device Gram is enqueued at once; host statistics wait for a read back.
   */
  async addTensor(be: Backend, x: BTensor): Promise<void> {
    const T = x.shape[0]!;
    if (this.gram) {
      be.gram!(x, this.gram);
      this.samples++;
    }
    if (this.hessian || this.absSum || this.absMax) this.addHost(await be.read(x), T);
    else this.tokens += T;
  }

  /** x: [nTokens, cols] row-major, one calibration sequence (one sample for the Hessian's n). */
  add(x: Float32Array, nTokens: number): void {
    this.addHost(x, nTokens);
  }

  private addHost(x: Float32Array, nTokens: number): void {
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

  /** The statistics; with a device Gram, `be` reads S back (once) and releases it. */
  async finish(be?: Backend): Promise<InputStats> {
    const n = this.tokens;
    const H = this.gram ? hessianFromSum(await be!.readGram!(this.gram), this.cols, this.samples) : this.hessian?.finish();
    return {
      tokens: n,
      ...(H ? { H } : {}),
      ...(this.absSum ? { meanAbs: Float32Array.from(this.absSum, (s) => s / n) } : {}),
      ...(this.absMax ? { maxAbs: Float32Array.from(this.absMax) } : {}),
    };
  }
}
