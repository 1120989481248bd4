/**
 * Round-to-nearest: every weight to its nearest grid point, parameters per output row (or per group
 * of input columns) from the row's own range. The paper's RTN rows are asymmetric (sym: false).
 */
import { QuantSpec, QuantizedMatrix, dequantizeMatrix, quantizeMatrix } from '../core/grid.js';

export interface RtnResult extends QuantizedMatrix {
  /** The fake-quantized weights [rows, cols]. */
  Q: Float32Array;
}

export function rtn(W: Float32Array, rows: number, cols: number, spec: QuantSpec, where?: string): RtnResult {
  const m = quantizeMatrix(W, rows, cols, spec, where);
  return { ...m, Q: dequantizeMatrix(m, rows, cols) };
}

/** The paper's default RTN spec: asymmetric, per channel unless a group size is given. */
export function rtnSpec(bits: number, groupSize = -1): QuantSpec {
  return { bits, groupSize, sym: false };
}
