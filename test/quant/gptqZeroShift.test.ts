/**
 * GPTQ float zero points (GptqPacked.zerosF) and QA-LoRA's merge into them (tensor/gptqZeroShift.ts):
 * integer-valued float zeros decode bit for bit as the packed zeros; the merged layer dequantizes to
 * W + delta[o, g(j)] / groupSize; merges that QA-LoRA cannot do are refused, naming the layer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeQuantRows } from '../../src/backend/cpu/kernels/qgemm.js';
import { UsageError } from '../../src/errors.js';
import { dequantizeGptq, gptqZeroPoints, packGptq, unpackGptq } from '../../src/tensor/gptqPack.js';
import { mergeZeroShift } from '../../src/tensor/gptqZeroShift.js';
import type { GptqPacked } from '../../src/tensor/packed.js';
import { assertSameBits, randF32, rng } from '../backend/kernelCases.js';

/** Random codes, zeros and scales on a `bits` grid; act-order shuffles g_idx. */
function randomLayer(N: number, K: number, bits: number, group: number, seed: number, actOrder = false): GptqPacked {
  const r = rng(seed), maxq = 2 ** bits - 1, groups = Math.ceil(K / group);
  const gIdx = Int32Array.from({ length: K }, (_, c) => Math.floor(c / group));
  if (actOrder) for (let c = K - 1; c > 0; c--) { const j = Math.floor(r() * (c + 1)); [gIdx[c], gIdx[j]] = [gIdx[j]!, gIdx[c]!]; }
  return packGptq({
    codes: new Uint8Array(N * K).map(() => Math.floor(r() * (maxq + 1))), gIdx,
    zeros: new Uint8Array(N * groups).map(() => Math.floor(r() * (maxq + 1))),
    scales: new Float32Array(N * groups).map(() => (r() - 0.3) * 0.05),
  }, N, K, bits).tensors;
}

const CASES: [number, number, number, number, boolean][] = [[4, 33, 64, 32, false], [3, 17, 100, 32, true], [2, 5, 31, 31, false], [8, 40, 48, 16, true]];

test('zerosF holding the integer zeros decodes bit for bit as the packed zeros (dequantizeGptq, decodeQuantRows)', () => {
  for (const [bits, N, K, group, act] of CASES) {
    const q = randomLayer(N, K, bits, group, bits + N, act);
    const zerosF = gptqZeroPoints(q);
    assert.ok(zerosF.every((z) => Number.isInteger(z) && z >= 0 && z < 2 ** bits));
    const qf = { ...q, zerosF };
    const want = dequantizeGptq(q);
    assertSameBits(dequantizeGptq(qf), want, `dequantizeGptq ${bits}-bit`);
    const rows = new Float32Array(N * K);
    decodeQuantRows(qf, 0, N, rows);
    assertSameBits(rows, want, `decodeQuantRows ${bits}-bit`);
    const nr = Math.min(2, N), tail = new Float32Array(nr * K);
    decodeQuantRows(qf, N - nr, nr, tail);
    assertSameBits(tail, want.subarray((N - nr) * K), `decodeQuantRows rows ${N - nr}.. ${bits}-bit`);
    // a zero point of 1.5 moves that group's weights by exactly −0.5·scale: the float zeros are used, not the packed ones
    const moved = zerosF.slice(); moved[0] = moved[0]! + 0.5;
    const w = dequantizeGptq({ ...q, zerosF: moved });
    const g0cols = [...q.gIdx].flatMap((g, c) => (g === 0 ? [c] : []));
    for (const c of g0cols) assert.equal(w[c], Math.fround(q.scales[0]! * (unpackGptq(q).codes[c]! - moved[0]!)));
    assert.throws(() => unpackGptq(qf), UsageError);
  }
});

test('mergeZeroShift: the merged weight is W + delta[o, g(j)] / groupSize (max error ≤ 1e-5 · max|W|)', () => {
  for (const [bits, N, K, group] of [[4, 33, 64, 32], [2, 20, 96, 16], [8, 7, 40, 8], [3, 12, 64, 64]] as const) {
    const q = randomLayer(N, K, bits, group, 100 + bits), groups = K / group;
    const W = dequantizeGptq(q);
    const delta = randF32(N * groups, 7 + bits, 0.05);
    const m = mergeZeroShift(q, delta, group);
    assert.ok(m.zerosF!.some((z) => !Number.isInteger(z)), 'the merge made non-integer zeros');
    assert.deepEqual(m.qweight, q.qweight); assert.deepEqual(m.scales, q.scales);
    const Wm = dequantizeGptq(m);
    let maxW = 0, maxErr = 0, maxShift = 0;
    for (let o = 0; o < N; o++) {
      for (let j = 0; j < K; j++) {
        const want = W[o * K + j]! + delta[o * groups + Math.floor(j / group)]! / group;
        maxW = Math.max(maxW, Math.abs(W[o * K + j]!));
        maxErr = Math.max(maxErr, Math.abs(Wm[o * K + j]! - want));
        maxShift = Math.max(maxShift, Math.abs(Wm[o * K + j]! - W[o * K + j]!));
      }
    }
    assert.ok(maxErr <= 1e-5 * maxW, `${bits}-bit g${group}: max error ${maxErr} > 1e-5 · ${maxW}`);
    assert.ok(maxShift > 100 * maxErr, `the weights did move (${maxShift})`);
    // the packed qzeros hold the rounded, clamped zeros for integer-only readers
    const rounded = gptqZeroPoints({ ...m, zerosF: undefined } as GptqPacked);
    m.zerosF!.forEach((z, i) => assert.equal(rounded[i], Math.min(2 ** bits - 1, Math.max(0, Math.round(z)))));
    // merging again shifts the float zeros again
    const twice = dequantizeGptq(mergeZeroShift(m, delta, group));
    for (let i = 0; i < N * K; i++) {
      const o = Math.floor(i / K), j = i % K;
      assert.ok(Math.abs(twice[i]! - (W[i]! + 2 * delta[o * groups + Math.floor(j / group)]! / group)) <= 2e-5 * maxW);
    }
  }
});

test('mergeZeroShift refuses act-order g_idx, a group size that does not divide in_features and a wrong delta, naming the layer', () => {
  const act = randomLayer(8, 64, 4, 32, 3, true);
  assert.throws(() => mergeZeroShift(act, new Float32Array(16), 32, 'model.layers.0.mlp.up_proj'), (e: unknown) =>
    e instanceof UsageError && /model\.layers\.0\.mlp\.up_proj/.test(e.message) && /act-order/.test(e.message));
  const q = randomLayer(8, 64, 4, 32, 4);
  assert.throws(() => mergeZeroShift(q, new Float32Array(8 * 3), 24, 'L'), /L \[8, 64\]: group size 24 does not divide the 64 input columns/);
  assert.throws(() => mergeZeroShift(q, new Float32Array(8 * 4), 16, 'L'), /2 group\(s\), but 64 columns in groups of 16 make 4/);
  assert.throws(() => mergeZeroShift(q, new Float32Array(15), 32, 'L'), /delta has 15 elements, expected \[8, 2\]/);
  assert.throws(() => mergeZeroShift(q, Float32Array.from({ length: 16 }, () => NaN), 32, 'L'), /zero point of group 0, output 0 is NaN/);
});
