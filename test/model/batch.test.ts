import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { ropeTablesAt, segmentPositions } from '../../src/model/batch.js';
import { LlamaModel, type KvCache } from '../../src/model/llama.js';
import { ropeInvFreq, ropeTables } from '../../src/model/rope.js';
import { randomCheckpoint, rng, SMALL_GQA_LLAMA3 } from '../helpers/randomModel.js';

const be = new CpuBackend();
const model = LlamaModel.load(randomCheckpoint(SMALL_GQA_LLAMA3, 3), be);
const V = SMALL_GQA_LLAMA3.vocabSize;

function ids(r: () => number, n: number): Int32Array {
  return Int32Array.from({ length: n }, () => 3 + Math.floor(((r() + 1) / 2) * (V - 3)));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'lengths');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('ropeTablesAt at consecutive positions equals ropeTables; segmentPositions restarts at each offset', () => {
  const inv = ropeInvFreq(SMALL_GQA_LLAMA3);
  const want = ropeTables(inv, 5, 7);
  const got = ropeTablesAt(inv, [5, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual(got.cos, want.cos);
  assert.deepEqual(got.sin, want.sin);
  assert.deepEqual([...segmentPositions([{ start: 0, count: 2, offset: 0 }, { start: 2, count: 3, offset: 4 }])], [0, 1, 4, 5, 6]);
});

test('forwardBatch equals forward per sequence (segments of different lengths, with and without caches; < 1e-5)', async () => {
  const r = rng(17);
  const prefixes = [ids(r, 9), ids(r, 1), ids(r, 20)];
  const caches: KvCache[] = prefixes.map((p) => model.forward(p).cache);
  const segs: { ids: Int32Array; cache?: KvCache }[] = [
    { ids: ids(r, 4), cache: caches[0] }, { ids: ids(r, 11) }, { ids: ids(r, 1), cache: caches[1] },
    { ids: ids(r, 1) }, { ids: ids(r, 6), cache: caches[2] }, { ids: ids(r, 3), cache: caches[0] },
  ];
  const batch = model.forwardBatch(segs);
  const last = model.forwardBatch(segs, { logits: 'last' });
  assert.equal(batch.logits.length, segs.length);
  for (const [s, seg] of segs.entries()) {
    const ref = model.forward(seg.ids, seg.cache);
    const want = await be.read(ref.logits);
    const got = await be.read(batch.logits[s]!);
    assert.deepEqual(batch.logits[s]!.shape, [seg.ids.length, V]);
    assert.ok(maxAbsDiff(got, want) < 1e-5, `segment ${s}: logits differ by ${maxAbsDiff(got, want)}`);
    const lastRow = await be.read(last.logits[s]!);
    assert.ok(maxAbsDiff(lastRow, want.subarray(want.length - V)) < 1e-5, `segment ${s}: last row`);
    // the caches match too: continuing from the batched cache equals continuing from the reference one
    const c = batch.caches[s]!;
    assert.equal(c.length, (seg.cache?.length ?? 0) + seg.ids.length);
    for (const [l, kv] of c.layers.entries()) {
      assert.ok(maxAbsDiff(await be.read(kv.k), await be.read(ref.cache.layers[l]!.k)) < 1e-5, `segment ${s} layer ${l} k`);
      assert.ok(maxAbsDiff(await be.read(kv.v), await be.read(ref.cache.layers[l]!.v)) < 1e-5, `segment ${s} layer ${l} v`);
    }
    const next = ids(r, 2);
    const a = await be.read(model.forward(next, c).logits);
    const b = await be.read(model.forward(next, ref.cache).logits);
    assert.ok(maxAbsDiff(a, b) < 1e-5, `segment ${s}: continuing from the batched cache`);
  }
});

test('forwardBatch: one segment, no segments, hidden only; an empty segment is refused', async () => {
  const r = rng(2);
  const x = ids(r, 5);
  const one = model.forwardBatch([{ ids: x }]);
  assert.ok(maxAbsDiff(await be.read(one.logits[0]!), await be.read(model.forward(x).logits)) < 1e-5);
  assert.deepEqual(model.forwardBatch([]), { logits: [], caches: [] });
  const none = model.forwardBatch([{ ids: x }, { ids: ids(r, 2) }], { logits: 'none' });
  assert.equal(none.logits.length, 0);
  assert.deepEqual(none.caches.map((c) => c.length), [5, 2]);
  assert.throws(() => model.forwardBatch([{ ids: x }, { ids: new Int32Array(0) }]), /segment 1 has no ids/);
});
