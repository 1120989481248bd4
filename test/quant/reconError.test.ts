import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reconstructionError } from '../../src/quant/pipeline.js';
import { HessianAccumulator } from '../../src/quant/core/hessian.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { rng } from '../helpers/randomModel.js';

test('reconstructionError = mean over sequences of ‖(W − Q) X‖², from H = 2/n Σ XXᵀ', () => {
  const r = rng(5);
  const rows = 7, cols = 13, T = 9, nSeq = 3;
  const W = Float32Array.from({ length: rows * cols }, () => r());
  const Q = W.map((w) => Math.round(w * 4) / 4);
  const acc = new HessianAccumulator(cols);
  let direct = 0;
  for (let s = 0; s < nSeq; s++) {
    const X = Float32Array.from({ length: T * cols }, () => r()); // tokens are rows
    acc.add(X, T);
    for (let t = 0; t < T; t++) for (let i = 0; i < rows; i++) {
      let e = 0;
      for (let c = 0; c < cols; c++) e += (W[i * cols + c]! - Q[i * cols + c]!) * X[t * cols + c]!;
      direct += e * e;
    }
  }
  const got = reconstructionError(W, Q, rows, cols, acc.finish(), jsKernels.gemm);
  assert.ok(Math.abs(got - direct / nSeq) < 1e-5 * direct, `${got} vs ${direct / nSeq}`);
});
