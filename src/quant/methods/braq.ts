/**
 * BRAQ, BiLLM's binarization of one block of columns (Huang et al., 2024), as the reference
 * (Aaronhuang-778/BiLLM @ dc137eb, `braq --salient_metric hessian`) computes it: binary.py
 * high_order_residual, utils/structure.py structural_guassian_distribution, utils/autosearch.py
 * structural_searching, utils/mask.py generate_structural_mask. For a block W1 [rows, g] as it stands
 * when the block is reached, and d_j = U_jj, the diagonal of the upper Cholesky factor of the damped
 * H⁻¹ over the block's columns:
 * 1. salience S = W1² / d² (column j divided by d_j²);
 * 2. salient columns: columns ranked by Σ_rows |S|; for i = 1 .. min(49, g − 1) the top i columns and
 *    the rest of the block are each binarized at order 2, *on S itself*, and scored by the mean squared
 *    error against S; the first (smallest) i with the least error wins (strict <). The reference takes
 *    topk(·, 50) and tries i = 1..49, which needs g ≥ 50; narrower blocks try every i up to g − 1 (at
 *    least one column stays non-salient);
 * 3. break point: 81 candidates p = numpy.quantile(|S ∘ ¬salient|, torch.linspace(0.1, 0.9, 81)) over
 *    the whole block, the salient columns' zeros included; for each, the non-salient entries of S split
 *    into |S| < p (group 1) and |S| ≥ p (group 2), each binarized at order 1 on S, the error taken with
 *    the salient part added; first minimum;
 * 4. W1 itself binarized with those masks: the salient columns at order 2, groups 1 and 2 at order 1,
 *    each with its own per-row μ and α. There is no error feedback inside the block (billm.ts).
 * A binarization of a set M of a row's entries (order 1): μ = mean_M(w), α = mean_M |w − μ|,
 * b = α·sign(w − μ) + μ with sign(0) = 0; order 2 binarizes the residual w − b once more and adds.
 *
 * Float32 as the reference: every value it holds in an fp32 tensor is rounded with Math.fround (S, μ,
 * α, w − μ, b, residuals, errors per entry); sums (means, the errors' totals) are float64. The
 * quantiles follow numpy 1.24.3 (the reference's pin) exactly: see numpyQuantile.
 */
import { BILLM_PARAMS, P_G1, P_G2, P_S1, P_S2, binValue, salientValue } from '../../tensor/billmPack.js';

/** the reference's up_lim: topk(·, 50), salient counts 1..49 */
export const SALIENT_UP_LIM = 50;
const N_LEVELS = 81;

/**
 * torch.linspace(0.10, 0.90, 81) in float32, as torch computes it on the CPU: step = (end − start) / 80
 * in float32, then fma(step, i, start) below the halfway index and fma(−step, 80 − i, end) from it
 * (checked against torch 2.13's CPU output; the product of a float32 step and a small integer is exact
 * in float64, so fround of the float64 expression is the fused result).
 */
export function splitLevels(): Float32Array {
  const start = Math.fround(0.1), end = Math.fround(0.9), steps = N_LEVELS, half = Math.floor(steps / 2);
  const step = Math.fround(Math.fround(end - start) / (steps - 1));
  return Float32Array.from({ length: steps }, (_, i) => (i < half ? Math.fround(step * i + start) : Math.fround(end - step * (steps - 1 - i))));
}

/**
 * numpy.quantile(a, q) (method 'linear') of numpy 1.24.3 for a float32 array `a` given sorted ascending
 * and a float32 level q: the virtual index (n − 1)·q is float32 (numpy's value-based casting of the
 * Python int), gamma = index − floor(index) is float64 (float32 minus an intp array), and the lerp of
 * the float32 neighbours a, b is float64: a + (b − a)·γ, or b − (b − a)·(1 − γ) for γ ≥ 0.5, with
 * b − a itself float32. Returns that float64 value (the reference compares it with float32 S in float32).
 */
export function numpyQuantile(sorted: Float32Array, q: number): number {
  const n = sorted.length;
  if (n === 0) throw new RangeError('quantile of an empty array');
  const virt = Math.fround(Math.fround(n - 1) * Math.fround(q));
  if (virt >= n - 1) return sorted[n - 1]!;
  if (virt < 0) return sorted[0]!;
  const prev = Math.floor(virt);
  const a = sorted[prev]!, b = sorted[prev + 1]!, gamma = virt - prev, diff = Math.fround(b - a);
  return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}

/** Σ x[o, o + n) in float64 (callers pass sums from float64 prefix sums instead, which differ only in rounding order). */
export function rangeSum(x: Float32Array, o: number, n: number): number {
  let sum = 0;
  for (let i = o; i < o + n; i++) sum += x[i]!;
  return sum;
}

/** Σ over x[o, o + n) (whose sum is `sum`) of the float32 squared errors of its order-1 binarization. */
export function order1Error(x: Float32Array, o: number, n: number, sum = rangeSum(x, o, n)): number {
  if (n === 0) return 0;
  const e = o + n;
  const mu = Math.fround(sum / n);
  let dev = 0;
  for (let i = o; i < e; i++) dev += Math.abs(Math.fround(x[i]! - mu));
  const alpha = Math.fround(dev / n);
  let err = 0;
  for (let i = o; i < e; i++) {
    const v = x[i]!, d = Math.fround(v - mu);
    const r = Math.fround(v - binValue(+(d > 0) - +(d < 0), alpha, mu)); // the sign without a branch: 3× faster on random data
    err += Math.fround(r * r);
  }
  return err;
}

/** Σ over x[o, o + n) of the float32 squared errors of its order-2 (residual) binarization; b1 and res: scratch of n. */
export function order2Error(x: Float32Array, o: number, n: number, b1: Float32Array, res: Float32Array, sum = rangeSum(x, o, n)): number {
  if (n === 0) return 0;
  const e = o + n;
  const mu1 = Math.fround(sum / n);
  let dev = 0;
  for (let i = o; i < e; i++) dev += Math.abs(Math.fround(x[i]! - mu1));
  const a1 = Math.fround(dev / n);
  let sumR = 0;
  for (let i = o, k = 0; i < e; i++, k++) {
    const v = x[i]!, d = Math.fround(v - mu1), b = binValue(+(d > 0) - +(d < 0), a1, mu1), r = Math.fround(v - b);
    b1[k] = b; res[k] = r; sumR += r;
  }
  const mu2 = Math.fround(sumR / n);
  let dev2 = 0;
  for (let k = 0; k < n; k++) dev2 += Math.abs(Math.fround(res[k]! - mu2));
  const a2 = Math.fround(dev2 / n);
  let err = 0;
  for (let i = o, k = 0; i < e; i++, k++) {
    const d = Math.fround(res[k]! - mu2);
    const r = Math.fround(x[i]! - Math.fround(b1[k]! + binValue(+(d > 0) - +(d < 0), a2, mu2)));
    err += Math.fround(r * r);
  }
  return err;
}

/** S = W1² / d² in float32 (structure.py, metric "hessian": tmp ** 2 / diag(H) ** 2, H being U there). */
export function salience(W1: Float32Array, rows: number, g: number, d: Float32Array): Float32Array {
  const S = new Float32Array(rows * g), d2 = Float32Array.from(d, (x) => Math.fround(x * x));
  for (let r = 0; r < rows; r++) {
    for (let c = 0, o = r * g; c < g; c++, o++) { const w = W1[o]!; S[o] = Math.fround(Math.fround(w * w) / d2[c]!); }
  }
  return S;
}

export interface BlockSearch {
  /** columns by decreasing Σ_rows |S| (ties: lower index first) */
  readonly ranked: Int32Array;
  /** salient column count chosen (1 .. min(49, g − 1)) */
  readonly salient: number;
  /** 1 for the block's salient columns */
  readonly isSalient: Uint8Array;
  /** the 81 candidate break points (float64, as numpy returns them) and the index chosen */
  readonly candidates: Float64Array;
  readonly splitIndex: number;
  /** the break point as compared with S: float32 */
  readonly split: number;
  /** Σ of squared errors on S: per salient count tried (index i − 1), and at the chosen split */
  readonly salientErrors: Float64Array;
  readonly error: number;
}

/** The two searches of structural_searching on S [rows, g]; g ≥ 2. */
export function searchBlock(S: Float32Array, rows: number, g: number): BlockSearch {
  if (g < 2) throw new RangeError(`a BiLLM block needs at least 2 columns, got ${g}`);
  const colSum = new Float64Array(g);
  for (let r = 0; r < rows; r++) for (let c = 0; c < g; c++) colSum[c]! += Math.abs(S[r * g + c]!);
  const ranked = Int32Array.from({ length: g }, (_, i) => i).sort((a, b) => colSum[b]! - colSum[a]! || a - b);

  // salient count: order 2 on the top i columns and on the rest, per row over S with columns ranked
  const maxI = Math.min(SALIENT_UP_LIM - 1, g - 1);
  const row = new Float32Array(g), b1 = new Float32Array(g), res = new Float32Array(g), prefix = new Float64Array(g + 1);
  const sal = new Float64Array(maxI), rest = new Float64Array(maxI);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < g; k++) { row[k] = S[r * g + ranked[k]!]!; prefix[k + 1] = prefix[k]! + row[k]!; }
    for (let i = 1; i <= maxI; i++) {
      sal[i - 1]! += order2Error(row, 0, i, b1, res, prefix[i]!);
      rest[i - 1]! += order2Error(row, i, g - i, b1, res, prefix[g]! - prefix[i]!);
    }
  }
  let k = 0, best = Infinity;
  const salientErrors = new Float64Array(maxI);
  for (let i = 1; i <= maxI; i++) {
    const err = sal[i - 1]! + rest[i - 1]!;
    salientErrors[i - 1] = err;
    if (err < best) { best = err; k = i; }
  }
  if (k === 0) throw new RangeError('the salient-column search found no finite error (non-finite salience)');
  const isSalient = new Uint8Array(g);
  for (let i = 0; i < k; i++) isSalient[ranked[i]!] = 1;

  // break point: quantiles of |S| with the salient columns zeroed, over the whole block
  const flat = new Float32Array(rows * g);
  for (let r = 0; r < rows; r++) for (let c = 0; c < g; c++) flat[r * g + c] = isSalient[c] ? 0 : Math.abs(S[r * g + c]!);
  flat.sort();
  const levels = splitLevels();
  const candidates = Float64Array.from(levels, (q) => numpyQuantile(flat, q));
  // candidates equal in float32 give the same masks and error: only the first of each run is scored
  const distinct: number[] = [];
  for (let i = 0; i < N_LEVELS; i++) if (i === 0 || Math.fround(candidates[i]!) !== Math.fround(candidates[i - 1]!)) distinct.push(i);
  const m = g - k, ns = new Float32Array(m), splitErr = new Float64Array(N_LEVELS).fill(sal[k - 1]!);
  const nsPrefix = new Float64Array(m + 1);
  for (let r = 0; r < rows; r++) {
    for (let c = 0, j = 0; c < g; c++) if (!isSalient[c]) ns[j++] = Math.abs(S[r * g + c]!);
    ns.sort();
    for (let j = 0; j < m; j++) nsPrefix[j + 1] = nsPrefix[j]! + ns[j]!;
    let j = 0; // entries below the break point: candidates ascend, so j only grows
    for (const ci of distinct) {
      const p = Math.fround(candidates[ci]!);
      while (j < m && ns[j]! < p) j++;
      splitErr[ci]! += order1Error(ns, 0, j, nsPrefix[j]!) + order1Error(ns, j, m - j, nsPrefix[m]! - nsPrefix[j]!);
    }
  }
  let splitIndex = -1, error = Infinity;
  for (const ci of distinct) if (splitErr[ci]! < error) { error = splitErr[ci]!; splitIndex = ci; }
  if (splitIndex < 0) throw new RangeError('the break-point search found no finite error (non-finite salience)');
  return { ranked, salient: k, isSalient, candidates, splitIndex, split: Math.fround(candidates[splitIndex]!), salientErrors, error };
}

/** Where binarizeBlock writes one block of a layer. */
export interface BlockSink {
  readonly rows: number;
  readonly cols: number;
  /** the block's first column and its index */
  readonly col0: number;
  readonly block: number;
  readonly blocks: number;
  /** [2, rows, ceil(cols/8)] bit planes (billmPack.ts) */
  readonly planes: Uint8Array;
  /** [rows, blocks, 8] */
  readonly params: Float32Array;
  /** positions 2·(r·cols + c) + plane of zero signs */
  readonly zeroSigns: number[];
  /** [rows, cols] the fake-quantized layer */
  readonly Q: Float32Array;
}

/**
 * Binarizes W1 [rows, g] with the block's masks: salient columns at order 2, the rest split by S < split
 * into group 1 and group 2 at order 1. `round` is applied to every μ and α as soon as it is computed
 * (identity for float32 parameters; through fp16 for --scale-dtype f16), so the stored values are the
 * ones used. Writes the planes, parameters, zero signs and Q of the block.
 */
export function binarizeBlock(W1: Float32Array, S: Float32Array, g: number, isSalient: Uint8Array, split: number,
  round: (x: number) => number, o: BlockSink): void {
  const { rows, cols, col0 } = o, B = Math.ceil(cols / 8), plane1 = rows * B;
  const sal: number[] = [];
  for (let c = 0; c < g; c++) if (isSalient[c]) sal.push(c);
  const k = sal.length, s1 = new Int8Array(k), res = new Float32Array(k), grp = new Uint8Array(g);
  const setBit = (plane: number, r: number, c: number) => { o.planes[plane * plane1 + r * B + (c >> 3)]! |= 1 << (c & 7); };
  const sign = (plane: number, r: number, c: number, d: number): number => {
    if (d > 0) { setBit(plane, r, c); return 1; }
    if (d < 0) return -1;
    o.zeroSigns.push(2 * (r * cols + c) + plane);
    return 0;
  };
  for (let r = 0; r < rows; r++) {
    const w = (c: number) => W1[r * g + c]!;
    const P = (r * o.blocks + o.block) * BILLM_PARAMS, q = r * cols + col0;
    // salient columns: order 2
    let sum = 0;
    for (const c of sal) sum += w(c);
    const m1 = round(Math.fround(sum / k));
    let dev = 0;
    for (const c of sal) dev += Math.abs(Math.fround(w(c) - m1));
    const a1 = round(Math.fround(dev / k));
    let sumR = 0;
    for (let i = 0; i < k; i++) {
      const c = sal[i]!, s = sign(0, r, col0 + c, Math.fround(w(c) - m1));
      s1[i] = s;
      res[i] = Math.fround(w(c) - binValue(s, a1, m1));
      sumR += res[i]!;
    }
    const m2 = round(Math.fround(sumR / k));
    let dev2 = 0;
    for (let i = 0; i < k; i++) dev2 += Math.abs(Math.fround(res[i]! - m2));
    const a2 = round(Math.fround(dev2 / k));
    for (let i = 0; i < k; i++) {
      const c = sal[i]!, s2 = sign(1, r, col0 + c, Math.fround(res[i]! - m2));
      o.Q[q + c] = salientValue(s1[i]!, a1, m1, s2, a2, m2);
    }
    o.params.set([m1, a1, m2, a2], P + P_S1);
    // the rest: two groups by the break point on S, order 1 each
    const n = [0, 0], sums = [0, 0];
    for (let c = 0; c < g; c++) {
      if (isSalient[c]) continue;
      const gi = S[r * g + c]! < split ? 0 : 1;
      grp[c] = gi; n[gi]!++; sums[gi]! += w(c);
    }
    const mu = [0, 1].map((gi) => (n[gi] ? round(Math.fround(sums[gi]! / n[gi]!)) : 0));
    const devs = [0, 0];
    for (let c = 0; c < g; c++) if (!isSalient[c]) devs[grp[c]!]! += Math.abs(Math.fround(w(c) - mu[grp[c]!]!));
    const al = [0, 1].map((gi) => (n[gi] ? round(Math.fround(devs[gi]! / n[gi]!)) : 0));
    for (let c = 0; c < g; c++) {
      if (isSalient[c]) continue;
      const gi = grp[c]!;
      if (gi === 1) setBit(1, r, col0 + c);
      const s = sign(0, r, col0 + c, Math.fround(w(c) - mu[gi]!));
      o.Q[q + c] = binValue(s, al[gi]!, mu[gi]!);
    }
    o.params.set([mu[0]!, al[0]!], P + P_G1);
    o.params.set([mu[1]!, al[1]!], P + P_G2);
  }
}
