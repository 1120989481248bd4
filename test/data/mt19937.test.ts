import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PyRandom } from '../../src/data/mt19937.js';

// Golden values from CPython 3.11.7 (python3 on the dev machine); each comment is the snippet.

test('random.seed(0); [random.randint(0, 1000) for _ in range(5)]', () => {
  const r = new PyRandom(0);
  assert.deepEqual(Array.from({ length: 5 }, () => r.randint(0, 1000)), [864, 394, 776, 911, 430]);
});

test('random.seed(2); [random.randint(0, 10**7) for _ in range(5)]', () => {
  const r = new PyRandom(2);
  assert.deepEqual(Array.from({ length: 5 }, () => r.randint(0, 10 ** 7)), [948774, 1536537, 1423915, 6057539, 2836752]);
});

test('random.seed(42); [random.random() for _ in range(3)]', () => {
  const r = new PyRandom(42);
  assert.deepEqual([r.random(), r.random(), r.random()], [0.6394267984578837, 0.025010755222666936, 0.27502931836911926]);
});

test('multi-word seed 2**40+5: randint, then getrandbits(64), (40), (7)', () => {
  // random.seed(2**40+5); [random.randint(0, 1000) for _ in range(3)], random.getrandbits(64), random.getrandbits(40), random.getrandbits(7)
  for (const seed of [2 ** 40 + 5, 2n ** 40n + 5n]) {
    const r = new PyRandom(seed);
    assert.deepEqual([r.randint(0, 1000), r.randint(0, 1000), r.randint(0, 1000)], [516, 529, 275]);
    assert.equal(r.getrandbits(64), 17077747508935831298n);
    assert.equal(r.getrandbits(40), 579938387080n);
    assert.equal(r.getrandbits(7), 97n);
  }
});

test('negative seeds use abs(seed); negative ranges', () => {
  // random.seed(-7); [random.randint(-5, 5) for _ in range(6)]
  const r = new PyRandom(-7);
  assert.deepEqual(Array.from({ length: 6 }, () => r.randint(-5, 5)), [0, -3, 1, 5, -5, -4]);
});

test('ranges wider than 32 bits (randbelow through two words)', () => {
  // random.seed(0); [random.randint(0, 2**50) for _ in range(3)]
  const r = new PyRandom(0);
  assert.deepEqual([r.randint(0, 2 ** 50), r.randint(0, 2 ** 50), r.randint(0, 2 ** 50)], [867496826243021, 91162487198805, 1094213834040930]);
});

test('a seed of several 32-bit words (bigint) and getrandbits(100)', () => {
  // random.seed(12345678901234567890123); [random.randint(1, 6) for _ in range(6)]
  const r = new PyRandom(12345678901234567890123n);
  assert.deepEqual(Array.from({ length: 6 }, () => r.randint(1, 6)), [2, 5, 2, 6, 4, 2]);
  // random.seed(0); random.getrandbits(100)
  assert.equal(new PyRandom(0).getrandbits(100), 1169245609517217401678349469645n);
});

test('empty ranges fail as CPython does', () => {
  assert.throws(() => new PyRandom(0).randint(0, -1), /empty range/);
});
