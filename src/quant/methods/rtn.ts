/**
 * Round-to-nearest: every weight to its nearest grid point, parameters per output row (or per group
 * of input columns) from the row's own range. The paper's RTN rows are asymmetric (sym: false).
 */
import { QuantSpec, QuantizedMatrix, dequantizeMatrix, quantizeMatrix } from '../core/grid.js';
import type { QuantMethod } from '../method.js';

export interface RtnResult extends QuantizedMatrix {
  /** The fake-quantized weights [rows, cols]. */
  Q: Float32Array;
}

export function rtn(W: Float32Array, rows: number, cols: number, spec: QuantSpec, where?: string): RtnResult {
  const m = quantizeMatrix(W, rows, cols, spec, where);
  return { ...m, Q: dequantizeMatrix(m, rows, cols) };
}

/** RTN as a pipeline method: no statistics, GPTQ's grid, the GPTQ checkpoint layout. */
export const RTN: QuantMethod = {
  name: 'rtn',
  label: 'RTN',
  description: 'round-to-nearest on GPTQ\'s min-max grid (per channel or per group)',
  stats: [],
  needsCalibration: false,
  nextInputs: 'quantized',
  sequential: true,
  options: {},
  format: () => 'gptq',
  quantizeLayer: (l, o) => {
    const { Q, ...grid } = rtn(l.W, l.rows, l.cols, o.spec, l.name);
    return { Q, stored: { kind: 'uniform', grid }, notes: [] };
  },
};
