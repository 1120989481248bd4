/**
 * KL-divergence between a base model's and a quantized model's next-token distributions, folded one vocabulary chunk
 * at a time (llama.cpp's `--kl-divergence` quantities, computed without ever holding a full-vocabulary row).
 *
 * Per position, with a = base logits and b = quantized logits over the whole vocabulary:
 *
 *   KL(P_base ‖ P_quant) = Σ_v p_v (log p_v − log q_v) = E_p[a − b] − lse(a) + lse(b)
 *
 * E_p[a − b] is a softmax-weighted sum that streams like a log-sum-exp: keep the running max m of a,
 * S = Σ exp(a_v − m) and W = Σ exp(a_v − m)(a_v − b_v), rescaling both by exp(m_old − m_new) when the max grows; then
 * E_p[a − b] = W / S and lse(a) = m + log S. Everything is float64 on the host; the logits come in as float32.
 * Top-1 agreement compares the arg-max of a and b (the first index on a tie, as argmax does).
 */

/** Per-position accumulators of one sequence of P scored positions. */
export class KlAccumulator {
  private readonly mA: Float64Array; private readonly sA: Float64Array; private readonly w: Float64Array;
  private readonly mB: Float64Array; private readonly sB: Float64Array;
  private readonly argA: Int32Array; private readonly argB: Int32Array;
  private readonly pickedA: Float64Array; private readonly pickedB: Float64Array;

  /** `targets[t]`: the token position t predicts (for the two NLLs, hence the two perplexities). */
  constructor(readonly P: number, private readonly targets: Int32Array) {
    if (targets.length !== P) throw new RangeError(`KlAccumulator: ${targets.length} targets for ${P} positions`);
    this.mA = new Float64Array(P).fill(-Infinity); this.sA = new Float64Array(P); this.w = new Float64Array(P);
    this.mB = new Float64Array(P).fill(-Infinity); this.sB = new Float64Array(P);
    this.argA = new Int32Array(P).fill(-1); this.argB = new Int32Array(P).fill(-1);
    this.pickedA = new Float64Array(P).fill(NaN); this.pickedB = new Float64Array(P).fill(NaN);
  }

  /** Folds the logits of vocabulary entries v0..v0+c−1: `a` (base) and `b` (quantized), both [P, c] row-major. */
  fold(a: Float32Array, b: Float32Array, v0: number, c: number): void {
    const { P } = this;
    if (a.length !== P * c || b.length !== P * c) throw new RangeError(`KlAccumulator.fold: expected ${P}×${c} logits, got ${a.length} and ${b.length}`);
    for (let t = 0; t < P; t++) {
      let mA = this.mA[t]!, sA = this.sA[t]!, w = this.w[t]!, argA = this.argA[t]!;
      let mB = this.mB[t]!, sB = this.sB[t]!, argB = this.argB[t]!;
      const o = t * c;
      for (let k = 0; k < c; k++) {
        const x = a[o + k]!, y = b[o + k]!;
        if (x > mA) {
          const r = Math.exp(mA - x); // 0 on the first entry (mA = −∞)
          sA = sA * r + 1; w = w * r + (x - y); mA = x; argA = v0 + k;
        } else {
          const e = Math.exp(x - mA);
          sA += e; w += e * (x - y);
        }
        if (y > mB) { sB = sB * Math.exp(mB - y) + 1; mB = y; argB = v0 + k; } else sB += Math.exp(y - mB);
      }
      this.mA[t] = mA; this.sA[t] = sA; this.w[t] = w; this.argA[t] = argA;
      this.mB[t] = mB; this.sB[t] = sB; this.argB[t] = argB;
      const k = this.targets[t]! - v0;
      if (k >= 0 && k < c) { this.pickedA[t] = a[o + k]!; this.pickedB[t] = b[o + k]!; }
    }
  }

  /** KL per position, whether the two arg-maxes agree, and each model's NLL of the target, once every chunk is folded. */
  finish(): { kl: Float64Array; sameTop: Uint8Array; nllBase: Float64Array; nllQuant: Float64Array } {
    const { P } = this;
    const kl = new Float64Array(P), sameTop = new Uint8Array(P), nllBase = new Float64Array(P), nllQuant = new Float64Array(P);
    for (let t = 0; t < P; t++) {
      const lseA = this.mA[t]! + Math.log(this.sA[t]!), lseB = this.mB[t]! + Math.log(this.sB[t]!);
      kl[t] = this.w[t]! / this.sA[t]! - lseA + lseB;
      sameTop[t] = this.argA[t] === this.argB[t] ? 1 : 0;
      nllBase[t] = lseA - this.pickedA[t]!;
      nllQuant[t] = lseB - this.pickedB[t]!;
    }
    return { kl, sameTop, nllBase, nllQuant };
  }
}

/** What llama.cpp's KL-divergence mode prints about the per-token KL values, plus the top-1 agreement. */
export interface KlSummary {
  readonly tokens: number;
  readonly mean: number;
  /** standard error of the mean: sample standard deviation / √n */
  readonly stderr: number;
  readonly max: number;
  readonly p999: number;
  readonly p99: number;
  readonly p90: number;
  readonly median: number;
  readonly min: number;
  /** fraction of positions where the two models' most likely tokens agree ("Same top p") and its standard error */
  readonly sameTop: number;
  readonly sameTopStderr: number;
}

/** Percentile q ∈ [0, 1] of sorted values, linearly interpolated between the two nearest ranks (numpy's default). */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const x = q * (sorted.length - 1), i = Math.floor(x), f = x - i;
  return i + 1 < sorted.length ? sorted[i]! * (1 - f) + sorted[i + 1]! * f : sorted[i]!;
}

/** Mean with standard error, percentiles and extremes of per-token KL values; `same` counts agreeing top-1 tokens. */
export function summarizeKl(kl: Float64Array, same: number): KlSummary {
  const n = kl.length;
  if (n === 0) throw new RangeError('summarizeKl: no tokens');
  let sum = 0;
  for (let i = 0; i < n; i++) sum += kl[i]!;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (kl[i]! - mean) ** 2;
  const stderr = n > 1 ? Math.sqrt(ss / (n - 1) / n) : NaN;
  const sorted = Float64Array.from(kl).sort();
  const p = same / n;
  return {
    tokens: n, mean, stderr, max: sorted[n - 1]!, p999: percentile(sorted, 0.999), p99: percentile(sorted, 0.99), p90: percentile(sorted, 0.9),
    median: percentile(sorted, 0.5), min: sorted[0]!, sameTop: p, sameTopStderr: n > 1 ? Math.sqrt(p * (1 - p) / (n - 1)) : NaN,
  };
}
