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
import { dequantize, roundHalfEven, roundScale, sequentialGIdx, type QuantizedMatrix, type ScaleDtype } from '../core/grid.js';

const MIN_RANGE = Math.fround(1e-5);

/** Codes, parameters and fake-quantized values of one group w[from, to) (written to q and codes at the same offsets). */
export function awqQuantizeGroup(w: Float32Array, from: number, to: number, bits: number, scaleDtype: ScaleDtype | undefined,
  codes: Uint8Array | undefined, q: Float32Array): { scale: number; zero: number } {
  const maxq = 2 ** bits - 1;
  let min = Infinity, max = -Infinity;
  for (let i = from; i < to; i++) {
    const x = w[i]!;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const scale = roundScale(Math.fround(Math.max(Math.fround(max - min), MIN_RANGE) / maxq), scaleDtype);
  const z = -roundHalfEven(Math.fround(min / scale));
  const zero = z < 0 ? 0 : z > maxq ? maxq : z;
  for (let i = from; i < to; i++) {
    let c = roundHalfEven(Math.fround(w[i]! / scale)) + zero;
    c = c < 0 ? 0 : c > maxq ? maxq : c;
    if (codes) codes[i] = c;
    q[i] = dequantize(c, scale, zero);
  }
  return { scale, zero };
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
