/**
 * The GPTQ / AutoGPTQ "v1" checkpoint tensors of one linear layer (PROTOCOLS §5):
 *   qweight int32 [ceil(in·bits/32), out]  codes packed along the input dimension,
 *   qzeros  int32 [groups, ceil(out·bits/32)]  (zero − 1) packed along the output dimension,
 *   scales  [groups, out] (fp16 in AutoGPTQ's files; float32 in memory, and on disk when the
 *           weights were solved with float32 scales: see io/quantized/writer.ts),  g_idx int32 [in].
 *
 * Packing is one little-endian bit stream per packed line: value k of a line occupies bits
 * [k·bits, (k+1)·bits) of the stream, word w holding stream bits [32w, 32w + 32). For bits 2, 4 and 8
 * this is AutoGPTQ's `intweight[j] << (bits·(j − i))`; for 3 bits it is exactly AutoGPTQ's
 * straddling layout (ten values, then one split 2+1 / 1+2 across words, 32 values per 3 words).
 * Only 2, 3, 4 and 8 bits load in AutoGPTQ/GPTQModel; 1, 5, 6 and 7 use the same stream but are
 * lowbit's own. Widths that are multiples of 32 give the exact shapes above.
 *
 * v1 stores zero − 1. AutoGPTQ writes it through uint32, so zero = 0 becomes −1 and spills into the
 * neighbouring fields; we store (zero − 1) mod 2^bits instead and read back (stored + 1) mod 2^bits,
 * which round-trips every zero. AutoGPTQ's v1 kernels read such an entry as zero = 2^bits (not 0):
 * `zeroWraps` counts them so a caller can warn.
 */
import { UsageError } from '../errors.js';
import { dequantCode, dequantizeMatrix, type GptqPacked, type QuantizedMatrix } from './packed.js';

export interface PackReport {
  tensors: GptqPacked;
  /** Entries with zero = 0, which AutoGPTQ's v1 kernels would read as 2^bits. */
  zeroWraps: number;
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new UsageError(`GPTQ packing: bits must be an integer in 1..8, got ${bits}`);
}

export function packedWords(count: number, bits: number): number {
  return Math.ceil((count * bits) / 32);
}

/** ORs value v (< 2^bits) into the stream at bit pos; the stream's word w lives at out[base + w·stride]. */
function putBits(out: Int32Array, base: number, stride: number, pos: number, v: number, bits: number): void {
  const w = pos >>> 5, off = pos & 31;
  out[base + w * stride]! |= v << off;
  if (off + bits > 32) out[base + (w + 1) * stride]! |= v >>> (32 - off);
}

function getBits(src: Int32Array, base: number, stride: number, pos: number, bits: number, mask: number): number {
  const w = pos >>> 5, off = pos & 31;
  let v = src[base + w * stride]! >>> off;
  if (off + bits > 32) v |= src[base + (w + 1) * stride]! << (32 - off);
  return v & mask;
}

/** Packs a quantized layer (scales/zeros [rows, groups] as lowbit keeps them) into the v1 tensors. */
export function packGptq(m: QuantizedMatrix, rows: number, cols: number, bits: number): PackReport {
  checkBits(bits);
  const groups = m.scales.length / rows, maxq = 2 ** bits - 1;
  if (m.codes.length !== rows * cols || m.gIdx.length !== cols || !Number.isInteger(groups) || m.zeros.length !== m.scales.length) {
    throw new UsageError(`GPTQ pack: inconsistent shapes (codes ${m.codes.length}, ${rows}x${cols}, scales ${m.scales.length}, g_idx ${m.gIdx.length})`);
  }
  const qweight = new Int32Array(packedWords(cols, bits) * rows);
  for (let c = 0; c < cols; c++) {
    const pos = c * bits;
    for (let r = 0; r < rows; r++) putBits(qweight, r, rows, pos, m.codes[r * cols + c]!, bits);
  }
  const zw = packedWords(rows, bits);
  const qzeros = new Int32Array(groups * zw);
  const scales = new Float32Array(groups * rows);
  let zeroWraps = 0;
  for (let g = 0; g < groups; g++) {
    for (let r = 0; r < rows; r++) {
      const zero = m.zeros[r * groups + g]!, s = m.scales[r * groups + g]!;
      if (zero === 0) zeroWraps++;
      putBits(qzeros, g * zw, 1, r * bits, (zero - 1) & maxq, bits);
      scales[g * rows + r] = s;
    }
  }
  return { tensors: { kind: 'gptq', bits, rows, cols, groups, qweight, qzeros, scales, gIdx: m.gIdx.slice() }, zeroWraps };
}

/**
 * The inverse of packGptq: codes [rows, cols], scales and zeros [rows, groups], g_idx. A layer with
 * float zero points (zerosF) has no integer grid: a UsageError (dequantizeGptq decodes it).
 */
export function unpackGptq(t: GptqPacked): QuantizedMatrix {
  if (t.zerosF) throw new UsageError(`GPTQ unpack: the ${t.rows}x${t.cols} layer has float zero points (zerosF), which integer zeros cannot hold; use dequantizeGptq`);
  return unpackInteger(t);
}

/** unpackGptq without the zerosF check: the packed (integer) zeros as stored. */
function unpackInteger(t: GptqPacked): QuantizedMatrix {
  const { bits, rows, cols, groups } = t;
  checkBits(bits);
  const maxq = 2 ** bits - 1, zw = packedWords(rows, bits);
  if (t.qweight.length !== packedWords(cols, bits) * rows || t.qzeros.length !== groups * zw
    || t.scales.length !== groups * rows || t.gIdx.length !== cols) {
    throw new UsageError(`GPTQ unpack: tensor sizes do not match ${rows}x${cols}, ${groups} group(s), ${bits} bits`);
  }
  const codes = new Uint8Array(rows * cols);
  for (let c = 0; c < cols; c++) {
    const pos = c * bits;
    for (let r = 0; r < rows; r++) codes[r * cols + c] = getBits(t.qweight, r, rows, pos, bits, maxq);
  }
  const scales = new Float32Array(rows * groups), zeros = new Uint8Array(rows * groups);
  for (let g = 0; g < groups; g++) {
    for (let r = 0; r < rows; r++) {
      zeros[r * groups + g] = (getBits(t.qzeros, g * zw, 1, r * bits, bits, maxq) + 1) & maxq;
      scales[r * groups + g] = t.scales[g * rows + r]!;
    }
  }
  for (let c = 0; c < cols; c++) {
    const g = t.gIdx[c]!;
    if (!(g >= 0 && g < groups)) throw new UsageError(`GPTQ unpack: g_idx[${c}] = ${g} is outside 0..${groups - 1}`);
  }
  return { codes, scales, zeros, gIdx: t.gIdx.slice() };
}

/**
 * W'[r, c] = scale[g_idx[c], r] · (q[r, c] − zero[g_idx[c], r]) in float32, straight from the packed
 * tensors; zero is zerosF[g_idx[c], r] when the layer has float zero points (one float32 rounding of
 * scale · (q − zF), as dequantCode), else the packed integer zero.
 */
export function dequantizeGptq(t: GptqPacked): Float32Array {
  const m = unpackInteger(t);
  if (!t.zerosF) return dequantizeMatrix(m, t.rows, t.cols);
  const { rows, cols, groups, zerosF } = t;
  if (zerosF.length !== groups * rows) throw new UsageError(`GPTQ dequantize: zerosF has ${zerosF.length} elements, expected ${groups}x${rows}`);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const g = m.gIdx[c]!;
      out[r * cols + c] = dequantCode(m.codes[r * cols + c]!, m.scales[r * groups + g]!, zerosF[g * rows + r]!);
    }
  }
  return out;
}

/** The zero point of every (group, output), [groups, rows]: zerosF when the layer has float zeros, else the packed integer zeros. */
export function gptqZeroPoints(t: GptqPacked): Float32Array {
  if (t.zerosF) return t.zerosF.slice();
  const { bits, rows, groups } = t;
  const maxq = 2 ** bits - 1, zw = packedWords(rows, bits), z = new Float32Array(groups * rows);
  for (let g = 0; g < groups; g++) for (let r = 0; r < rows; r++) z[g * rows + r] = (getBits(t.qzeros, g * zw, 1, r * bits, bits, maxq) + 1) & maxq;
  return z;
}
