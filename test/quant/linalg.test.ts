import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cholesky, choleskyInverse, invertLower, upperCholeskyOfInverse,
} from '../../src/quant/core/linalg.js';
import { Rng, frobenius, illConditionedSpd, matmul, transpose } from './rand.js';

function lowerOnly(A: Float64Array, n: number): Float64Array {
  const L = A.slice();
  for (let i = 0; i < n; i++) L.fill(0, i * n + i + 1, (i + 1) * n);
  return L;
}

function relDiff(A: Float64Array, B: Float64Array): number {
  const D = A.map((x, i) => x - B[i]!);
  return frobenius(D) / frobenius(B);
}

function identity(n: number): Float64Array {
  const I = new Float64Array(n * n);
  for (let i = 0; i < n; i++) I[i * n + i] = 1;
  return I;
}

for (const n of [1, 2, 7, 64, 129]) {
  test(`Cholesky of an ill-conditioned SPD matrix (n=${n}, cond 1e8): ||LLᵀ − H|| / ||H|| < 1e-10`, () => {
    const H = illConditionedSpd(new Rng(100 + n), n, 8);
    const A = H.slice();
    assert.equal(cholesky(A, n), true);
    const L = lowerOnly(A, n);
    assert.ok(relDiff(matmul(L, transpose(L, n), n), H) < 1e-10);
    // the strict upper triangle is untouched
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) assert.equal(A[i * n + j], H[i * n + j]);
  });
}

test('invertLower and choleskyInverse give inverses', () => {
  const n = 50, H = illConditionedSpd(new Rng(3), n, 6);
  const L = H.slice();
  assert.ok(cholesky(L, n));
  const Lo = lowerOnly(L, n), X = Lo.slice();
  invertLower(X, n);
  assert.ok(relDiff(matmul(Lo, lowerOnly(X, n), n), identity(n)) < 1e-10);
  const Hi = choleskyInverse(Lo, n);
  assert.ok(relDiff(matmul(Hi, H, n), identity(n)) < 1e-7); // cond 1e6: residual ~ cond · eps
});

test("upperCholeskyOfInverse equals GPTQ's cholesky(cholesky_inverse(cholesky(H)), upper=True)", () => {
  const n = 67, H = illConditionedSpd(new Rng(5), n, 4);
  // the four-step route, written plainly
  const L = H.slice();
  assert.ok(cholesky(L, n));
  const Hi = choleskyInverse(lowerOnly(L, n), n);
  const L2 = Hi.slice();
  assert.ok(cholesky(L2, n));
  const Uref = transpose(lowerOnly(L2, n), n);
  const U = H.slice();
  assert.equal(upperCholeskyOfInverse(U, n), true);
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(U[i * n + j], 0);
  assert.ok(relDiff(U, Uref) < 1e-9);
  assert.ok(relDiff(matmul(transpose(U, n), U, n), Hi) < 1e-9);
});

test('upperCholeskyOfInverse restores an indefinite matrix and returns false', () => {
  const n = 5, rng = new Rng(9);
  const H = illConditionedSpd(rng, n, 1);
  H[2 * n + 2] = -1;
  const A = H.slice();
  assert.equal(upperCholeskyOfInverse(A, n), false);
  assert.deepEqual(A, H);
});
