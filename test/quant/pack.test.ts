import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { QuantizedMatrix, dequantizeMatrix, maxqOf, sequentialGIdx } from '../../src/quant/core/grid.js';
import { dequantizeGptq, packGptq, packedWords, unpackGptq } from '../../src/tensor/gptqPack.js';
import { f16ToF32, f32ToF16 } from '../../src/tensor/codecs.js';
import { scalesTensor } from '../../src/io/quantized/formats.js';
import { Rng } from './rand.js';

function randomLayer(rng: Rng, rows: number, cols: number, bits: number, gs: number): QuantizedMatrix {
  const maxq = maxqOf(bits), groups = cols / gs;
  const pick = () => Math.floor(rng.next() * (maxq + 1));
  return {
    codes: Uint8Array.from({ length: rows * cols }, pick),
    zeros: Uint8Array.from({ length: rows * groups }, (_, i) => (i % 7 === 0 ? 0 : i % 11 === 0 ? maxq : pick())),
    scales: Float32Array.from({ length: rows * groups }, () => f16ToF32(0x2000 + Math.floor(rng.next() * 0x2000))),
    gIdx: sequentialGIdx(cols, gs),
  };
}

test('pack/unpack round-trips for bits 1–8 and every group size', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 2 ** 31 }),
    (bits, rowMul, colMul, seed) => {
      const rng = new Rng(seed), rows = 8 * rowMul, cols = 16 * colMul;
      for (const gs of [1, 2, 4, 8, 16, cols]) {
        if (cols % gs) continue;
        const m = randomLayer(rng, rows, cols, bits, gs);
        const { tensors, zeroWraps } = packGptq(m, rows, cols, bits);
        assert.equal(tensors.qweight.length, packedWords(cols, bits) * rows);
        assert.equal(tensors.qzeros.length, (cols / gs) * packedWords(rows, bits));
        assert.equal(zeroWraps, [...m.zeros].filter((z) => z === 0).length);
        const back = unpackGptq(tensors);
        assert.deepEqual(back, { ...m, gIdx: m.gIdx });
        assert.deepEqual(dequantizeGptq(tensors), dequantizeMatrix(m, rows, cols));
      }
    }), { seed: 2024, numRuns: 40 });
});

test('4-bit layout: input column c of output r is nibble c % 8 of qweight[c / 8, r]; qzeros hold zero − 1', () => {
  const rows = 8, cols = 16;
  const codes = Uint8Array.from({ length: rows * cols }, (_, i) => (i * 5 + 3) % 16);
  const zeros = Uint8Array.from({ length: rows }, (_, r) => r + 1);
  const { tensors: t } = packGptq({ codes, zeros, scales: new Float32Array(rows).fill(1), gIdx: new Int32Array(cols) }, rows, cols, 4);
  assert.equal(t.qweight.length, 2 * rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) assert.equal((t.qweight[(c >> 3) * rows + r]! >>> (4 * (c % 8))) & 15, codes[r * cols + c]);
  }
  assert.equal(t.qzeros.length, 1);
  assert.equal(t.qzeros[0]! >>> 0, 0x76543210); // zero − 1 = r, nibble r
});

test("3-bit layout matches AutoGPTQ's straddling words (32 values in 3 words)", () => {
  const rows = 1, cols = 32;
  const codes = Uint8Array.from({ length: cols }, (_, c) => (c * 3 + 1) % 8);
  const { tensors: t } = packGptq({ codes, zeros: Uint8Array.of(1), scales: Float32Array.of(1), gIdx: new Int32Array(cols) }, rows, cols, 3);
  // AutoGPTQ: word 0 = v0..v9 at 3j, v10 low 2 bits at 30; word 1 = v10 bit 2, v11..v20 at 3j + 1, v21 low bit at 31;
  // word 2 = v21 bits 1-2, v22..v31 at 3j + 2.
  const v = [...codes].map((x) => x >>> 0);
  let w0 = 0, w1 = 0, w2 = 0;
  for (let j = 0; j < 10; j++) w0 |= v[j]! << (3 * j);
  w0 |= v[10]! << 30;
  w1 |= (v[10]! >> 2) & 1;
  for (let j = 0; j < 10; j++) w1 |= v[11 + j]! << (3 * j + 1);
  w1 |= v[21]! << 31;
  w2 |= (v[21]! >> 1) & 3;
  for (let j = 0; j < 10; j++) w2 |= v[22 + j]! << (3 * j + 2);
  assert.deepEqual([...t.qweight], [w0, w1, w2]);
});

test('scales are stored in the dtype they were solved in: float32 as is, fp16 only when exact', () => {
  const m: QuantizedMatrix = { codes: new Uint8Array(32), zeros: new Uint8Array(1).fill(2), scales: Float32Array.of(0.1), gIdx: new Int32Array(32) };
  const { tensors } = packGptq(m, 1, 32, 4);
  const f32 = scalesTensor(tensors.scales, 1, 1, 'f32');
  assert.equal(f32.dtype, 'f32');
  assert.equal((f32.data as Float32Array)[0], Math.fround(0.1));
  assert.throws(() => scalesTensor(tensors.scales, 1, 1, 'f16'), /not an fp16 value/);
  const h = scalesTensor(Float32Array.of(f16ToF32(f32ToF16(0.1))), 1, 1, 'f16');
  assert.equal(h.dtype, 'f16');
  assert.equal((h.data as Uint16Array)[0], f32ToF16(0.1));
});
