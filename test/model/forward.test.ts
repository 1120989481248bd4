import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { LlamaModel } from '../../src/model/llama.js';
import { streamedNll } from '../../src/model/stream.js';
import { referenceLogits } from '../helpers/referenceForward.js';
import { randomCheckpoint, rng, SMALL_GQA_LLAMA3 } from '../helpers/randomModel.js';

const be = new CpuBackend();
const ck = randomCheckpoint(SMALL_GQA_LLAMA3, 7);
const r = rng(3);
const ids = Array.from({ length: 40 }, () => Math.floor(((r() + 1) / 2) * 60));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('random GQA model with llama3 rope scaling: engine logits match the float64 reference', async () => {
  const ref = referenceLogits(ck, ids);
  const model = LlamaModel.load(ck, be);
  const got = await be.read(model.forward(Int32Array.from(ids)).logits);
  const d = maxAbsDiff(got, ref);
  assert.ok(d < 2e-4, `max |engine - reference| = ${d}`);
  // the test can fail: a wrong rope scaling breaks it
  const noScale = randomCheckpoint({ ...SMALL_GQA_LLAMA3, ropeScaling: null }, 7);
  assert.ok(maxAbsDiff(referenceLogits(noScale, ids), ref) > 1e-2, 'llama3 scaling must change the logits of positions past 16');
});

test('KV cache: prefix + continuation equals one pass', async () => {
  const model = LlamaModel.load(ck, be);
  const whole = await be.read(model.forward(Int32Array.from(ids)).logits);
  const a = model.forward(Int32Array.from(ids.slice(0, 25)));
  const b = await be.read(model.forward(Int32Array.from(ids.slice(25)), a.cache).logits);
  const V = SMALL_GQA_LLAMA3.vocabSize;
  assert.ok(maxAbsDiff(b, whole.subarray(25 * V)) < 1e-5);
});

test('block-streamed NLL equals resident-model NLL per window', async () => {
  const w1 = Int32Array.from(ids.slice(0, 20)), w2 = Int32Array.from(ids.slice(20, 40));
  const streamed = await streamedNll(ck, be, [w1, w2], { headChunk: 7 });
  const model = LlamaModel.load(ck, be);
  for (const [i, w] of [w1, w2].entries()) {
    const logits = model.forward(w).logits;
    const nll = await be.nll(be.rows(logits, 0, 19), w.subarray(1));
    assert.ok(maxAbsDiff(streamed[i]!, nll) < 1e-6);
  }
});

test('bf16 weights evaluate exactly like their f32 upcast', async () => {
  const b16 = randomCheckpoint(SMALL_GQA_LLAMA3, 9, 'bf16');
  const f32 = { ...b16, weights: { ...b16.weights, path: 'x', list: () => b16.weights.list(), has: (n: string) => b16.weights.has(n),
    read: (n: string) => { const t = b16.weights.read(n); return new (t.constructor as any)('f32', t.shape, t.toF32()); } } };
  const a = await be.read(LlamaModel.load(b16, be).forward(Int32Array.from(ids)).logits);
  const b = await be.read(LlamaModel.load(f32, be).forward(Int32Array.from(ids)).logits);
  assert.deepEqual(a, b);
});
