/**
 * Exact bf16/f16 <-> f32 conversions. Decoding is exact for every bit pattern (NaN payloads kept
 * where f32 can hold them); encoding rounds to nearest, ties to even, as PyTorch and numpy do.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16ToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff; // quiet NaN, keep sign
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f16 decode table, built once (65,536 entries, exact). */
let F16_TABLE: Float32Array | undefined;
function f16Table(): Float32Array {
  if (F16_TABLE) return F16_TABLE;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) {
      if (m === 0) t[h] = s * Infinity;
      else { u32[0] = ((h & 0x8000) << 16) | 0x7f800000 | (m << 13); t[h] = f32[0]!; }
    } else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  F16_TABLE = t;
  return t;
}

export function f16ToF32(h: number): number {
  return f16Table()[h & 0xffff]!;
}

export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const e = (b >>> 23) & 0xff;
  let m = b & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 | (m >>> 13) : 0);
  let ex = e - 127 + 15;
  if (ex >= 31) return sign | 0x7c00;
  if (ex <= 0) {
    if (ex < -10) return sign; // underflows to zero (even the largest such value rounds down)
    m |= 0x800000;
    const shift = 14 - ex;
    const half = 1 << (shift - 1);
    const rem = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = (ex << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++;
  return sign | r; // carry into the exponent is correct, including overflow to inf
}

/** Decode a whole array of bf16 or f16 bits to float32. */
export function decodeHalf(dtype: 'bf16' | 'f16', src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (dtype === 'bf16') {
    const d32 = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
    for (let i = 0; i < src.length; i++) d32[i] = src[i]! << 16;
  } else {
    const t = f16Table();
    for (let i = 0; i < src.length; i++) dst[i] = t[src[i]!]!;
  }
  return dst;
}

export function encodeHalf(dtype: 'bf16' | 'f16', src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const enc = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < src.length; i++) dst[i] = enc(src[i]!);
  return dst;
}
