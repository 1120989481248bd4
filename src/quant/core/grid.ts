/**
 * The uniform integer grid: the one definition of quantize/dequantize that RTN, GPTQ, the exporters
 * and the kernels' reference tests share (PROTOCOLS §4; reference: IST-DASLab/gptq quant.py).
 *
 * Arithmetic emulates GPTQ's float32 tensors exactly: every intermediate that torch holds in a float32
 * tensor is rounded with Math.fround, and torch.round is round-half-to-even (so 0.5 -> 0, 2.5 -> 2).
 * The parameter search (findParams) is separate from the grid (quantize/dequantize).
 * One deliberate difference: a range so tiny that the float32 scale underflows to 0 (GPTQ: NaN)
 * is treated like an all-zero range.
 */
import { UsageError } from '../../errors.js';
import { f16ToF32, f32ToF16 } from '../../tensor/codecs.js';
import { dequantCode, dequantizeMatrix, type QuantizedMatrix, type ScaleDtype } from '../../tensor/packed.js';

export type { QuantizedMatrix, ScaleDtype };
export { dequantizeMatrix };

export interface QuantSpec {
  /** 1..8 for users; the core primitives accept up to 16 (used by property tests). */
  bits: number;
  /** Input columns per group; -1 = one group per output channel (the whole row). */
  groupSize: number;
  sym: boolean;
  /** 'f16': round every scale through fp16 before use, so a GPTQ checkpoint reproduces the weights bit for bit. */
  scaleDtype?: ScaleDtype;
}

export interface GridParams { scale: number; zero: number }

const MAX_USER_BITS = 8;
const MAX_CORE_BITS = 16;

export function maxqOf(bits: number): number {
  return 2 ** bits - 1;
}

/** torch.round: nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // ties go toward +inf
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** A float32 scale as stored in fp16 (0 and overflow clamped to the nearest usable fp16 value). */
export function roundScale(scale: number, dtype: ScaleDtype | undefined): number {
  if (dtype !== 'f16') return scale;
  const s = f16ToF32(f32ToF16(scale));
  if (s === 0) return 2 ** -24;          // smallest fp16 subnormal: keeps the grid usable
  if (s === Infinity) return 65504;       // largest finite fp16
  return s;
}

/**
 * Grid parameters from a range, as GPTQ's Quantizer.find_params: the range always contains 0,
 * the symmetric grid is centred, and an empty range becomes [-1, 1].
 */
export function paramsFromRange(min: number, max: number, bits: number, sym: boolean, scaleDtype?: ScaleDtype): GridParams {
  const maxq = maxqOf(bits);
  let xmin = Math.fround(Math.min(0, min));
  let xmax = Math.fround(Math.max(0, max));
  if (sym) {
    xmax = Math.max(Math.abs(xmin), xmax);
    if (xmin < 0) xmin = -xmax;
  }
  if (xmin === 0 && xmax === 0) { xmin = -1; xmax = 1; } // xmin <= 0 <= xmax, so equal means both 0
  let scale = roundScale(Math.fround(Math.fround(xmax - xmin) / maxq), scaleDtype);
  if (scale === 0) { // a range of a few subnormals: the float32 scale underflows (GPTQ would divide by 0)
    xmin = -1; xmax = 1;
    scale = roundScale(Math.fround(2 / maxq), scaleDtype);
  }
  const zero = sym ? (maxq + 1) / 2 : roundHalfEven(Math.fround(-xmin / scale));
  return { scale, zero };
}

/** Parameters for w[from..to) (a row, a group of a row, or several rows flattened). */
export function findParams(w: ArrayLike<number>, bits: number, sym: boolean, from = 0, to = w.length, scaleDtype?: ScaleDtype): GridParams {
  checkBits(bits, MAX_CORE_BITS);
  let min = Infinity, max = -Infinity;
  for (let i = from; i < to; i++) {
    const x = w[i]!;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return paramsFromRange(min, max, bits, sym, scaleDtype);
}

/** The integer code of x: clamp(round(x / scale) + zero, 0, maxq). */
export function quantize(x: number, scale: number, zero: number, maxq: number): number {
  const q = roundHalfEven(Math.fround(x / scale)) + zero;
  return q < 0 ? 0 : q > maxq ? maxq : q;
}

/** The value of code q: scale * (q - zero), in float32. */
export function dequantize(q: number, scale: number, zero: number): number {
  return dequantCode(q, scale, zero);
}

export function checkBits(bits: number, maxBits = MAX_USER_BITS, where?: string): void {
  if (!Number.isInteger(bits) || bits < 1 || bits > maxBits) {
    throw new UsageError(`${prefix(where)}bits must be an integer in 1..${maxBits}, got ${bits}`);
  }
}

/** Validates a user-facing spec against a layer's input width; returns the effective group size. */
export function checkSpec(spec: QuantSpec, cols: number, where?: string): number {
  checkBits(spec.bits, MAX_USER_BITS, where);
  const g = spec.groupSize;
  if (g === -1) return cols;
  if (!Number.isInteger(g) || g < 1 || cols % g !== 0) {
    throw new UsageError(`${prefix(where)}group size ${g} does not divide the ${cols} input columns (use -1 for per-channel)`);
  }
  return g;
}

function prefix(where?: string): string {
  return where ? `${where}: ` : '';
}

/** RTN of a row-major W [rows, cols]: parameters per row and group, then the grid. */
export function quantizeMatrix(W: Float32Array, rows: number, cols: number, spec: QuantSpec, where?: string): QuantizedMatrix {
  const gs = checkSpec(spec, cols, where);
  if (W.length !== rows * cols) throw new UsageError(`${prefix(where)}weight has ${W.length} values, expected ${rows}x${cols}`);
  const nGroups = cols / gs, maxq = maxqOf(spec.bits);
  const codes = new Uint8Array(rows * cols);
  const scales = new Float32Array(rows * nGroups);
  const zeros = new Uint8Array(rows * nGroups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < nGroups; g++) {
      const from = r * cols + g * gs, to = from + gs;
      const { scale, zero } = findParams(W, spec.bits, spec.sym, from, to, spec.scaleDtype);
      scales[r * nGroups + g] = scale;
      zeros[r * nGroups + g] = zero;
      for (let i = from; i < to; i++) codes[i] = quantize(W[i]!, scale, zero, maxq);
    }
  }
  return { codes, scales, zeros, gIdx: sequentialGIdx(cols, gs) };
}

/** g_idx without act-order: column c belongs to group floor(c / groupSize). */
export function sequentialGIdx(cols: number, groupSize: number): Int32Array {
  const gIdx = new Int32Array(cols);
  for (let c = 0; c < cols; c++) gIdx[c] = Math.floor(c / groupSize);
  return gIdx;
}

