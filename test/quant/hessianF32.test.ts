import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HessianAccumulator } from '../../src/quant/core/hessian.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { UsageError } from '../../src/errors.js';
import { rng } from '../helpers/randomModel.js';

test("Hessian precision 'f32' (float32 GEMM per call, float64 across calls) agrees with float64 sums to float32 accuracy", () => {
  const r = rng(11);
  const cols = 37, T = 300;
  for (const k of [jsKernels, selectKernels('auto', 2).kernels]) {
    const a = new HessianAccumulator(cols), b = new HessianAccumulator(cols, { linalg: k, precision: 'f32' });
    for (let s = 0; s < 4; s++) {
      const X = Float32Array.from({ length: T * cols }, () => r());
      a.add(X, T); b.add(X, T);
    }
    const H = a.finish(), G = b.finish();
    let num = 0, den = 0;
    for (let i = 0; i < H.length; i++) { num += (H[i]! - G[i]!) ** 2; den += H[i]! ** 2; }
    assert.ok(Math.sqrt(num / den) < 1e-6, `${k.name}: relative error ${Math.sqrt(num / den)}`);
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) assert.equal(G[i * cols + j], G[j * cols + i]);
  }
  assert.throws(() => new HessianAccumulator(cols, { precision: 'f32' }), UsageError);
});
