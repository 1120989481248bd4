import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shuffle, Xoshiro128 } from '../../src/tensor/xoshiro.js';

test('xoshiro128** step: state [1, 2, 3, 4] gives 11520, 0, 5927040 (worked out by hand from the reference C)', () => {
  // out = rotl(s1·5, 7)·9; then t = s1 << 9, s2 ^= s0, s3 ^= s1, s1 ^= s2, s0 ^= s3, s2 ^= t, s3 = rotl(s3, 11)
  // step 1: rotl(10, 7)·9 = 1280·9 = 11520; state → [7, 0, 1026, 12288]
  // step 2: s1 = 0 → 0; state → [12295, 1029, 1026, 25165824]
  // step 3: rotl(1029·5, 7)·9 = 658560·9 = 5927040
  const r = Xoshiro128.restore({ s: [1, 2, 3, 4], spare: null });
  assert.deepEqual([r.nextU32(), r.nextU32(), r.nextU32()], [11520, 0, 5927040]);
});

test('the stream is fixed by (seed, stream) and differs between streams', () => {
  const draw = (seed: number, stream: number) => { const r = new Xoshiro128(seed, stream); return Array.from({ length: 8 }, () => r.nextU32()); };
  assert.deepEqual(draw(7, 1), draw(7, 1));
  assert.notDeepEqual(draw(7, 1), draw(7, 2));
  assert.notDeepEqual(draw(7, 1), draw(8, 1));
});

test('state() / restore() continue the stream exactly, a pending polar normal included, through JSON', () => {
  const a = new Xoshiro128(42, 3);
  a.normal(); // leaves the pair's second value pending
  a.uniform();
  a.normal(); // the pending value
  a.normal(); // a new pair: its second value is pending now
  const saved = JSON.parse(JSON.stringify(a.state()));
  assert.notEqual(saved.spare, null);
  const b = Xoshiro128.restore(saved);
  const seq = (r: Xoshiro128) => [r.normal(), r.normal(), r.uniform(-2, 3), r.int(1000), r.nextU32(), r.normal()];
  assert.deepEqual(seq(b), seq(a));
  assert.deepEqual(b.state(), a.state());
});

test('restore() refuses states that are not four uint32 words, all zero, or a non-finite spare', () => {
  assert.throws(() => Xoshiro128.restore({ s: [1, 2, 3] as unknown as [number, number, number, number], spare: null }), RangeError);
  assert.throws(() => Xoshiro128.restore({ s: [1, 2, 3, 2 ** 32], spare: null }), RangeError);
  assert.throws(() => Xoshiro128.restore({ s: [1, 2, 3.5, 4], spare: null }), RangeError);
  assert.throws(() => Xoshiro128.restore({ s: [0, 0, 0, 0], spare: null }), RangeError);
  assert.throws(() => Xoshiro128.restore({ s: [1, 2, 3, 4], spare: NaN }), RangeError);
});

test('uniform(lo, hi) lies in [lo, hi), uniform() equals uniform(0, 1), and the mean is right', () => {
  const a = new Xoshiro128(1, 1), b = new Xoshiro128(1, 1);
  for (let i = 0; i < 100; i++) assert.equal(a.uniform(), b.uniform(0, 1));
  let sum = 0;
  for (let i = 0; i < 20000; i++) {
    const x = a.uniform(-0.5, 1.5);
    assert.ok(x >= -0.5 && x < 1.5, `uniform out of range: ${x}`);
    sum += x;
  }
  assert.ok(Math.abs(sum / 20000 - 0.5) < 0.02, `mean ${sum / 20000}`);
});

test('normal(): mean 0 and variance 1 over 40,000 draws', () => {
  const r = new Xoshiro128(9, 0);
  let s = 0, s2 = 0;
  const n = 40000;
  for (let i = 0; i < n; i++) { const x = r.normal(); s += x; s2 += x * x; }
  assert.ok(Math.abs(s / n) < 0.02, `mean ${s / n}`);
  assert.ok(Math.abs(s2 / n - 1) < 0.03, `variance ${s2 / n}`);
});

test('shuffle: Fisher–Yates from n−1 down, a permutation, deterministic, all 6 orders of 3 about equally often', () => {
  const r = new Xoshiro128(5, 5), copy = Xoshiro128.restore(r.state());
  const p = shuffle(10, r);
  // the same draws by hand: j = int(i + 1) for i = 9..1, swap p[i], p[j]
  const q = Array.from({ length: 10 }, (_, i) => i);
  for (let i = 9; i >= 1; i--) { const j = copy.int(i + 1); [q[i], q[j]] = [q[j]!, q[i]!]; }
  assert.deepEqual([...p], q);
  assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 10 }, (_, i) => i));
  assert.notDeepEqual([...p], Array.from({ length: 10 }, (_, i) => i));
  assert.deepEqual(shuffle(0, r).length, 0);
  assert.deepEqual([...shuffle(1, r)], [0]);
  const counts = new Map<string, number>();
  const g = new Xoshiro128(11, 0);
  for (let k = 0; k < 6000; k++) { const key = [...shuffle(3, g)].join(''); counts.set(key, (counts.get(key) ?? 0) + 1); }
  assert.equal(counts.size, 6);
  for (const [key, c] of counts) assert.ok(c > 850 && c < 1150, `order ${key}: ${c} of 6000`);
  assert.throws(() => shuffle(-1, g), RangeError);
});
