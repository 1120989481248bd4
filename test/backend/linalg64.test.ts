/**
 * Float64 gemmF64, symmetricEigen and qr of the js references and of every provider that has them:
 * residuals on random and ill-conditioned matrices, agreement with js, independence of the thread
 * count (cholesky, triangularInverse and gram too: the wasm provider blocks them), and GPTQ's use of
 * the provider's gemmF64.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CpuKernels } from '../../src/backend/cpu/kernels/kernels.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { withLinalg, gemmF64 as gemmRef, qr as qrRef, symmetricEigen as eigenRef } from '../../src/backend/cpu/kernels/jsLinalg.js';
import { gptq } from '../../src/quant/methods/gptq.js';
import type { QuantSpec } from '../../src/quant/core/grid.js';
import { PROVIDERS, availability, illConditionedSpd, kernelsOf, offIdentity, rng } from './kernelCases.js';

const SIZES = [1, 3, 64, 129];

function randF64(n: number, seed: number): Float64Array {
  const r = rng(seed), out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = r() * 2 - 1;
  return out;
}

function randomSymmetric(n: number, seed: number): Float64Array {
  const A = randF64(n * n, seed);
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) A[j * n + i] = A[i * n + j]!;
  return A;
}

/** U·diag(d)·Uᵀ with U orthogonal (QR of a random matrix) and the given spectrum. */
function withSpectrum(d: number[], seed: number): Float64Array {
  const n = d.length, { Q } = qrRef(randF64(n * n, seed), n, n), A = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += Q[i * n + k]! * d[k]! * Q[j * n + k]!;
      A[i * n + j] = s; A[j * n + i] = s;
    }
  return A;
}

/** Symmetric test matrices of order n: random, rank n/2 + 1e-8·I (as Cholesky's tests), graded ±10^−12. */
function symmetricCases(n: number): [string, Float64Array][] {
  const graded = Array.from({ length: n }, (_, i) => (i % 2 ? -1 : 1) * 10 ** (-12 * i / Math.max(1, n - 1)));
  return [
    ['random', randomSymmetric(n, 11 + n)],
    ['rank-deficient SPD, cond ~1e8', illConditionedSpd(n, n)],
    ['graded ±1..1e-12', withSpectrum(graded, 7 + n)],
  ];
}

function frob(A: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < A.length; i++) s += A[i]! ** 2;
  return Math.sqrt(s);
}

/** max |XᵀX − I| for X m×n row-major. */
function orthoError(X: Float64Array, m: number, n: number): number {
  let worst = 0;
  for (let a = 0; a < n; a++)
    for (let b = 0; b <= a; b++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += X[i * n + a]! * X[i * n + b]!;
      worst = Math.max(worst, Math.abs(s - (a === b ? 1 : 0)));
    }
  return worst;
}

function eigenResidual(A: Float64Array, values: Float64Array, V: Float64Array, n: number): number {
  let num = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += A[i * n + k]! * V[k * n + j]!;
      num += (s - V[i * n + j]! * values[j]!) ** 2;
    }
  return Math.sqrt(num) / (frob(A) || 1);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

function qrCases(): [number, number, string, Float64Array][] {
  const out: [number, number, string, Float64Array][] = [];
  for (const [m, n] of [[1, 1], [3, 3], [64, 64], [129, 129], [200, 129], [129, 3]] as const) out.push([m, n, 'random', randF64(m * n, m * 1000 + n)]);
  // Columns of a Vandermonde-like matrix: condition ~1e12 and beyond.
  const m = 129, n = 64, V = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) V[i * n + j] = (i / (m - 1)) ** (j % 16) * (1 + j * 1e-3);
  out.push([m, n, 'ill-conditioned', V]);
  return out;
}

function suite(name: string, load: (threads?: number) => CpuKernels): void {
  const noGemm = load().gemmF64 ? false : `${name} has no gemmF64 (GPTQ keeps its TypeScript lazy update)`;
  it(`${name}: gemmF64 equals the js reference to 1e-12 (relative), y overwritten`, { skip: noGemm }, () => {
    const k = load();
    for (const [M, N, K] of [[1, 1, 1], [1, 300, 17], [5, 3, 0], [300, 260, 70], [257, 513, 128]] as const) {
      const x = randF64(M * K, M + N), w = randF64(N * K, K + 3), y = new Float64Array(M * N).fill(7), ref = new Float64Array(M * N);
      k.gemmF64!(x, w, y, M, N, K);
      gemmRef(x, w, ref, M, N, K);
      const scale = Math.max(1, ref.reduce((a, v) => Math.max(a, Math.abs(v)), 0));
      const d = maxAbsDiff(y, ref) / scale;
      assert.ok(d <= 1e-12, `${M}x${N}x${K}: relative difference ${d}`);
    }
  });

  it(`${name}: symmetricEigen residual < 1e-10, VᵀV = I, ascending, A untouched, agrees with js`, () => {
    const k = load();
    for (const n of SIZES) {
      for (const [what, A] of symmetricCases(n)) {
        const at = `n=${n} ${what}`, before = A.slice();
        const { values, vectors } = k.symmetricEigen!(A, n);
        assert.deepEqual(A, before, `${at}: A modified`);
        assert.equal(values.length, n); assert.equal(vectors.length, n * n);
        for (let j = 1; j < n; j++) assert.ok(values[j - 1]! <= values[j]!, `${at}: values not ascending`);
        const r = eigenResidual(A, values, vectors, n);
        assert.ok(r < 1e-10, `${at}: ‖AV−VΛ‖/‖A‖ = ${r}`);
        const o = orthoError(vectors, n, n);
        assert.ok(o < 1e-10, `${at}: max|VᵀV−I| = ${o}`);
        const ref = eigenRef(A, n), normA = frob(A);
        const dv = maxAbsDiff(values, ref.values);
        assert.ok(dv <= 1e-12 * normA, `${at}: eigenvalues ${dv} from js`);
        if (what === 'random') { // well separated: the vectors themselves (sign convention included)
          for (let j = 0; j < n; j++) {
            const gap = Math.min(j > 0 ? values[j]! - values[j - 1]! : Infinity, j < n - 1 ? values[j + 1]! - values[j]! : Infinity);
            if (gap < 1e-4 * normA) continue;
            let d = 0;
            for (let i = 0; i < n; i++) d = Math.max(d, Math.abs(vectors[i * n + j]! - ref.vectors[i * n + j]!));
            assert.ok(d < 1e-9, `${at}: eigenvector ${j} ${d} from js`);
          }
        }
      }
    }
    const z = k.symmetricEigen!(new Float64Array(0), 0);
    assert.equal(z.values.length, 0);
  });

  it(`${name}: qr residual < 1e-12, QᵀQ = I, R upper with diagonal ≥ 0, agrees with js`, () => {
    const k = load();
    for (const [m, n, what, A] of qrCases()) {
      const at = `${m}x${n} ${what}`, before = A.slice();
      const { Q, R } = k.qr!(A, m, n);
      assert.deepEqual(A, before, `${at}: A modified`);
      assert.equal(Q.length, m * n); assert.equal(R.length, n * n);
      for (let i = 0; i < n; i++) {
        assert.ok(R[i * n + i]! >= 0, `${at}: R[${i},${i}] < 0`);
        for (let j = 0; j < i; j++) assert.equal(R[i * n + j], 0, `${at}: R[${i},${j}] not 0`);
      }
      let num = 0;
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let t = 0; t <= j; t++) s += Q[i * n + t]! * R[t * n + j]!;
          num += (s - A[i * n + j]!) ** 2;
        }
      const res = Math.sqrt(num) / frob(A);
      assert.ok(res < 1e-12, `${at}: ‖QR−A‖/‖A‖ = ${res}`);
      const o = orthoError(Q, m, n);
      assert.ok(o < 1e-12, `${at}: max|QᵀQ−I| = ${o}`);
      if (what === 'random') {
        const ref = qrRef(A, m, n);
        assert.ok(maxAbsDiff(R, ref.R) < 1e-10 * frob(A), `${at}: R from js`);
        assert.ok(maxAbsDiff(Q, ref.Q) < 1e-9, `${at}: Q from js`);
      }
    }
    assert.throws(() => k.qr!(new Float64Array(6), 2, 3), RangeError);
  });
}

describe('js float64 linalg (reference)', () => {
  suite('js', () => ({ ...withLinalg(jsKernels), gemmF64: gemmRef }));
  it('js: gemmF64 is not among the defaults (GPTQ keeps its own lazy update)', () => {
    assert.equal(withLinalg(jsKernels).gemmF64, undefined);
    assert.equal(jsKernels.gemmF64, undefined);
  });
});
for (const p of PROVIDERS) {
  describe(`${p.name} float64 linalg`, availability(p), () => {
    suite(p.name, (threads = 1) => withLinalg(kernelsOf(p, threads)));

    it(`${p.name}: results do not depend on the thread count`, () => {
      const k1 = kernelsOf(p, 1), k3 = kernelsOf(p, 3);
      const M = 300, N = 520, K = 130, x = randF64(M * K, 1), w = randF64(N * K, 2);
      const y1 = new Float64Array(M * N), y3 = new Float64Array(M * N);
      if (k1.gemmF64) {
        k1.gemmF64(x, w, y1, M, N, K);
        k3.gemmF64!(x, w, y3, M, N, K);
        assert.deepEqual(y3, y1, 'gemmF64');
      }
      const n = 300, A = randomSymmetric(n, 4);
      const e1 = k1.symmetricEigen!(A, n), e3 = k3.symmetricEigen!(A, n);
      assert.deepEqual(e3.values, e1.values, 'symmetricEigen values');
      assert.deepEqual(e3.vectors, e1.vectors, 'symmetricEigen vectors');
      const B = randF64(400 * 300, 5), q1 = k1.qr!(B, 400, 300), q3 = k3.qr!(B, 400, 300);
      assert.deepEqual(q3.Q, q1.Q, 'qr Q');
      assert.deepEqual(q3.R, q1.R, 'qr R');
      // GPTQ's Hinv and Hessian: several blocks of the blocked factorizations and tiles of the Gram
      const H = illConditionedSpd(n, n + 7, n), L1 = H.slice(), L3 = H.slice();
      assert.equal(k1.cholesky!(L1, n), true); assert.equal(k3.cholesky!(L3, n), true);
      assert.deepEqual(L3, L1, 'cholesky');
      k1.triangularInverse!(L1, n); k3.triangularInverse!(L3, n);
      assert.deepEqual(L3, L1, 'triangularInverse');
      const xs = new Float32Array(randF64(257 * 201, 6)), S1 = new Float64Array(201 * 201).fill(0.25), S3 = S1.slice();
      k1.gram!(xs, S1, 257, 201); k3.gram!(xs, S3, 257, 201);
      assert.deepEqual(S3, S1, 'gram');
    });

    it(`${p.name}: blocked cholesky and triangularInverse across many blocks: residuals and js agreement`, () => {
      const k = kernelsOf(p, 2), js = withLinalg(jsKernels);
      for (const n of [191, 320]) { // 64-column blocks with a ragged last one, and whole ones
        const H = illConditionedSpd(n, n + 100, n), L = H.slice(), ref = H.slice();
        assert.equal(k.cholesky!(L, n), true); js.cholesky!(ref, n);
        let d = 0, scale = 0;
        for (let i = 0; i < n * n; i++) { d = Math.max(d, Math.abs(L[i]! - ref[i]!)); scale = Math.max(scale, Math.abs(ref[i]!)); }
        assert.ok(d <= 1e-12 * scale, `cholesky n=${n}: ${d / scale} from js`);
        const Li = L.slice();
        k.triangularInverse!(Li, n);
        for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) assert.equal(Li[i * n + j], 0, `triangularInverse n=${n}: upper (${i},${j}) not 0`);
        const worst = offIdentity(L, Li, n);
        assert.ok(worst < 1e-10, `triangularInverse n=${n}: max|L·L⁻¹ − I| = ${worst}`);
      }
    });

    const noGemm = kernelsOf(p).gemmF64 ? false : `${p.name} has no gemmF64`;
    it(`${p.name}: GPTQ uses the provider's gemmF64 and gives the codes of the TypeScript path`, { skip: noGemm }, () => {
      const k = kernelsOf(p, 2);
      let calls = 0;
      const counted = { ...k, gemmF64: (x: Float64Array, w: Float64Array, y: Float64Array, M: number, N: number, K: number) => { calls++; k.gemmF64!(x, w, y, M, N, K); } };
      const rows = 48, cols = 160, r = rng(5);
      const W = new Float32Array(rows * cols).map(() => (r() * 2 - 1) * 0.05);
      const X = randF64(2 * cols * cols, 9), H = new Float64Array(cols * cols);
      for (let t = 0; t < 2 * cols; t++) // H = XᵀX plus a shared component: correlated inputs
        for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) H[i * cols + j]! += (X[t * cols + i]! + 0.3 * X[t * cols]!) * (X[t * cols + j]! + 0.3 * X[t * cols]!);
      const specs: [QuantSpec, boolean, number][] = [
        [{ bits: 4, groupSize: -1, sym: false }, false, 32],
        [{ bits: 2, groupSize: 16, sym: true }, false, 48],
        [{ bits: 3, groupSize: 32, sym: false }, true, 64],
      ];
      for (const [spec, actOrder, blocksize] of specs) {
        const ref = gptq(W, rows, cols, H, { spec, actOrder, blocksize });
        const before = calls;
        const g = gptq(W, rows, cols, H, { spec, actOrder, blocksize, linalg: counted });
        assert.ok(calls > before, 'gemmF64 not called');
        assert.deepEqual(g.codes, ref.codes, JSON.stringify(spec));
        assert.ok(Math.abs(g.loss - ref.loss) <= 1e-9 * ref.loss, `loss ${g.loss} vs ${ref.loss}`);
      }
    });
  });
}
