import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../src/errors.js';
import { HessianAccumulator } from '../../src/quant/core/hessian.js';
import { Rng, naiveHessian } from './rand.js';

for (const cols of [1, 7, 64, 131]) {
  test(`HessianAccumulator equals 2/n Σ x xᵀ over several calls (cols=${cols})`, () => {
    const rng = new Rng(cols);
    const acc = new HessianAccumulator(cols);
    const batches = [300, 1, 17].map((t) => ({ t, X: rng.normals(t * cols) }));
    for (const { t, X } of batches) acc.add(X, t);
    const all = new Float32Array(batches.reduce((s, b) => s + b.X.length, 0));
    let o = 0;
    for (const b of batches) { all.set(b.X, o); o += b.X.length; }
    const ref = naiveHessian(all, 318, cols, 3);
    const H = acc.finish();
    assert.equal(acc.nSamples, 3);
    assert.equal(acc.nTokens, 318);
    let maxRel = 0;
    for (let i = 0; i < H.length; i++) maxRel = Math.max(maxRel, Math.abs(H[i]! - ref[i]!) / (Math.abs(ref[i]!) + 1e-12));
    assert.ok(maxRel < 1e-12, `max relative difference ${maxRel}`);
    for (let a = 0; a < cols; a++) for (let b = 0; b < a; b++) assert.equal(H[a * cols + b], H[b * cols + a]);
  });
}

test('nSamples weights the running mean as gptq.py counts samples', () => {
  const acc = new HessianAccumulator(2);
  acc.add(Float32Array.from([1, 2, 3, 4]), 2, 2); // one call carrying a batch of two sequences
  assert.deepEqual([...acc.finish()], [10, 14, 14, 20].map((v) => (2 / 2) * v));
});

test('bad shapes throw UsageError', () => {
  const acc = new HessianAccumulator(3);
  assert.throws(() => acc.add(new Float32Array(5), 2), UsageError);
  assert.throws(() => acc.finish(), UsageError);
});
