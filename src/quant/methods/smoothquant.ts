/**
 * SmoothQuant (Xiao et al., 2023), as mit-han-lab/smoothquant runs it (`smoothquant/calibration.py`,
 * `smooth.py`, `fake_quant.py`, `ppl_eval.py`):
 *
 * 1. Per input channel, max |x| over every calibration token of the un-smoothed model (get_act_scales).
 *    Block streaming keeps that: block i+1's calibration inputs are block i's float outputs.
 * 2. Smoothing of input_layernorm → q,k,v and post_attention_layernorm → gate,up only (o and down are
 *    not smoothed; smooth_ln_fcs_llama_like): w_j = max over the smoothed linears' rows of |W[:, j]|,
 *    clamped ≥ 1e-5; s_j = (act_j^α / w_j^(1−α)) clamped ≥ 1e-5; norm weight /= s, columns *= s.
 *    α = 0.85, what the repository's script uses for Meta-Llama-3-8B and -70B.
 * 3. Weights per output channel, symmetric absmax (quantize_weight_per_channel_absmax): scale =
 *    max(max|w_row|, 1e-5) / (2^(b−1) − 1), w' = round(w / scale) · scale. Stored as a symmetric
 *    uniform grid (code = round(w / scale) + 2^(b−1), zero 2^(b−1)): the same values.
 * 4. Activations per token, dynamic, symmetric absmax at the same kind of grid with `abits` bits, on the
 *    input of all seven linears of every block (W8A8Linear; model/activation.ts applies it at every
 *    evaluation of the checkpoint); with --quant-bmm also the q/k/v outputs (the script's
 *    quantize_bmm_input). The LM head, the embedding and the attention products stay in float.
 * WbAb is the same quantizers with b bits (the reference hard-codes 8). Differences from the reference:
 * float32 arithmetic (its ppl_eval.py runs in bfloat16), and the smoothing statistics come from the
 * --calib windows like every method here (the reference uses 512 Pile validation documents).
 */
import { UsageError } from '../../errors.js';
import { SCALE_FOLDS } from '../../model/layout.js';
import { dequantize, roundHalfEven } from '../core/grid.js';
import type { QuantMethod } from '../method.js';
import { foldScale } from '../core/fold.js';

const CLAMP = Math.fround(1e-5);

/** The smoothing scales of smooth_ln_fcs_llama_like: (act^α / w^(1−α)) clamped ≥ 1e-5, w the column max |W| over `weights`, clamped ≥ 1e-5. */
function smoothingScales(act: Float32Array, weights: readonly { data: Float32Array; rows: number; cols: number }[], alpha: number): Float32Array {
  const cols = act.length;
  const w = new Float32Array(cols);
  for (const m of weights) for (let r = 0; r < m.rows; r++) for (let c = 0; c < cols; c++) { const a = Math.abs(m.data[r * cols + c]!); if (a > w[c]!) w[c] = a; }
  return Float32Array.from(act, (a, c) => Math.max(Math.fround(Math.fround(a ** alpha) / Math.fround(Math.max(w[c]!, CLAMP) ** (1 - alpha))), CLAMP));
}

/** quantize_weight_per_channel_absmax with `bits`: codes (offset by 2^(b−1)), scales and the fake-quantized weights. */
export function absmaxPerChannel(W: Float32Array, rows: number, cols: number, bits: number) {
  const qmax = 2 ** (bits - 1) - 1, zero = 2 ** (bits - 1);
  const codes = new Uint8Array(rows * cols), Q = new Float32Array(rows * cols);
  const scales = new Float32Array(rows), zeros = new Uint8Array(rows).fill(zero);
  for (let r = 0; r < rows; r++) {
    let mx = 0;
    for (let c = 0; c < cols; c++) mx = Math.max(mx, Math.abs(W[r * cols + c]!));
    const s = Math.fround(Math.max(mx, CLAMP) / qmax);
    scales[r] = s;
    for (let c = 0; c < cols; c++) {
      const q = Math.min(qmax, Math.max(-qmax, roundHalfEven(Math.fround(W[r * cols + c]! / s)))); // |w / s| ≤ qmax: never binds in float32
      codes[r * cols + c] = q + zero;
      Q[r * cols + c] = dequantize(q + zero, s, zero);
    }
  }
  return { codes, scales, zeros, gIdx: new Int32Array(cols), Q };
}

export const SMOOTHQUANT: QuantMethod = {
  name: 'smoothquant',
  label: 'SmoothQuant',
  description: 'SmoothQuant: activation outliers moved into the weights, then WxAy per-channel/per-token absmax (Xiao et al., 2023)',
  stats: [],
  needsCalibration: true,
  nextInputs: 'float',
  sequential: false,
  symmetric: true,
  defaultGroupSize: -1,
  options: {
    abits: { kind: 'integer', default: 8, min: 2, max: 16, flag: '--abits', help: 'activation bits, per-token absmax (16 = activations not quantized)', key: (v) => `a${v}` },
    alpha: { kind: 'number', default: 0.85, min: 0, max: 1, flag: '--alpha', help: 'migration strength α (0.85: the repository\'s Llama-3 value)', key: (v) => `alpha${v}` },
    smooth: { kind: 'boolean', default: true, flag: '--smooth', help: 'fold smoothing scales into the norms (--no-smooth: weights and activations quantized as they are)', key: () => 'nosmooth' },
    quantBmm: { kind: 'boolean', default: false, flag: '--quant-bmm', help: 'also quantize the q/k/v outputs per token (the script\'s quantize_bmm_input)', key: () => 'bmm' },
  },
  format: () => 'gptq',
  activation: (o) => ((o.abits as number) < 16 ? { bits: o.abits as number, granularity: 'per-token', quantBmm: o.quantBmm as boolean } : undefined),
  validate(spec, options) {
    if (spec.groupSize !== -1) throw new UsageError('SmoothQuant quantizes weights per output channel: use --group -1');
    if (spec.bits < 2) throw new UsageError('SmoothQuant\'s symmetric absmax grid needs at least 2 weight bits');
    if ((options.abits as number) === 16 && options.quantBmm) throw new UsageError('--quant-bmm quantizes activations: it needs --abits below 16');
  },
  async transformBlock(job, o) {
    if (!o.options.smooth) return;
    const folds = SCALE_FOLDS.filter((f) => 'norm' in f.producer);
    // per-channel max |x| of the un-smoothed block's inputs (on the device when the backend can: BlockJob.captureAbsMax)
    const act = await job.captureAbsMax(folds.map((f) => f.input));
    const record: Record<string, { minScale: number; maxScale: number }> = {};
    for (const f of folds) {
      const W = f.consumers.map((l) => job.weights[l]);
      const s = smoothingScales(act.get(f.input)!, W, o.options.alpha as number);
      foldScale(job.weights, f, s);
      record[f.input] = { minScale: Math.min(...s), maxScale: Math.max(...s) };
    }
    job.record.values.smoothquant = { scales: record };
  },
  quantizeLayer(l, o) {
    const { Q, ...grid } = absmaxPerChannel(l.W, l.rows, l.cols, o.spec.bits);
    return { Q, stored: { kind: 'uniform', grid }, notes: [] };
  },
};
