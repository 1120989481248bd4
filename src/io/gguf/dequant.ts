/**
 * ggml block formats to float32 (reference: ggml-quants.c dequantize_row_q8_0 / _q4_0).
 *   Q8_0: 34-byte blocks of 32 values: f16 scale d, then 32 int8 q; x = d·q.
 *   Q4_0: 18-byte blocks of 32 values: f16 scale d, then 16 bytes; byte j holds element j in its
 *         low nibble and element j+16 in its high nibble; x = d·(q − 8).
 *   Q4_1: 20-byte blocks of 32 values: f16 d, f16 m, then 16 bytes as Q4_0's; x = d·q + m (one float32 rounding).
 * d·q is exact in float32 (an 11-bit significand times a value below 2^8), so these decodes are exact.
 */
import { f16ToF32 } from '../../tensor/codecs.js';

const QK = 32;

export function dequantizeQ8_0(bytes: Uint8Array, n: number, out = new Float32Array(n)): Float32Array {
  const blocks = n / QK;
  if (!Number.isInteger(blocks) || bytes.length !== blocks * 34) throw new RangeError(`Q8_0: ${bytes.length} bytes do not hold ${n} values`);
  const q = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let b = 0; b < blocks; b++) {
    const at = b * 34;
    const d = f16ToF32(bytes[at]! | (bytes[at + 1]! << 8));
    const o = b * QK;
    for (let i = 0; i < QK; i++) out[o + i] = d * q[at + 2 + i]!;
  }
  return out;
}

export function dequantizeQ4_0(bytes: Uint8Array, n: number, out = new Float32Array(n)): Float32Array {
  const blocks = n / QK;
  if (!Number.isInteger(blocks) || bytes.length !== blocks * 18) throw new RangeError(`Q4_0: ${bytes.length} bytes do not hold ${n} values`);
  for (let b = 0; b < blocks; b++) {
    const at = b * 18;
    const d = f16ToF32(bytes[at]! | (bytes[at + 1]! << 8));
    const o = b * QK;
    for (let j = 0; j < QK / 2; j++) {
      const byte = bytes[at + 2 + j]!;
      out[o + j] = d * ((byte & 0x0f) - 8);
      out[o + j + QK / 2] = d * ((byte >> 4) - 8);
    }
  }
  return out;
}

export function dequantizeQ4_1(bytes: Uint8Array, n: number, out = new Float32Array(n)): Float32Array {
  const blocks = n / QK;
  if (!Number.isInteger(blocks) || bytes.length !== blocks * 20) throw new RangeError(`Q4_1: ${bytes.length} bytes do not hold ${n} values`);
  for (let b = 0; b < blocks; b++) {
    const at = b * 20;
    const d = f16ToF32(bytes[at]! | (bytes[at + 1]! << 8));
    const m = f16ToF32(bytes[at + 2]! | (bytes[at + 3]! << 8));
    const o = b * QK;
    for (let j = 0; j < QK / 2; j++) {
      const byte = bytes[at + 4 + j]!;
      out[o + j] = Math.fround(d * (byte & 0x0f) + m);
      out[o + j + QK / 2] = Math.fround(d * (byte >> 4) + m);
    }
  }
  return out;
}
