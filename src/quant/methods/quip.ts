/**
 * QuIP, quantization with incoherence processing (Chee et al., 2023), the original (not QuIP#), as
 * Cornell-RelaxML/QuIP (ac92cfc) runs `opt.py --quant ldlq --incoh_processing` per linear layer
 * (method.py preproc/postproc, bal.py fasterquant, vector_balance.py quantize_weight_vecbal + round_ldl),
 * in the reference's order (preproc: rescale → proj → gptqH):
 *
 * 0. W as the reference's fp16 model holds it (fp16 casts on; see below).
 * 1. Hessian. The pipeline's H is 2/n·Σ x xᵀ (n = calibration sequences); the reference's is Σ x xᵀ / n.
 *    The factor 2 is exact in floating point and step 2 divides H by max|H|, so from there on the two
 *    are the same numbers. Float64 here (the reference: float64 sums, then float32).
 * 2. pre_rescale: H /= max|H|; D = (max(diag H, 1e-8) / max(diag WᵀW, 1e-8))^(1/4) in float32, clamped
 *    to ≥ 1e-8; W ← W·diag(D) (then fp16); H ← D⁻¹ H D⁻¹. (An all-zero H is left at 0 instead of the
 *    reference's 0/0 = NaN.)
 * 3. pre_proj: H ← n·H/(tr H + 1e-8) + 0.01·I; W ← U·W·Vᵀ (then fp16); H ← V·H·Vᵀ, with U (out) and V
 *    (in) the seeded block butterflies of tensor/quipTransform.ts (the reference's unseeded
 *    rand_ortho_butterfly; the `proj_extra` typo makes it the two-stage block butterfly, not the
 *    Kronecker product the paper describes).
 * 4. pre_gptqH: dead columns (diag H = 0: H_ii = 1, W[:, i] = 0), then H += percdamp·mean(diag H)·I.
 * 5. qfn 'b': s = 2.4·sqrt(mean(W²)) + 1e-16 over the whole matrix, targets
 *    x = clamp(((W/s + 1)/2)·maxq, 0, maxq): the 2^b-level symmetric grid on [−s, s], clamped before rounding.
 *    (`--scale-dtype f16` rounds s through fp16; an all-zero weight gets the smallest positive s instead of
 *    the reference's fp16 scale of 0 and its NaNs.)
 * 6. LDLQ (ldlq.ts): last column first, floor(x + 0.5), no greedy passes.
 * 7. postproc: W = fp16(fp16(Uᵀ·G·V) ⊘ D), G = fp16(s·(2q/maxq − 1)) (tensor/quipPack.ts, which also
 *    rebuilds it from the stored parts on load: the Q returned here is that rebuild, bit for bit).
 *
 * fp16 casts (`quipFp16`, default on = the reference protocol): the reference quantizes an fp16 model and
 * rounds W to fp16 at every stage: the model's own weights, after ·D (method.py:155), after U·W·Vᵀ (:179),
 * the qfn-b scale and target arithmetic in fp16 (vector_balance.py:522-524: s = fp16 ops on W², targets
 * each op rounded to fp16), the grid values (`.half()`, :530), after Uᵀ·Ŵ·V (method.py:204) and after
 * ⊘D (:213). All of those are emulated (float32 result, then fp16, round to nearest even). With
 * `--no-quip-fp16` each of them rounds to float32 instead (what the reference would do with a float32
 * model, `.half()` of the grid values dropped). Everything else is float64 here where the reference uses
 * float32 (rescaling, trace normalisation, V·H·Vᵀ, Cholesky, LDLQ, the transforms, which it also
 * materialises as dense float32 matrices): the codes can differ where a target sits within float32
 * rounding of a half-integer.
 *
 * Seeding: the transforms of layer `name` are drawn from quipLayerSeed(--seed, name) (the reference's
 * draws are unseeded; only their distribution can match); the seed is stored with the layer.
 */
import { LowbitError, UsageError } from '../../errors.js';
import type { QuantLinalg } from '../core/linalgProvider.js';
import type { QuantMethod } from '../method.js';
import { applyButterfly, butterflyProblem, quipLayerSeed, transposeSquare, transposed, type GemmF64 } from '../../tensor/quipTransform.js';
import { QUIP_BITS, QUIP_KIND_NAME, half, packQuipCodes, quipTensors, quipTransforms, rebuildQuipWeight, type QuipLayerParts } from '../../tensor/quipPack.js';
import { ldlq } from './ldlq.js';

export interface QuipOptions {
  readonly bits: number;
  /** damping after rotation, as a fraction of mean(diag H) (0.01) */
  readonly percdamp?: number;
  /** the reference's fp16 casts (true) or float32 (false) */
  readonly fp16?: boolean;
  /** 'f16': the grid scale s rounded through fp16 (lowbit's --scale-dtype; already so with the fp16 casts) */
  readonly scaleDtype?: 'f32' | 'f16';
  /** the layer's transform seed (uint32), e.g. quipLayerSeed(run seed, layer name) */
  readonly seed: number;
  readonly linalg?: QuantLinalg | undefined;
  /** layer name for errors */
  readonly where?: string;
}

export interface QuipResult {
  /** the fake-quantized weight [rows, cols]: rebuildQuipWeight of the stored parts */
  readonly Q: Float32Array;
  readonly codes: Uint8Array;
  readonly parts: QuipLayerParts;
  readonly notes: string[];
  /** wall-clock seconds of the stages: drawing U and V, pre-processing (rescale, rotations, damping, targets), LDLQ, the rebuild */
  readonly seconds: { readonly transforms: number; readonly preprocess: number; readonly ldlq: number; readonly rebuild: number };
}

const f = Math.fround;

/** QuIP on one layer: W [rows, cols] (float32), H [cols, cols] (float64, not modified). */
export function quip(W: Float32Array, rows: number, cols: number, H: Float64Array, o: QuipOptions): QuipResult {
  const at = o.where ? `${o.where}: ` : '';
  const { bits } = o;
  if (!QUIP_BITS.includes(bits)) throw new UsageError(`${at}QuIP quantizes to ${QUIP_BITS.join(', ')} bits (the reference's --wbits), not ${bits}`);
  if (W.length !== rows * cols) throw new UsageError(`${at}weight has ${W.length} values, expected ${rows}x${cols}`);
  if (H.length !== cols * cols) throw new UsageError(`${at}Hessian has ${H.length} values, expected ${cols}x${cols}`);
  for (const [what, n] of [['output features', rows], ['input features', cols]] as const) {
    const why = butterflyProblem(n);
    if (why) throw new UsageError(`${at}QuIP cannot build its random orthogonal transform for the ${n} ${what}: ${why}`);
  }
  const fp16 = o.fp16 ?? true, percdamp = o.percdamp ?? 0.01;
  const clock = { t: performance.now(), transforms: 0, preprocess: 0, ldlq: 0, rebuild: 0 };
  const lap = (k: 'transforms' | 'preprocess' | 'ldlq' | 'rebuild') => { const t = performance.now(); clock[k] += (t - clock.t) / 1000; clock.t = t; };
  const r16 = fp16 ? half : f; // the dtype W is held in between stages
  const maxq = 2 ** bits - 1, n = cols;
  const notes: string[] = [];
  const gemm: GemmF64 | undefined = o.linalg?.gemmF64?.bind(o.linalg);

  // 0. the model's weights (fp16 in the reference)
  const Wd = new Float64Array(rows * cols);
  for (let i = 0; i < Wd.length; i++) {
    const x = W[i]!;
    if (!Number.isFinite(x)) throw new UsageError(`${at}weight [${Math.floor(i / cols)}, ${i % cols}] is ${x}`);
    Wd[i] = r16(x);
  }
  const Hd = H.slice();

  // 2. pre_rescale
  let hmax = 0;
  for (let i = 0; i < Hd.length; i++) { const v = Math.abs(Hd[i]!); if (v > hmax) hmax = v; }
  if (!Number.isFinite(hmax)) throw new UsageError(`${at}the Hessian holds non-finite values`);
  if (hmax > 0) for (let i = 0; i < Hd.length; i++) Hd[i]! /= hmax;
  const colSq = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) { const x = Wd[r * cols + c]!; colSq[c]! += x * x; }
  const D = new Float32Array(cols), eps = f(1e-8);
  for (let c = 0; c < cols; c++) {
    const dH = Math.max(f(Hd[c * n + c]!), eps), dW = Math.max(f(colSq[c]!), eps);
    D[c] = Math.max(f(Math.sqrt(f(Math.sqrt(f(dH / dW))))), eps);
  }
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) Wd[r * cols + c] = r16(f(Wd[r * cols + c]! * D[c]!));
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Hd[i * n + j] = Hd[i * n + j]! / D[j]! / D[i]!;

  // 3. pre_proj
  let tr = 0;
  for (let i = 0; i < n; i++) tr += Hd[i * n + i]!;
  const norm = n / (tr + 1e-8);
  for (let i = 0; i < Hd.length; i++) Hd[i]! *= norm;
  for (let i = 0; i < n; i++) Hd[i * n + i]! += 0.01;
  lap('preprocess');
  const t = quipTransforms(rows, cols, o.seed);
  lap('transforms');
  applyButterfly(t.V, Wd, rows, false, gemm);            // W·Vᵀ
  const Wt = transposed(Wd, rows, cols);
  applyButterfly(t.U, Wt, cols, false, gemm);            // columns: U·(W·Vᵀ)
  const W2 = transposed(Wt, cols, rows);
  for (let i = 0; i < W2.length; i++) W2[i] = r16(W2[i]!);
  applyButterfly(t.V, Hd, n, false, gemm);               // H·Vᵀ
  transposeSquare(Hd, n);                                // V·H
  applyButterfly(t.V, Hd, n, false, gemm);               // V·H·Vᵀ

  // 4. pre_gptqH
  let dead = 0, mean = 0;
  for (let i = 0; i < n; i++) {
    if (Hd[i * n + i] === 0) { Hd[i * n + i] = 1; for (let r = 0; r < rows; r++) W2[r * cols + i] = 0; dead++; }
    mean += Hd[i * n + i]!;
  }
  if (dead) notes.push(`${dead} dead input column(s) after the rotation (H_ii = 0): weights zeroed`);
  const damp = (percdamp * mean) / n;
  for (let i = 0; i < n; i++) Hd[i * n + i]! += damp;

  // 5. qfn 'b': one scale for the matrix, targets in grid units
  let sq = 0;
  for (let i = 0; i < W2.length; i++) { const x = W2[i]!; sq += r16(x * x); }
  let s = fp16 ? half(f(2.4) * half(Math.sqrt(half(sq / W2.length)))) : f(f(f(2.4) * f(Math.sqrt(f(sq / W2.length)))) + f(1e-16));
  if (o.scaleDtype === 'f16') s = half(s);
  if (!(s > 0)) {
    s = fp16 || o.scaleDtype === 'f16' ? 2 ** -24 : f(1e-16); // an all-zero weight (the reference divides by an fp16 scale of 0)
    notes.push('all-zero weight: the grid scale is the smallest positive value');
  }
  if (!Number.isFinite(s)) throw new UsageError(`${at}the transformed weight's RMS overflows fp16 (use --no-quip-fp16)`);
  const X = new Float32Array(rows * cols);
  for (let i = 0; i < X.length; i++) {
    const v = r16(r16(r16(r16(W2[i]! / s) + 1) / 2) * maxq);
    X[i] = v < 0 ? 0 : v > maxq ? maxq : v;
  }

  // 6. LDLQ
  lap('preprocess');
  const codes = ldlq(X, rows, cols, Hd, maxq, { linalg: o.linalg, ...(o.where ? { where: o.where } : {}) });
  lap('ldlq');

  // 7. postproc: the stored parts, and Q rebuilt from them exactly as a reader does
  const parts: QuipLayerParts = { rows, cols, bits, qweight: packQuipCodes(codes, rows, cols, bits), scale: s, D, seed: o.seed >>> 0, fp16 };
  const Q = rebuildQuipWeight(parts, t);
  for (let i = 0; i < Q.length; i++) {
    if (!Number.isFinite(Q[i]!)) throw new LowbitError(`${at}the back-transformed weight [${Math.floor(i / cols)}, ${i % cols}] is ${Q[i]} (overflows fp16? try --no-quip-fp16)`);
  }
  lap('rebuild');
  const { transforms, preprocess, ldlq: ldlqSeconds, rebuild } = clock;
  return { Q, codes, parts, notes, seconds: { transforms, preprocess, ldlq: ldlqSeconds, rebuild } };
}

/** QuIP as a pipeline method: Hessians, all seven linears from one forward, the `quip` stored kind. */
export const QUIP: QuantMethod = {
  name: 'quip',
  label: 'QuIP',
  description: 'QuIP: incoherence processing (random orthogonal butterflies, diagonal rescaling) + LDLQ rounding (Chee et al., 2023)',
  stats: ['hessian'],
  needsCalibration: true,
  defaultGroupSize: -1,
  symmetric: true,
  nextInputs: 'quantized',
  sequential: false,
  options: {
    percdamp: { kind: 'number', default: 0.01, min: 0, max: 10, flag: '--percdamp', help: 'damping as a fraction of mean(diag H)', key: (v) => `d${v}` },
    quipFp16: {
      kind: 'boolean', default: true, flag: '--quip-fp16', key: (v) => (v ? 'fp16' : 'f32w'),
      help: 'round the weight to fp16 at each stage, as the reference\'s fp16 model (--no-quip-fp16: float32)',
    },
  },
  format: () => QUIP_KIND_NAME,
  nominalBits: (spec) => spec.bits,
  validate(spec) {
    if (!QUIP_BITS.includes(spec.bits)) {
      throw new UsageError(`quip quantizes to ${QUIP_BITS.join(', ')} bits (the reference's --wbits choices), not ${spec.bits}`);
    }
    if (spec.groupSize !== -1) {
      throw new UsageError(`quip has one grid scale per matrix (s = 2.4·RMS of the transformed weight): it takes no --group ${spec.groupSize} (use --group -1 or leave it out)`);
    }
  },
  quantizeLayer(l, o) {
    if (!l.stats?.H) throw new UsageError(`quip needs calibration statistics for ${l.name}`);
    const r = quip(l.W, l.rows, l.cols, l.stats.H, {
      bits: o.spec.bits, percdamp: o.options.percdamp as number, fp16: o.options.quipFp16 as boolean,
      seed: quipLayerSeed(o.seed ?? 0, l.name), scaleDtype: o.spec.scaleDtype ?? 'f32', linalg: o.linalg, where: l.name,
    });
    return { Q: r.Q, stored: { kind: QUIP_KIND_NAME, parts: quipTensors(r.parts) }, dampUsed: (o.options.percdamp as number), notes: r.notes };
  },
};
