import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, clipGradNorm, learningRate } from '../../src/train/adamw.js';
import { UsageError } from '../../src/errors.js';

const close = (a: number, b: number, rel: number, what: string) =>
  assert.ok(Math.abs(a - b) <= rel * Math.max(1e-30, Math.abs(b)), `${what}: ${a} vs ${b}`);

test('AdamW: two steps against a hand-computed example (lr 0.1, λ 0.01, β 0.9/0.999, ε 1e-8)', () => {
  // p = [1, −0.5]; g1 = [0.1, −0.2]; g2 = [0.3, 0.05]
  // step 1, p0: p = 1·(1 − 0.1·0.01) = 0.999; m = 0.1·0.1 = 0.01; v = 0.001·0.01 = 1e-5
  //   m̂ = 0.01/0.1 = 0.1; √v̂ = √(1e-5/0.001) = 0.1; p = 0.999 − 0.1·0.1/(0.1 + 1e-8) = 0.89900001
  // step 1, p1: p = −0.4995; m = −0.02; v = 4e-5; m̂ = −0.2, √v̂ = 0.2; p = −0.4995 + 0.1·0.2/(0.2 + 1e-8) = −0.399500005
  // step 2, p0: p = 0.89900001·0.999 = 0.89810100999; m = 0.9·0.01 + 0.1·0.3 = 0.039; v = 0.999·1e-5 + 0.001·0.09 = 9.999e-5
  //   bc1 = 1 − 0.9² = 0.19, bc2 = 1 − 0.999² = 0.001999; m̂ = 0.205263158; √v̂ = √(0.0500200100) = 0.223651534
  //   p = 0.89810101 − 0.1·0.205263158/0.223651544 = 0.806322902
  // step 2, p1: p = −0.399101005; m = 0.9·(−0.02) + 0.1·0.05 = −0.013; v = 0.999·4e-5 + 0.001·0.0025 = 4.246e-5
  //   m̂ = −0.0684210526; √v̂ = √(0.0212406203) = 0.145741621; p = −0.399101005 + 0.0469473 = −0.352153691
  const p = Float32Array.of(1, -0.5);
  const opt = new AdamW([p], { weightDecay: 0.01 });
  opt.update([Float32Array.of(0.1, -0.2)], 0.1);
  assert.equal(opt.step, 1);
  close(p[0]!, 0.89900001, 1e-7, 'step 1 p0');
  close(p[1]!, -0.399500005, 1e-7, 'step 1 p1');
  close(opt.m[0]![0]!, 0.01, 1e-7, 'step 1 m0');
  close(opt.v[0]![1]!, 4e-5, 1e-7, 'step 1 v1');
  opt.update([Float32Array.of(0.3, 0.05)], 0.1);
  assert.equal(opt.step, 2);
  close(p[0]!, 0.806322902, 2e-7, 'step 2 p0');
  close(p[1]!, -0.352153691, 2e-7, 'step 2 p1');
  close(opt.m[0]![0]!, 0.039, 1e-7, 'step 2 m0');
  close(opt.m[0]![1]!, -0.013, 1e-7, 'step 2 m1');
  close(opt.v[0]![0]!, 9.999e-5, 1e-7, 'step 2 v0');
  close(opt.v[0]![1]!, 4.246e-5, 1e-7, 'step 2 v1');
});

test('AdamW: weight decay is decoupled (a zero gradient only shrinks p by lr·λ), and a restored optimiser continues bit-identically', () => {
  const p = Float32Array.of(2, -3);
  const opt = new AdamW([p], { weightDecay: 0.1 });
  opt.update([Float32Array.of(0, 0)], 0.5);
  assert.deepEqual([...p], [Math.fround(2 * 0.95), Math.fround(-3 * 0.95)]);

  const grads = [Float32Array.of(0.3, -0.1, 0.7), Float32Array.of(-0.2, 0.4, 0.05), Float32Array.of(0.01, 0.02, -0.5)];
  const a = Float32Array.of(0.5, 0.25, -1), b = Float32Array.from(a);
  const oa = new AdamW([a]);
  oa.update([grads[0]!], 0.01);
  const ob = new AdamW([b]);
  b.set(a);
  ob.restore([Float32Array.from(oa.m[0]!)], [Float32Array.from(oa.v[0]!)], oa.step);
  for (const g of grads.slice(1)) { oa.update([g], 0.01); ob.update([g], 0.01); }
  assert.deepEqual([...b], [...a]);
  assert.deepEqual([...ob.m[0]!], [...oa.m[0]!]);
  assert.throws(() => ob.update([Float32Array.of(1)], 0.01), UsageError);
  assert.throws(() => ob.restore([Float32Array.of(1)], [Float32Array.of(1)], 1), UsageError);
  assert.throws(() => new AdamW([a], { beta1: 1 }), UsageError);
});

test('clipGradNorm: torch clip_grad_norm_ (total L2 norm, coef = max/(total + 1e-6), scaled only when coef < 1)', () => {
  const g1 = Float32Array.of(3, 0, -4), g2 = Float32Array.of(12); // total √(9 + 16 + 144) = 13
  const total = clipGradNorm([g1, g2], 1);
  assert.equal(total, 13);
  const coef = 1 / (13 + 1e-6);
  assert.deepEqual([...g1, ...g2], [3, 0, -4, 12].map((x) => Math.fround(x * coef)));
  let sq = 0;
  for (const x of [...g1, ...g2]) sq += x * x;
  close(Math.sqrt(sq), 1, 1e-6, 'norm after clipping');

  const h = Float32Array.of(0.3, 0.4); // norm 0.5 < 1: untouched
  close(clipGradNorm([h], 1), 0.5, 1e-7, 'small norm');
  assert.deepEqual([...h], [Math.fround(0.3), Math.fround(0.4)]);
  const bad = Float32Array.of(Infinity, 1);
  assert.equal(clipGradNorm([bad], 1), Infinity);
  assert.deepEqual([...bad], [Infinity, 1]);
  assert.throws(() => clipGradNorm([h], 0), UsageError);
});

test('learningRate: HF constant, constant_with_warmup and linear lambdas at several steps', () => {
  const lr = 2e-4;
  // HF: LambdaLR gives base_lr · λ(current_step); current_step is the number of updates already taken
  for (const step of [0, 1, 5, 100]) assert.equal(learningRate(step, { lr, warmupSteps: 10, schedule: 'constant' }, 100), lr);
  const cw = (step: number) => learningRate(step, { lr, warmupSteps: 10, schedule: 'constant_with_warmup' }, 100);
  assert.equal(cw(0), 0);
  assert.equal(cw(3), lr * (3 / 10));
  assert.equal(cw(9), lr * (9 / 10));
  assert.equal(cw(10), lr);
  assert.equal(cw(1000), lr);
  const lin = (step: number, warm = 10, total = 110) => learningRate(step, { lr, warmupSteps: warm, schedule: 'linear' }, total);
  assert.equal(lin(0), 0);
  assert.equal(lin(5), lr * 0.5);
  assert.equal(lin(10), lr * (100 / 100));
  assert.equal(lin(35), lr * (75 / 100));
  assert.equal(lin(110), 0);
  assert.equal(lin(200), 0);
  assert.equal(lin(0, 0, 4), lr);      // no warmup: (4 − 0)/max(1, 4)
  assert.equal(lin(3, 0, 4), lr * 0.25);
  assert.equal(lin(0, 0, 0), 0);       // max(0, 0/max(1, 0))
  assert.equal(learningRate(0, { lr, warmupSteps: 0, schedule: 'constant_with_warmup' }, 10), lr); // 0 < 0 is false: λ = 1
  assert.throws(() => learningRate(-1, { lr, warmupSteps: 0, schedule: 'linear' }, 10), UsageError);
  assert.throws(() => learningRate(1, { lr, warmupSteps: 0, schedule: 'cosine' as 'linear' }, 10), UsageError);
});
