/**
 * AWQ, activation-aware weight quantization (Lin et al., 2023), as mit-han-lab/llm-awq runs it
 * (`awq/quantize/pre_quant.py` run_awq, `auto_scale.py`, `auto_clip.py`, `quantizer.py`):
 *
 * Per decoder block, in floating point (nothing is quantized during the search, and the next block's
 * calibration inputs are this block's float outputs, taken before any change):
 * 1. Every linear's input is captured from one float forward over all calibration sequences.
 * 2. Scale search, per fold of model/layout.ts (input_layernorm → q,k,v judged on the attention output;
 *    v → o only when v and o have the same shape, so never under GQA; post_attention_layernorm → gate,up
 *    judged on the MLP output; up → down), each against the original weights: x_mean = mean |x| per input
 *    channel; for ratio = i/n_grid, i = 0..n_grid−1: s = max(x_mean^ratio, 1e-4), s /= sqrt(max(s)·min(s));
 *    the consumers become Q(W·diag(s))·diag(s)⁻¹; loss = mean squared difference of the judged output from
 *    the original's; the first strict minimum wins (ratio 0, s = 1, is plain round-to-nearest).
 * 3. The chosen scales are folded (producer /= s: a norm's weight or a linear's rows; consumers' columns
 *    *= s) and the captured inputs divided by s.
 * 4. Clipping (auto_clip, awqClip.ts) on every linear but q and k: 512 tokens (every ⌊N/512⌋-th of the N
 *    captured), per output row and group, the group's max |w| shrunk by (1 − i/20) for i = 0..9, a symmetric
 *    clamp, then the quantizer; error = mean over the tokens of the group's partial product's squared change;
 *    first strict minimum; the weights are clamped in place. On the backend when it has `clipSearch`.
 * Then every linear is quantized with llm-awq's quantizer (awqQuantizer.ts).
 * The captured inputs stay on the backend for the whole block when it has columnAbsMean and divColumns
 * (awqRows.ts: the means, the division and the clip search's sample made there, the same bits as the
 * host's loops), else they are read back once and handled on the host.
 *
 * Differences from the reference, on purpose: float32 instead of fp16 arithmetic; per-channel (no
 * groups) clips each whole row, where the reference's clip search fails for q_group_size ≤ 0; the token
 * subsampling step is at least 1 (the reference fails with fewer than 512 tokens, as AutoAWQ fixed).
 */
import { UsageError } from '../../errors.js';
import type { Backend, BTensor } from '../../backend/backend.js';
import { LINEARS, type LinearName } from '../../model/block.js';
import { LINEAR_INPUT, SCALE_FOLDS, type InputName, type ScaleFold } from '../../model/layout.js';
import type { BlockJob, HostBlock, HostMatrix } from '../blockJob.js';
import type { MethodOptions, QuantMethod } from '../method.js';
import { foldScale } from '../core/fold.js';
import { awqQuantize, quantizeScaledInto } from './awqQuantizer.js';
import { autoClip, CLIP_GRID, CLIP_STEPS, onHost, type TokenRows } from './awqClip.js';
import { captureRows, divideRows, freeRows, meanAbs, rowsOnBackend, sampleRows, type CapturedRows } from './awqRows.js';

const SCALE_MIN = Math.fround(1e-4);
/** auto_clip leaves q and k alone. */
const NOT_CLIPPED: ReadonlySet<LinearName> = new Set(['q', 'k']);

/** The linears each fold's judged output runs through (attentionPart, mlpPart, or the one consumer). */
const JUDGED: Readonly<Record<InputName, readonly LinearName[]>> = {
  attnIn: ['q', 'k', 'v', 'o'], mlpIn: ['gate', 'up', 'down'], attnOut: ['o'], mlpAct: ['down'],
};

type Uploaded = Partial<Record<LinearName, BTensor>>;

/** The output a fold's scale is judged on, per sequence, left on the backend; `w` holds the JUDGED linears. */
function judged(job: BlockJob, fold: ScaleFold, w: Uploaded, xs: readonly BTensor[]): BTensor[] {
  switch (fold.input) {
    case 'attnIn': return job.attentionOn(w as Required<Uploaded>, xs);
    case 'mlpIn': return job.mlpOn(w as Required<Uploaded>, xs);
    case 'attnOut': return job.linearOn(w.o!, xs);
    case 'mlpAct': return job.linearOn(w.down!, xs);
  }
}

/** Σ (a − b)² over the sequences' outputs, float64: on the backend when it has the op, else read back. */
async function squaredDiff(be: Backend, a: readonly BTensor[], b: readonly BTensor[]): Promise<number> {
  const pairs = a.map((x, i) => [x, b[i]!] as const);
  if (be.sumSquaredDiff) return be.sumSquaredDiff(pairs);
  let s = 0;
  for (const [x, y] of pairs) {
    const u = await be.read(x), v = await be.read(y);
    for (let i = 0; i < u.length; i++) { const d = u[i]! - v[i]!; s += d * d; }
  }
  return s;
}

/**
 * auto_scale: the best ratio index for one fold, and its scales. The calibration rows, the judged linears'
 * weights and the original outputs go to the backend once; each candidate's weights are made there
 * (`scaledFakeQuant`, else on the host and uploaded) and its loss is summed there (`sumSquaredDiff`), so
 * a GPU reads back one number per candidate.
 */
async function searchScale(job: BlockJob, fold: ScaleFold, rows: CapturedRows, o: MethodOptions, nGrid: number):
  Promise<{ index: number; s: Float32Array; loss: number; loss0: number }> {
  const be = job.be, cols = job.weights[fold.consumers[0]!].cols;
  const xMean = await meanAbs(be, rows, cols);
  const held: BTensor[] = [];
  try {
    const { xs, made } = rowsOnBackend(job, rows, cols);
    held.push(...made);
    const base: Uploaded = {};
    for (const l of JUDGED[fold.input]) held.push(base[l] = job.uploadWeight(job.weights[l]));
    const original = judged(job, fold, base, xs);
    held.push(...original);
    const n = original.reduce((a, t) => a + t.shape.reduce((p, d) => p * d, 1), 0);
    const host: Partial<Record<LinearName, HostMatrix>> = {};
    if (!be.scaledFakeQuant) for (const l of fold.consumers) { const m = job.weights[l]; host[l] = { data: new Float32Array(m.rows * m.cols), rows: m.rows, cols: m.cols }; }
    let best: { index: number; s: Float32Array; loss: number } | undefined;
    let loss0 = NaN;
    for (let i = 0; i < nGrid; i++) {
      const ratio = i / nGrid;
      const s = Float32Array.from(xMean, (v) => Math.max(Math.fround(v ** ratio), SCALE_MIN));
      let mx = -Infinity, mn = Infinity;
      for (const v of s) { if (v > mx) mx = v; if (v < mn) mn = v; }
      const norm = Math.fround(Math.sqrt(Math.fround(mx * mn)));
      for (let c = 0; c < cols; c++) s[c] = Math.fround(s[c]! / norm);
      const step: BTensor[] = [];
      try {
        const w: Uploaded = { ...base };
        if (be.scaledFakeQuant) {
          const sd = be.upload(s, [cols]);
          step.push(sd);
          const q = { groupSize: o.spec.groupSize, bits: o.spec.bits, f16Scale: o.spec.scaleDtype === 'f16' };
          for (const l of fold.consumers) step.push(w[l] = be.scaledFakeQuant(base[l]!, sd, q));
        } else {
          for (const l of fold.consumers) {
            const m = job.weights[l], c = host[l]!;
            quantizeScaledInto(m.data, m.rows, m.cols, s, o.spec.groupSize, o.spec.bits, o.spec.scaleDtype, c.data);
            step.push(w[l] = job.uploadWeight(c));
          }
        }
        const out = judged(job, fold, w, xs);
        step.push(...out);
        const loss = (await squaredDiff(be, original, out)) / n;
        if (i === 0) loss0 = loss;
        if (!best || loss < best.loss) best = { index: i, s, loss };
      } finally { job.free(step); }
    }
    if (!best || !Number.isFinite(best.loss)) throw new UsageError(`${job.layerName(fold.consumers[0]!)}: AWQ's scale search found no finite loss (non-finite activations?)`);
    return { ...best, loss0 };
  } finally { job.free(held); }
}

/** Folds scale s into the block and divides the captured input by it (apply_scale with input_feat_dict). */
function applyScale(be: Backend, w: HostBlock, fold: ScaleFold, s: Float32Array, captured: CapturedRows): void {
  foldScale(w, fold, s);
  divideRows(be, captured, s);
}

export const AWQ: QuantMethod = {
  name: 'awq',
  label: 'AWQ',
  description: 'AWQ: activation-aware scaling and clipping, then round-to-nearest (Lin et al., 2023; llm-awq)',
  stats: [],
  needsCalibration: true,
  nextInputs: 'float',
  sequential: false,
  symmetric: false,
  options: {
    awqGrid: { kind: 'integer', default: 20, min: 1, max: 1000, flag: '--awq-grid', help: 'scale-search grid points (ratio i/n for i < n; 1 = no scaling)', key: (v) => `grid${v}` },
    awqClip: { kind: 'boolean', default: true, flag: '--awq-clip', help: 'clip search on v, o, gate, up, down (--no-awq-clip skips it)', key: () => 'noclip' },
  },
  // AutoAWQ's GEMM layout holds 4-bit weights in groups, out_features a multiple of 8; anything else goes in GPTQ's layout
  format: (spec, c) => (spec.bits === 4 && spec.groupSize > 0
    && [c.numHeads * c.headDim, c.numKvHeads * c.headDim, c.hiddenSize, c.intermediateSize].every((n) => n % 8 === 0) ? 'awq' : 'gptq'),
  async transformBlock(job, o) {
    const nGrid = o.options.awqGrid as number;
    const captured = await captureRows(job, ['attnIn', 'attnOut', 'mlpIn', 'mlpAct']);
    const samples = new Map<InputName, TokenRows>();
    const ratios: Record<string, unknown> = {};
    const clips: Record<string, number[]> = {};
    let clipOn: 'backend' | 'host' | undefined;
    try {
      const chosen: { fold: ScaleFold; s: Float32Array }[] = [];
      for (const fold of SCALE_FOLDS) {
        const p = fold.producer;
        if ('linear' in p && job.weights[p.linear].rows !== job.weights[fold.consumers[0]!].cols) {
          ratios[fold.input] = `skipped: ${p.linear} has ${job.weights[p.linear].rows} outputs, ${fold.consumers.join(',')} ${job.weights[fold.consumers[0]!].cols} inputs (grouped-query attention)`;
          continue;
        }
        const r = await searchScale(job, fold, captured.get(fold.input)!, o, nGrid);
        ratios[fold.input] = { index: r.index, ratio: r.index / nGrid, loss: r.loss, lossRatio0: r.loss0 };
        chosen.push({ fold, s: r.s });
      }
      for (const { fold, s } of chosen) applyScale(job.be, job.weights, fold, s, captured.get(fold.input)!);
      if (o.options.awqClip) {
        for (const l of LINEARS.filter((x) => !NOT_CLIPPED.has(x))) {
          const input = LINEAR_INPUT[l], W = job.weights[l];
          if (!samples.has(input)) samples.set(input, sampleRows(job.be, captured.get(input)!, W.cols));
          const r = await autoClip(job.be, W, samples.get(input)!, o.spec.groupSize, o.spec.bits, o.spec.scaleDtype);
          clips[l] = r.chosen;
          clipOn = r.on;
        }
      }
    } finally {
      freeRows(job, captured.values());
      job.free([...samples.values()].filter((x): x is BTensor => !onHost(x)));
    }
    job.record.values.awq = {
      scaleRatios: ratios,
      ...(o.options.awqClip ? { clipSteps: clips, clipShrinks: Array.from({ length: CLIP_STEPS }, (_, i) => 1 - i / CLIP_GRID), clipSearchOn: clipOn } : {}),
    };
  },
  quantizeLayer(l, o) {
    const { Q, ...grid } = awqQuantize(l.W, l.rows, l.cols, o.spec.groupSize, o.spec.bits, o.spec.scaleDtype);
    return { Q, stored: { kind: 'uniform', grid }, notes: [] };
  },
};
