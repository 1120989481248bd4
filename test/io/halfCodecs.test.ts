// bf16/f16 decoding, checked for all 65,536 bit patterns against decoders written here from the
// IEEE 754 definitions (not from src/tensor/codecs.ts), and encode(decode(h)) === h.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ToF32, decodeHalf, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/tensor/codecs.js';

/** binary16: 1 sign, 5 exponent (bias 15), 10 fraction bits. Exact in float64, then in float32. */
function refF16(h: number): number {
  const sign = h >> 15 ? -1 : 1;
  const exp = (h >> 10) & 31;
  const frac = h & 1023;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  if (exp === 0) return sign * frac * Math.pow(2, -24);
  return sign * (1024 + frac) * Math.pow(2, exp - 25);
}

/** bfloat16: the top 16 bits of a binary32; decode via a DataView. */
function refBf16(h: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint16(0, h, false);
  dv.setUint16(2, 0, false);
  return dv.getFloat32(0, false);
}

function sameFloat(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
}

test('f16 decode is exact for all 65,536 patterns; encode inverts it', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const bulk = decodeHalf('f16', all);
  for (let h = 0; h < 65536; h++) {
    const want = refF16(h);
    assert.ok(sameFloat(f16ToF32(h), want), `f16 0x${h.toString(16)}: ${f16ToF32(h)} vs ${want}`);
    assert.ok(sameFloat(bulk[h]!, want));
    if (!Number.isNaN(want)) assert.equal(f32ToF16(want), h, `f16 re-encode of 0x${h.toString(16)}`);
  }
});

test('bf16 decode is exact for all 65,536 patterns; encode inverts it', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const bulk = decodeHalf('bf16', all);
  for (let h = 0; h < 65536; h++) {
    const want = refBf16(h);
    assert.ok(sameFloat(bf16ToF32(h), want), `bf16 0x${h.toString(16)}`);
    assert.ok(sameFloat(bulk[h]!, want));
    if (!Number.isNaN(want)) assert.equal(f32ToBf16(want), h, `bf16 re-encode of 0x${h.toString(16)}`);
  }
});
