/**
 * AutoAWQ's "GEMM" checkpoint tensors of one linear layer (PROTOCOLS §5; AutoAWQ
 * `WQLinear_GEMM.from_linear`), 4 bits:
 *   qweight int32 [in, out/8]    codes packed along the output dimension,
 *   qzeros  int32 [in/g, out/8]  zero points (the zeros themselves, no offset), packed the same way,
 *   scales  [in/g, out]          (fp16 in AutoAWQ's files, float32 in memory).
 * Word w of a packed row holds outputs 8w .. 8w+7 with nibble i (bits 4i..4i+3) taking output
 * 8w + ORDER[i], ORDER = [0, 2, 4, 6, 1, 3, 5, 7] (AutoAWQ's order_map; its dequantization reads
 * them back with the inverse order [0, 4, 1, 5, 2, 6, 3, 7]).
 * Every input column c is in group floor(c / g): AWQ has no act-order.
 */
import { UsageError } from '../errors.js';
import { packGptq } from './gptqPack.js';
import { dequantizeMatrix, type AwqPacked, type GptqPacked, type QuantizedMatrix } from './packed.js';

export const AWQ_ORDER: readonly number[] = Object.freeze([0, 2, 4, 6, 1, 3, 5, 7]);
const BITS = 4;

function check(rows: number, cols: number, groupSize: number, where: string): void {
  if (rows % 8 !== 0) throw new UsageError(`${where}: AWQ GEMM packing needs out_features divisible by 8 (got ${rows})`);
  if (!Number.isInteger(groupSize) || groupSize < 1 || cols % groupSize !== 0) {
    throw new UsageError(`${where}: AWQ group size ${groupSize} does not divide the ${cols} input columns`);
  }
}

/** Packs `v[r][c]`-style values given as get(c, r) into [cols, rows/8] words, AutoAWQ's order. */
function packRows(n: number, rows: number, get: (i: number, r: number) => number): Int32Array {
  const wpr = rows / 8, out = new Int32Array(n * wpr);
  for (let i = 0; i < n; i++) {
    for (let w = 0; w < wpr; w++) {
      let word = 0;
      for (let k = 0; k < 8; k++) word |= (get(i, 8 * w + AWQ_ORDER[k]!) & 0xf) << (BITS * k);
      out[i * wpr + w] = word;
    }
  }
  return out;
}

function unpackValue(words: Int32Array, i: number, rows: number, r: number): number {
  const w = r >> 3, k = AWQ_ORDER.indexOf(r & 7);
  return (words[i * (rows / 8) + w]! >>> (BITS * k)) & 0xf;
}

/** A 4-bit quantized layer (codes [rows, cols], scales/zeros [rows, cols/g], sequential groups) in AutoAWQ's GEMM layout. */
export function packAwq(m: QuantizedMatrix, rows: number, cols: number, groupSize: number, where = 'AWQ pack'): AwqPacked {
  check(rows, cols, groupSize, where);
  const groups = cols / groupSize;
  if (m.codes.length !== rows * cols || m.scales.length !== rows * groups || m.zeros.length !== rows * groups || m.gIdx.length !== cols) {
    throw new UsageError(`${where}: inconsistent shapes (codes ${m.codes.length}, ${rows}x${cols}, scales ${m.scales.length}, ${groups} groups)`);
  }
  for (let c = 0; c < cols; c++) {
    if (m.gIdx[c] !== Math.floor(c / groupSize)) throw new UsageError(`${where}: AWQ stores sequential groups only (g_idx[${c}] = ${m.gIdx[c]})`);
  }
  const scales = new Float32Array(groups * rows);
  for (let g = 0; g < groups; g++) for (let r = 0; r < rows; r++) scales[g * rows + r] = m.scales[r * groups + g]!;
  return {
    kind: 'awq', bits: BITS, rows, cols, groupSize, scales,
    qweight: packRows(cols, rows, (c, r) => m.codes[r * cols + c]!),
    qzeros: packRows(groups, rows, (g, r) => m.zeros[r * groups + g]!),
  };
}

/** The inverse of packAwq. */
export function unpackAwq(t: AwqPacked): QuantizedMatrix {
  const { rows, cols, groupSize } = t;
  check(rows, cols, groupSize, 'AWQ unpack');
  const groups = cols / groupSize;
  if (t.qweight.length !== cols * rows / 8 || t.qzeros.length !== groups * rows / 8 || t.scales.length !== groups * rows) {
    throw new UsageError(`AWQ unpack: tensor sizes do not match ${rows}x${cols}, group size ${groupSize}`);
  }
  const codes = new Uint8Array(rows * cols), scales = new Float32Array(rows * groups), zeros = new Uint8Array(rows * groups);
  for (let c = 0; c < cols; c++) for (let r = 0; r < rows; r++) codes[r * cols + c] = unpackValue(t.qweight, c, rows, r);
  for (let g = 0; g < groups; g++) {
    for (let r = 0; r < rows; r++) {
      zeros[r * groups + g] = unpackValue(t.qzeros, g, rows, r);
      scales[r * groups + g] = t.scales[g * rows + r]!;
    }
  }
  const gIdx = new Int32Array(cols);
  for (let c = 0; c < cols; c++) gIdx[c] = Math.floor(c / groupSize);
  return { codes, scales, zeros, gIdx };
}

/** W'[r, c] = scale · (q − zero) in float32, the same values as dequantizeGptq of awqToGptq(t). */
export function dequantizeAwq(t: AwqPacked): Float32Array {
  return dequantizeMatrix(unpackAwq(t), t.rows, t.cols);
}

/** The same codes, zeros and scales in GPTQ's layout (which the CPU kernels decode): the same weights bit for bit. */
export function awqToGptq(t: AwqPacked): GptqPacked {
  return packGptq(unpackAwq(t), t.rows, t.cols, t.bits).tensors;
}
