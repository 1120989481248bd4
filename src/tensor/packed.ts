/**
 * Quantized weights as data: integer codes on a uniform grid with their group parameters, and the
 * packed layouts they are stored and multiplied in. No arithmetic beyond decoding lives here; the
 * quantizers (quant/) produce these, the checkpoint formats (io/quantized/) store them, and a
 * backend multiplies by them without materialising float weights.
 */

/** The dtype grid scales are computed and stored in: float32 (the reference code) or rounded through fp16. */
export type ScaleDtype = 'f32' | 'f16';

/** A quantized [rows = out, cols = in] matrix: integer codes and per-(row, group) parameters. */
export interface QuantizedMatrix {
  codes: Uint8Array;    // [rows, cols]
  scales: Float32Array; // [rows, nGroups]
  zeros: Uint8Array;    // [rows, nGroups], integers in 0..maxq
  gIdx: Int32Array;     // [cols]: group of each (original) input column
}

/** The value of code q: scale · (q − zero), one float32 rounding (the grid's only dequantization). */
export function dequantCode(q: number, scale: number, zero: number): number {
  return Math.fround(scale * (q - zero));
}

/** Fake-quantized weights [rows, cols] of a quantized matrix: W'[r, c] = dequantCode(code, the (r, g_idx[c]) scale and zero). */
export function dequantizeMatrix(m: QuantizedMatrix, rows: number, cols: number): Float32Array {
  const nGroups = m.scales.length / rows;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const p = r * nGroups + m.gIdx[c]!;
      out[r * cols + c] = dequantCode(m.codes[r * cols + c]!, m.scales[p]!, m.zeros[p]!);
    }
  }
  return out;
}

/**
 * GPTQ / AutoGPTQ "v1" tensors of one linear layer (see gptqPack.ts): qweight int32
 * [ceil(in·bits/32), out] packed along the input, qzeros int32 [groups, ceil(out·bits/32)] holding
 * zero − 1, scales [groups, out] (float32 in memory whatever their stored dtype), g_idx int32 [in].
 */
export interface GptqPacked {
  readonly kind: 'gptq';
  readonly bits: number;
  readonly rows: number;   // out_features
  readonly cols: number;   // in_features
  readonly groups: number;
  readonly qweight: Int32Array;
  readonly qzeros: Int32Array;
  readonly scales: Float32Array;
  readonly gIdx: Int32Array;
}

/**
 * AutoAWQ "GEMM" tensors of one linear layer (see awqPack.ts): qweight int32 [in, out/8] packed
 * along the output in the order [0, 2, 4, 6, 1, 3, 5, 7], qzeros int32 [in/g, out/8] holding the
 * zero points themselves, scales [in/g, out] (float32 in memory). 4 bits only, as AutoAWQ.
 */
export interface AwqPacked {
  readonly kind: 'awq';
  readonly bits: 4;
  readonly rows: number;   // out_features
  readonly cols: number;   // in_features
  readonly groupSize: number;
  readonly qweight: Int32Array;
  readonly qzeros: Int32Array;
  readonly scales: Float32Array;
}

/** A linear weight kept quantized on a backend: the stored kind decides how it is decoded. */
export type PackedWeight = GptqPacked | AwqPacked;
