import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UsageError } from '../../src/errors.js';
import {
  dequantize, dequantizeMatrix, findParams, maxqOf, quantize, quantizeMatrix, roundHalfEven,
} from '../../src/quant/core/grid.js';
import { rtn } from '../../src/quant/methods/rtn.js';

const f = Math.fround;
const row = [-1, -0.5, 0, 0.5, 2];

function run(bits: number, sym: boolean) {
  const p = findParams(row, bits, sym);
  const codes = row.map((x) => quantize(x, p.scale, p.zero, maxqOf(bits)));
  return { ...p, codes, dq: codes.map((q) => dequantize(q, p.scale, p.zero)) };
}

test('round is half-to-even, like torch.round', () => {
  assert.deepEqual([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4, -2.6].map(roundHalfEven), [-2, -2, -0, 0, 2, 2, 2, -3]);
});

test('asymmetric 2-bit on [-1, -0.5, 0, 0.5, 2]: range [-1, 2], scale 1, zero 1', () => {
  // maxq = 3; scale = (2 - -1) / 3 = 1; zero = round(1 / 1) = 1.
  // codes = round(x) + 1 with ties to even: -1 -> 0, -0.5 -> -0 -> 1, 0 -> 1, 0.5 -> 0 -> 1, 2 -> 3.
  const r = run(2, false);
  assert.equal(r.scale, 1);
  assert.equal(r.zero, 1);
  assert.deepEqual(r.codes, [0, 1, 1, 1, 3]);
  assert.deepEqual(r.dq, [-1, 0, 0, 0, 2]);
});

test('asymmetric 3-bit on [-1, -0.5, 0, 0.5, 2]: scale 3/7, zero 2', () => {
  // maxq = 7; scale = 3/7 = 0.42857...; zero = round(1 / (3/7)) = round(2.333) = 2.
  // x / scale = [-2.333, -1.167, 0, 1.167, 4.667] -> round [-2, -1, 0, 1, 5] -> codes [0, 1, 2, 3, 7].
  const r = run(3, false);
  const s = f(3 / 7);
  assert.equal(r.scale, s);
  assert.equal(r.zero, 2);
  assert.deepEqual(r.codes, [0, 1, 2, 3, 7]);
  assert.deepEqual(r.dq, [f(-2 * s), f(-s), 0, s, f(5 * s)]);
  const approx = [-0.857142857, -0.428571429, 0, 0.428571429, 2.142857143];
  r.dq.forEach((v, i) => assert.ok(Math.abs(v - approx[i]!) < 1e-6));
});

test('symmetric 2-bit on [-1, -0.5, 0, 0.5, 2]: range [-2, 2], scale 4/3, zero 2, top clamped', () => {
  // xmax = max(|-1|, 2) = 2, xmin = -2; scale = 4/3; zero = (3 + 1) / 2 = 2.
  // x / scale = [-0.75, -0.375, 0, 0.375, 1.5] -> round [-1, 0, 0, 0, 2] -> +2 -> [1, 2, 2, 2, 4 -> clamp 3].
  const r = run(2, true);
  assert.equal(r.scale, f(4 / 3));
  assert.equal(r.zero, 2);
  assert.deepEqual(r.codes, [1, 2, 2, 2, 3]);
  assert.deepEqual(r.dq, [f(-4 / 3), 0, 0, 0, f(4 / 3)]);
});

test('an all-zero row uses the range [-1, 1]', () => {
  const p = findParams([0, 0, 0], 2, false);
  assert.equal(p.scale, f(2 / 3));
  assert.equal(p.zero, 2); // round(1.5) = 2 (ties to even)
  assert.equal(dequantize(quantize(0, p.scale, p.zero, 3), p.scale, p.zero), 0);
});

test('values already on the grid are reproduced exactly', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 8 }), fc.boolean(), fc.array(fc.float({ min: -10, max: 10, noNaN: true }), { minLength: 1, maxLength: 32 }),
    (bits, sym, xs) => {
      const p = findParams(xs, bits, sym), maxq = maxqOf(bits);
      for (let q = 0; q <= maxq; q++) {
        const x = dequantize(q, p.scale, p.zero);
        assert.equal(dequantize(quantize(x, p.scale, p.zero, maxq), p.scale, p.zero), x);
      }
    }), { seed: 11, numRuns: 200 });
});

test('a 16-bit grid is the identity to float tolerance', () => {
  fc.assert(fc.property(fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 1, maxLength: 64 }), (xs) => {
    const p = findParams(xs, 16, false);
    const range = Math.max(0, ...xs) - Math.min(0, ...xs) || 2;
    for (const x of xs) {
      const y = dequantize(quantize(x, p.scale, p.zero, maxqOf(16)), p.scale, p.zero);
      assert.ok(Math.abs(x - y) <= 2e-5 * Math.max(range, 1e-30), `${x} -> ${y}`);
    }
  }), { seed: 16, numRuns: 200 });
});

test('|x - dq(q(x))| <= scale/2 inside the representable range', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 8 }), fc.boolean(), fc.array(fc.float({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 1, maxLength: 64 }),
    (bits, sym, xs) => {
      const p = findParams(xs, bits, sym), maxq = maxqOf(bits);
      const lo = dequantize(0, p.scale, p.zero), hi = dequantize(maxq, p.scale, p.zero);
      for (const x of xs) {
        if (x < lo || x > hi) continue;
        const err = Math.abs(x - dequantize(quantize(x, p.scale, p.zero, maxq), p.scale, p.zero));
        assert.ok(err <= p.scale / 2 + 1e-6 * (Math.abs(x) + p.scale * maxq), `bits ${bits}: x ${x} err ${err} scale ${p.scale}`);
      }
    }), { seed: 7, numRuns: 300 });
});

test('quantizeMatrix: groups, g_idx and dequantizeMatrix agree with the scalar grid', () => {
  const rows = 3, cols = 8;
  const W = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 5)));
  const m = quantizeMatrix(W, rows, cols, { bits: 3, groupSize: 4, sym: false });
  assert.deepEqual([...m.gIdx], [0, 0, 0, 0, 1, 1, 1, 1]);
  const Q = dequantizeMatrix(m, rows, cols);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < 2; g++) {
      const p = findParams(W, 3, false, r * cols + g * 4, r * cols + g * 4 + 4);
      assert.equal(m.scales[r * 2 + g], p.scale);
      assert.equal(m.zeros[r * 2 + g], p.zero);
      for (let c = g * 4; c < g * 4 + 4; c++) {
        assert.equal(Q[r * cols + c], dequantize(quantize(W[r * cols + c]!, p.scale, p.zero, 7), p.scale, p.zero));
      }
    }
  }
  assert.deepEqual(rtn(W, rows, cols, { bits: 3, groupSize: 4, sym: false }).Q, Q);
});

test("scaleDtype 'f16' rounds every scale to a float16 value", () => {
  const W = Float32Array.from({ length: 64 }, (_, i) => Math.cos(i) * 0.0371);
  const m = quantizeMatrix(W, 4, 16, { bits: 4, groupSize: 8, sym: false, scaleDtype: 'f16' });
  for (const s of m.scales) {
    // a float16 value has at most 11 significant bits
    const e = Math.floor(Math.log2(s));
    assert.equal(Math.round(s * 2 ** (10 - e)) / 2 ** (10 - e), s);
  }
});

test('bad specs throw UsageError naming the layer', () => {
  const W = new Float32Array(4 * 12);
  for (const bits of [0, 9, 2.5]) {
    assert.throws(() => quantizeMatrix(W, 4, 12, { bits, groupSize: -1, sym: false }, 'layers.0.q_proj'),
      (e: unknown) => e instanceof UsageError && /layers\.0\.q_proj: bits/.test(e.message));
  }
  for (const groupSize of [5, 0, 24, -2]) {
    assert.throws(() => quantizeMatrix(W, 4, 12, { bits: 4, groupSize, sym: false }, 'mlp.down_proj'),
      (e: unknown) => e instanceof UsageError && /mlp\.down_proj: group size/.test(e.message));
  }
});
