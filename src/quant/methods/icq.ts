/**
 * ICQ, Information Calibration Quantization, the quantizer of IR-QLoRA (Qin et al., 2024), as
 * htqin/IR-QLoRA utils.py (commit e6fef4ac13f311350b51bc59aaf971cf6bef021b) runs it with the repository's
 * scripts/finetune.sh settings `--tau_lambda 0.1 --tau_n 100 --blocksize2 256`:
 *
 * 1. Blocks. The weight is flattened and viewed as [-1, 256, 64] (search, lines 63-65): blocks of 64
 *    consecutive weights (the NF4 blocks), in groups of 256 blocks. The reference needs a multiple of
 *    256 · 64 weights; lowbit lets the last group be shorter, so a tensor with fewer than 256 blocks
 *    (a LLaMA k/v projection of the bundled model) forms one group.
 * 2. Candidates (lines 66-70). Per block: τ0 = its median (torch.median: the lower middle value, the
 *    32nd smallest of 64), a = max |w − τ0|, and for each factor λ of
 *    np.linspace(−0.1σ, 0.1σ, 2·100 + 1) (201 values, float64), σ = 1 / norm.ppf(0.9677083) as float32
 *    linspace gives it (line 15; SIGMA below), the shift τ = λ · a + τ0 (float32 tensor ops: λ rounded
 *    to float32, two roundings).
 * 3. Entropy (evaluate_entropy, lines 50-60). The NF4 codes of w − τ (bitsandbytes, nf4.ts: the block's
 *    own absmax), their histogram over the 16 codes, p = count / 64, H = Σ −p · log2 p in float32
 *    (terms with p = 0 are 0). lowbit sums the 16 terms in code order; torch's reduction order can differ
 *    by an ulp, which matters only where two different histograms tie to within that ulp.
 * 4. Choice (lines 73-81). The first λ with the largest H (`torch.where(entropy > entropy_max, ...)`,
 *    strict): earlier factors win ties, the search starting from −0.1σ.
 * 5. Storage (nf4_quant, lines 40-47, called at line 82). The NF4 quantization (with double quantization of its absmax when
 *    asked: the reference's `bnb_4bit_use_double_quant`, on by default in irlora.py) of w − τ with the
 *    unquantized τ, and τ itself quantized per group of 256 blocks: τ2 = max |τ| over the group (float32),
 *    code = argmin_k |τ/τ2 − map_k| over the dynamic map (quantize_tensor: float32 division, the first
 *    index of the smallest float32 distance; τ2 = 0 gives NaN and code 0, torch.argmin's NaN rule).
 * 6. Dequantization (IRQLoraLinear4bit.forward, lines 131-134): the NF4 weight as bitsandbytes decodes it,
 *    plus τ = fround(map[code] · τ2) of its block (float32; the reference then casts to the compute dtype,
 *    bf16 in its runs; lowbit keeps float32).
 *
 * The stored kinds are `icq` and `icqdq` (tensor/nf4Pack.ts): NF4's parts plus τ's codes and group absmax:
 * 4 + 32/64 + 8/64 + 32/(64·256) ≈ 4.63 bits per weight plain, ≈ 4.25 with double quantization.
 */
import { UsageError } from '../../errors.js';
import { DYNAMIC_MAP, NESTED_BLOCK, NF4_BLOCK, NF4_LEVELS, dequantNested, nf4KindName, packNf4 } from '../../tensor/nf4Pack.js';
import type { QuantMethod } from '../method.js';
import { DOUBLE_QUANT_OPTION, dQuantizeNF4, nf4, validateNf4Spec } from './nf4.js';

const f = Math.fround;

/** 1 / norm.ppf(float32(0.9677083)) = 1 / norm.ppf(0.9677082896232605), scipy 1.17.1 (utils.py line 15). */
export const SIGMA = 0.5410872368978237;

/** np.linspace(−λσ, λσ, 2n + 1) in float64, as numpy computes it: k · step + start, the last value exactly the stop. */
export function tauFactors(tauLambda: number, tauN: number): Float64Array {
  const num = 2 * tauN + 1, start = -tauLambda * SIGMA, stop = tauLambda * SIGMA;
  const out = new Float64Array(num), step = (stop - start) / (num - 1);
  for (let k = 0; k < num; k++) out[k] = k * step + start;
  out[num - 1] = stop;
  return out;
}

/** −p · log2 p in float32 for p = count / 64, count = 0..64 (0 for count 0: the reference's NaN → 0). */
const ENTROPY_TERMS = Float32Array.from({ length: NF4_BLOCK + 1 }, (_, c) => {
  if (c === 0) return 0;
  const p = f(c / NF4_BLOCK);
  return f(-p * f(Math.log2(p)));
});

/** evaluate_entropy of one block's codes: Σ over the 16 codes, in code order, in float32. */
export function blockEntropy(hist: Int32Array): number {
  let h = 0;
  for (let k = 0; k < 16; k++) h = f(h + ENTROPY_TERMS[hist[k]!]!);
  return h;
}

/** The shift τ of each block of 64 (the last possibly shorter) that maximizes the entropy of its NF4 codes. */
export function icqShifts(w: Float32Array, factors: Float64Array): Float32Array {
  const blocks = Math.ceil(w.length / NF4_BLOCK), tau = new Float32Array(blocks);
  const lambdas = Float32Array.from(factors);
  const hist = new Int32Array(16), shifted = new Float32Array(NF4_BLOCK);
  for (let b = 0; b < blocks; b++) {
    const blk = w.subarray(b * NF4_BLOCK, Math.min(w.length, (b + 1) * NF4_BLOCK)), n = blk.length;
    const tau0 = Float32Array.from(blk).sort()[(n - 1) >> 1]!;
    let a = 0;
    for (let i = 0; i < n; i++) a = Math.max(a, Math.abs(f(blk[i]! - tau0)));
    let best = -Infinity, bestTau = tau0;
    for (const lambda of lambdas) {
      const t = f(f(lambda * a) + tau0);
      let am = -3.4028234663852886e38;
      for (let i = 0; i < n; i++) { shifted[i] = blk[i]! - t; am = Math.max(am, Math.abs(shifted[i]!)); }
      const inv = f(1 / am);
      hist.fill(0);
      for (let i = 0; i < n; i++) hist[dQuantizeNF4(f(shifted[i]! * inv))]!++;
      const h = blockEntropy(hist);
      if (h > best) { best = h; bestTau = t; }
    }
    tau[b] = bestTau;
  }
  return tau;
}

/** τ per group of 256 blocks on the dynamic map (quantize_tensor): codes and each group's absmax. */
export function quantizeTau(tau: Float32Array): { q: Uint8Array; absmax: Float32Array } {
  const groups = Math.ceil(tau.length / NESTED_BLOCK), absmax = new Float32Array(groups), q = new Uint8Array(tau.length);
  for (let g = 0; g < groups; g++) {
    const b0 = g * NESTED_BLOCK, b1 = Math.min(tau.length, b0 + NESTED_BLOCK);
    let m = 0;
    for (let b = b0; b < b1; b++) m = Math.max(m, Math.abs(tau[b]!));
    absmax[g] = m;
    for (let b = b0; b < b1; b++) {
      const x = f(tau[b]! / m);
      let best = 0, bestD = Number.NaN;
      if (!Number.isNaN(x)) {
        bestD = Infinity;
        for (let k = 0; k < 256; k++) { const d = Math.abs(f(x - DYNAMIC_MAP[k]!)); if (d < bestD) { bestD = d; best = k; } }
      }
      q[b] = best;
    }
  }
  return { q, absmax };
}

export interface IcqResult {
  /** the dequantized weights: fround(NF4 value + τ of the block) */
  readonly Q: Float32Array;
  readonly codes: Uint8Array;
  readonly absmax: ReturnType<typeof nf4>['absmax'];
  readonly tau: { readonly q: Uint8Array; readonly absmax: Float32Array };
  /** τ as searched (before its 8-bit quantization) */
  readonly tauSearched: Float32Array;
}

/** ICQ of a flattened weight. */
export function icq(w: Float32Array, o: { tauLambda: number; tauN: number; doubleQuant: boolean }): IcqResult {
  const tauSearched = icqShifts(w, tauFactors(o.tauLambda, o.tauN));
  const shifted = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) shifted[i] = w[i]! - tauSearched[Math.floor(i / NF4_BLOCK)]!;
  const r = nf4(shifted, o.doubleQuant);
  const tau = quantizeTau(tauSearched), tauQ = dequantNested(tau.q, tau.absmax);
  const Q = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const b = Math.floor(i / NF4_BLOCK);
    Q[i] = f(NF4_LEVELS[r.codes[i]!]! * r.absmaxUsed[b]!) + tauQ[b]!;
  }
  return { Q, codes: r.codes, absmax: r.absmax, tau, tauSearched };
}

/** ICQ as a pipeline method: no statistics, the `icq` (or `icqdq`) stored kind. */
export const ICQ: QuantMethod = {
  name: 'icq',
  label: 'ICQ',
  description: 'IR-QLoRA\'s Information Calibration Quantization: NF4 of each 64-block shifted by the τ that maximizes its codes\' entropy (Qin et al., 2024; htqin/IR-QLoRA)',
  stats: [],
  needsCalibration: false,
  defaultGroupSize: NF4_BLOCK,
  symmetric: true,
  nextInputs: 'quantized',
  sequential: false,
  options: {
    doubleQuant: DOUBLE_QUANT_OPTION,
    tauLambda: {
      kind: 'number', default: 0.1, min: 0, max: 1, flag: '--tau-lambda', key: (v) => `tl${v}`,
      help: 'the τ search spans ±λ·σ times the block\'s absmax around its median (IR-QLoRA --tau_lambda)',
    },
    tauN: { kind: 'integer', default: 100, min: 1, max: 10000, flag: '--tau-n', key: (v) => `tn${v}`, help: 'the τ search tries 2n + 1 shifts (IR-QLoRA --tau_n)' },
  },
  format: (_spec, _cfg, options) => nf4KindName(options.doubleQuant === true, true),
  nominalBits: () => 4,
  validate: (spec) => validateNf4Spec('icq', spec),
  quantizeLayer(l, o) {
    if (l.cols % 2 !== 0) throw new UsageError(`${l.name}: icq packs two codes a byte and needs an even input width, got ${l.cols}`);
    const dq = o.options.doubleQuant === true;
    const r = icq(l.W, { tauLambda: o.options.tauLambda as number, tauN: o.options.tauN as number, doubleQuant: dq });
    const parts = packNf4({ rows: l.rows, cols: l.cols, codes: r.codes, absmax: r.absmax, tau: r.tau });
    return { Q: r.Q, stored: { kind: nf4KindName(dq, true), parts }, notes: [] };
  },
};
