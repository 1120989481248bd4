/**
 * llm-awq's quantizer, `pseudo_quantize_tensor` with zero_point=True (awq/quantize/quantizer.py): per
 * output row and group of `groupSize` input columns, from the group's own min and max (the range
 * need not contain 0, unlike GPTQ's):
 *   scale = max(max − min, 1e-5) / (2^b − 1),  zero = clamp(−round(min / scale), 0, 2^b − 1),
 *   q = clamp(round(w / scale) + zero, 0, 2^b − 1),  w' = (q − zero) · scale.
 * Rounding is torch.round (half to even). The reference runs in fp16 on the GPU; this runs in float32
 * (Math.fround at every step a float32 tensor would round), with the scale optionally rounded through
 * fp16 (scaleDtype 'f16') before the zero point is computed, as lowbit's other quantizers.
 */
import { roundScale, sequentialGIdx, type QuantizedMatrix, type ScaleDtype } from '../core/grid.js';

const MIN_RANGE = Math.fround(1e-5);

/** 1.5 · 2^52: adding and subtracting it rounds a double to the nearest integer, ties to even (|x| < 2^51). */
const ROUND = 6755399441055744;

/** Codes, parameters and fake-quantized values of one group w[from, to) (written to q and codes at the same offsets). */
function awqQuantizeGroup(w: Float32Array, from: number, to: number, bits: number, scaleDtype: ScaleDtype | undefined,
  codes: Uint8Array | undefined, q: Float32Array): { scale: number; zero: number } {
  const maxq = 2 ** bits - 1;
  let min = Infinity, max = -Infinity;
  for (let i = from; i < to; i++) {
    const x = w[i]!;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const scale = roundScale(Math.fround(Math.max(Math.fround(max - min), MIN_RANGE) / maxq), scaleDtype);
  const z = -((Math.fround(min / scale) + ROUND) - ROUND);
  const zero = z < 0 ? 0 : z > maxq ? maxq : z;
  for (let i = from; i < to; i++) {
    // torch.round(w / scale) + zero, clamped: the quotient rounded to float32 first, as a float32 tensor holds it
    let c = ((Math.fround(w[i]! / scale) + ROUND) - ROUND) + zero;
    c = c < 0 ? 0 : c > maxq ? maxq : c;
    if (codes) codes[i] = c;
    q[i] = Math.fround(scale * (c - zero));
  }
  return { scale, zero };
}

/**
 * awqQuantizeGroup of w[from, from + n) clamped to [−mv, mv] (auto_clip's candidate), in one pass: the
 * clamped group's min and max follow from the unclamped ones (`min`, `max`). Fake-quantized values to q.
 */
export function clampQuantizeGroup(w: Float32Array, from: number, n: number, mv: number, min: number, max: number,
  bits: number, scaleDtype: ScaleDtype | undefined, q: Float32Array): void {
  const maxq = 2 ** bits - 1;
  // clamping is monotone: the clamped group's min and max are the clamped min and max
  const lo = min < -mv ? -mv : min > mv ? mv : min, hi = max > mv ? mv : max < -mv ? -mv : max;
  const scale = roundScale(Math.fround(Math.max(Math.fround(hi - lo), MIN_RANGE) / maxq), scaleDtype);
  const z = -((Math.fround(lo / scale) + ROUND) - ROUND);
  const zero = z < 0 ? 0 : z > maxq ? maxq : z;
  for (let i = from, e = from + n; i < e; i++) {
    const v = w[i]!, x = v > mv ? mv : v < -mv ? -mv : v;
    let c = ((Math.fround(x / scale) + ROUND) - ROUND) + zero;
    c = c < 0 ? 0 : c > maxq ? maxq : c;
    q[i] = Math.fround(scale * (c - zero));
  }
}

/**
 * Q(W·diag(s))·diag(s)⁻¹ into `out` [rows, cols]: the weights a scale-search candidate computes with
 * (auto_scale: `fc.weight.mul_(scales)`, quantize, `/ scales`), fused in two passes per group, float32.
 */
export function quantizeScaledInto(W: Float32Array, rows: number, cols: number, s: Float32Array, groupSize: number,
  bits: number, scaleDtype: ScaleDtype | undefined, out: Float32Array): void {
  const maxq = 2 ** bits - 1, gs = groupSize === -1 ? cols : groupSize;
  for (let r = 0; r < rows; r++) {
    for (let g0 = 0; g0 < cols; g0 += gs) {
      const o = r * cols;
      let min = Infinity, max = -Infinity;
      for (let c = g0; c < g0 + gs; c++) {
        const x = Math.fround(W[o + c]! * s[c]!);
        if (x < min) min = x;
        if (x > max) max = x;
      }
      const scale = roundScale(Math.fround(Math.max(Math.fround(max - min), MIN_RANGE) / maxq), scaleDtype);
      const z = -((Math.fround(min / scale) + ROUND) - ROUND);
      const zero = z < 0 ? 0 : z > maxq ? maxq : z;
      for (let c = g0; c < g0 + gs; c++) {
        const x = Math.fround(W[o + c]! * s[c]!);
        let k = ((Math.fround(x / scale) + ROUND) - ROUND) + zero;
        k = k < 0 ? 0 : k > maxq ? maxq : k;
        out[o + c] = Math.fround(Math.fround(scale * (k - zero)) / s[c]!);
      }
    }
  }
}

/** The quantizer over W [rows, cols] in groups of `groupSize` columns (-1: one group per row). */
export function awqQuantize(W: Float32Array, rows: number, cols: number, groupSize: number, bits: number, scaleDtype?: ScaleDtype): QuantizedMatrix & { Q: Float32Array } {
  const gs = groupSize === -1 ? cols : groupSize, nGroups = cols / gs;
  const codes = new Uint8Array(rows * cols), Q = new Float32Array(rows * cols);
  const scales = new Float32Array(rows * nGroups), zeros = new Uint8Array(rows * nGroups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < nGroups; g++) {
      const from = r * cols + g * gs;
      const p = awqQuantizeGroup(W, from, from + gs, bits, scaleDtype, codes, Q);
      scales[r * nGroups + g] = p.scale;
      zeros[r * nGroups + g] = p.zero;
    }
  }
  return { codes, scales, zeros, gIdx: sequentialGIdx(cols, gs), Q };
}
