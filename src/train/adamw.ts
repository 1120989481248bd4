/**
 * The optimiser side of LoRA training, as the PyTorch / Hugging Face stack that QLoRA runs:
 *  - AdamW as torch.optim.AdamW (single-tensor path, amsgrad off, maximize off):
 *      t ← t + 1
 *      p ← p − lr·λ·p                          (decoupled weight decay, before the moments)
 *      m ← β1·m + (1 − β1)·g
 *      v ← β2·v + (1 − β2)·g²
 *      p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 *  - clipGradNorm as torch.nn.utils.clip_grad_norm_ (L2, error_if_nonfinite off);
 *  - learningRate as Hugging Face transformers' LambdaLR schedules (optimization.py).
 *
 * Precision. Parameters, m and v are float32 arrays, as in torch's fp32 optimiser. Each element is
 * computed in float64 and every value torch stores in place (the decayed p, m, v, the updated p) is
 * rounded to float32 when stored; the update reads the rounded m and v, as torch does, so a run resumed
 * from saved m, v and t continues bit-identically. torch computes in float32 throughout (and m by lerp),
 * so results agree with torch to float32 rounding, not bit for bit.
 */
import { UsageError } from '../errors.js';

export interface AdamWConfig {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** λ, the decoupled weight decay (torch's default 1e-2; QLoRA's scripts pass 0.0) */
  readonly weightDecay: number;
}

/** torch.optim.AdamW's defaults (lr is given per step). */
export const ADAMW_DEFAULTS: AdamWConfig = Object.freeze({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2 });

function checkConfig(c: AdamWConfig): void {
  if (!(c.beta1 >= 0 && c.beta1 < 1)) throw new UsageError(`AdamW: beta1 must be in [0, 1), got ${c.beta1}`);
  if (!(c.beta2 >= 0 && c.beta2 < 1)) throw new UsageError(`AdamW: beta2 must be in [0, 1), got ${c.beta2}`);
  if (!(c.eps >= 0 && Number.isFinite(c.eps))) throw new UsageError(`AdamW: eps must be a finite number ≥ 0, got ${c.eps}`);
  if (!(c.weightDecay >= 0 && Number.isFinite(c.weightDecay))) throw new UsageError(`AdamW: weight decay must be a finite number ≥ 0, got ${c.weightDecay}`);
}

/** AdamW over a list of float32 parameter arrays, updated in place. */
export class AdamW {
  readonly config: AdamWConfig;
  /** first moments, one per parameter array */
  readonly m: Float32Array[];
  /** second moments, one per parameter array */
  readonly v: Float32Array[];
  /** updates taken so far (torch's `state['step']`) */
  step = 0;

  constructor(readonly params: readonly Float32Array[], config: Partial<AdamWConfig> = {}) {
    this.config = Object.freeze({ ...ADAMW_DEFAULTS, ...config });
    checkConfig(this.config);
    this.m = params.map((p) => new Float32Array(p.length));
    this.v = params.map((p) => new Float32Array(p.length));
  }

  /** Puts saved moments and step count back (train/state.ts); lengths must match the parameters. */
  restore(m: readonly Float32Array[], v: readonly Float32Array[], step: number): void {
    if (m.length !== this.params.length || v.length !== this.params.length) {
      throw new UsageError(`AdamW: ${m.length} first and ${v.length} second moments for ${this.params.length} parameters`);
    }
    if (!Number.isSafeInteger(step) || step < 0) throw new UsageError(`AdamW: step must be an integer ≥ 0, got ${step}`);
    this.params.forEach((p, i) => {
      if (m[i]!.length !== p.length || v[i]!.length !== p.length) {
        throw new UsageError(`AdamW: parameter ${i} has ${p.length} elements, its saved moments ${m[i]!.length} and ${v[i]!.length}`);
      }
      this.m[i]!.set(m[i]!);
      this.v[i]!.set(v[i]!);
    });
    this.step = step;
  }

  /** One update with learning rate `lr`; `grads[i]` is the gradient of `params[i]`. */
  update(grads: readonly Float32Array[], lr: number): void {
    if (grads.length !== this.params.length) throw new UsageError(`AdamW: ${grads.length} gradients for ${this.params.length} parameters`);
    if (!(lr >= 0 && Number.isFinite(lr))) throw new UsageError(`AdamW: learning rate must be a finite number ≥ 0, got ${lr}`);
    const { beta1, beta2, eps, weightDecay } = this.config;
    const t = ++this.step;
    const decay = 1 - lr * weightDecay;
    const stepSize = lr / (1 - beta1 ** t);
    const bc2Sqrt = Math.sqrt(1 - beta2 ** t);
    const fr = Math.fround;
    this.params.forEach((p, i) => {
      const g = grads[i]!, m = this.m[i]!, v = this.v[i]!;
      if (g.length !== p.length) throw new UsageError(`AdamW: gradient ${i} has ${g.length} elements, its parameter ${p.length}`);
      for (let k = 0; k < p.length; k++) {
        const gk = g[k]!;
        const pk = fr(p[k]! * decay);
        const mk = (m[k] = fr(beta1 * m[k]! + (1 - beta1) * gk));
        const vk = (v[k] = fr(beta2 * v[k]! + (1 - beta2) * gk * gk));
        p[k] = pk - (stepSize * mk) / (Math.sqrt(vk) / bc2Sqrt + eps);
      }
    });
  }
}

/**
 * torch.nn.utils.clip_grad_norm_(grads, maxNorm) with the L2 norm: total = √(Σ g²) over all arrays
 * (accumulated in float64), coef = maxNorm / (total + 1e-6), and every gradient multiplied by coef
 * when coef < 1. Returns the total norm (before clipping). A non-finite total leaves the gradients
 * as they are (torch would scale them into NaN): the caller sees it and skips the step.
 */
export function clipGradNorm(grads: readonly Float32Array[], maxNorm: number): number {
  if (!(maxNorm > 0)) throw new UsageError(`clipGradNorm: max norm must be > 0, got ${maxNorm}`);
  let sq = 0;
  for (const g of grads) for (let k = 0; k < g.length; k++) sq += g[k]! * g[k]!;
  const total = Math.sqrt(sq);
  if (!Number.isFinite(total)) return total;
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) for (const g of grads) for (let k = 0; k < g.length; k++) g[k] = g[k]! * coef;
  return total;
}

export type LrScheduleName = 'constant' | 'constant_with_warmup' | 'linear';
export const LR_SCHEDULES: readonly LrScheduleName[] = Object.freeze(['constant', 'constant_with_warmup', 'linear']);

export interface LrSchedule {
  /** the base learning rate (HF `learning_rate`) */
  readonly lr: number;
  readonly warmupSteps: number;
  readonly schedule: LrScheduleName;
}

/**
 * The learning rate of the update that follows `step` updates already taken (0 for the first update),
 * as HF's LambdaLR gives it: lr · λ(step), with (transformers optimization.py)
 *   constant:              λ = 1 (warmup ignored, as get_constant_schedule)
 *   constant_with_warmup:  λ = step / max(1, warmup) while step < warmup, else 1
 *   linear:                λ = step / max(1, warmup) while step < warmup,
 *                          else max(0, (total − step) / max(1, total − warmup))
 * So with a warmup the first update has learning rate 0, as in HF.
 */
export function learningRate(step: number, s: LrSchedule, totalSteps: number): number {
  if (!Number.isSafeInteger(step) || step < 0) throw new UsageError(`learning rate: step must be an integer ≥ 0, got ${step}`);
  if (!Number.isSafeInteger(s.warmupSteps) || s.warmupSteps < 0) throw new UsageError(`learning rate: warmup steps must be an integer ≥ 0, got ${s.warmupSteps}`);
  const warm = (): number => step / Math.max(1, s.warmupSteps);
  switch (s.schedule) {
    case 'constant':
      return s.lr;
    case 'constant_with_warmup':
      return s.lr * (step < s.warmupSteps ? warm() : 1);
    case 'linear':
      if (!Number.isSafeInteger(totalSteps) || totalSteps < 0) throw new UsageError(`learning rate: total steps must be an integer ≥ 0, got ${totalSteps}`);
      return s.lr * (step < s.warmupSteps ? warm() : Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - s.warmupSteps)));
  }
  throw new UsageError(`learning rate: unknown schedule "${String(s.schedule)}" (known: ${LR_SCHEDULES.join(', ')})`);
}
