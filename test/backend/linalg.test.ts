/**
 * Float64 linear algebra (gram, cholesky, triangularInverse, choleskyInverse) of the js references
 * and of every provider that has them: residuals on ill-conditioned SPD matrices, agreement with js.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CpuKernels } from '../../src/backend/cpu/kernels/kernels.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { withLinalg } from '../../src/backend/cpu/kernels/jsLinalg.js';
import { NMSE_MAX, PROVIDERS, assertClose, availability, illConditionedSpd, kernelsOf, offIdentity, randF32 } from './kernelCases.js';

const SIZES = [1, 3, 127, 129];

/** ‖L·Lᵀ − H‖_F / ‖H‖_F, L lower triangular. */
function residual(L: Float64Array, H: Float64Array, n: number): number {
  let num = 0, den = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k <= Math.min(i, j); k++) s += L[i * n + k]! * L[j * n + k]!;
      num += (s - H[i * n + j]!) ** 2;
      den += H[i * n + j]! ** 2;
    }
  return Math.sqrt(num / den);
}

function suite(name: string, load: () => CpuKernels): void {
  it(`${name}: cholesky residual < 1e-10 on SPD matrices with condition ~1e8, strict upper zeroed`, () => {
    const k = load();
    for (const n of SIZES) {
      const H = illConditionedSpd(n, n), L = H.slice();
      assert.equal(k.cholesky!(L, n), true, `n=${n} reported not positive definite`);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) assert.equal(L[i * n + j], 0, `n=${n}: upper (${i},${j}) not zeroed`);
      const r = residual(L, H, n);
      assert.ok(r < 1e-10, `n=${n}: ‖LLᵀ−H‖/‖H‖ = ${r}`);
    }
  });

  it(`${name}: cholesky reports an indefinite matrix`, () => {
    const k = load();
    const A = Float64Array.of(4, 2, 0, 2, 1, 0, 0, 0, -1);
    assert.equal(k.cholesky!(A, 3), false);
    assert.equal(k.cholesky!(Float64Array.of(NaN), 1), false);
  });

  it(`${name}: triangularInverse and choleskyInverse`, () => {
    const k = load();
    for (const n of SIZES) {
      const H = illConditionedSpd(n, n + 100, n); // + n·I: well conditioned, so inverses can be checked tightly
      const L = H.slice();
      k.cholesky!(L, n);
      const Li = L.slice();
      k.triangularInverse!(Li, n);
      assert.ok(offIdentity(L, Li, n) < 1e-10, `triangularInverse n=${n}`);
      const Hi = H.slice();
      assert.equal(k.choleskyInverse!(Hi, n), true);
      assert.ok(offIdentity(H, Hi, n) < 1e-10, `choleskyInverse n=${n}`);
      const ref = H.slice();
      jsKernels.choleskyInverse!(ref, n);
      assertClose(Hi, ref, NMSE_MAX.choleskyInverse, `choleskyInverse vs js n=${n}`);
    }
  });

  const upper = (S: Float64Array, K: number) => {
    const u: number[] = [];
    for (let i = 0; i < K; i++) for (let j = i; j < K; j++) u.push(S[i * K + j]!);
    return Float64Array.from(u);
  };
  // 300×129 and 40×300 span several 256-column tiles of the native grid, 4097 rows more than one row block
  const GRAM_CASES = [[1, 1], [3, 127], [300, 129], [513, 3], [40, 300], [4097, 5]] as const;

  it(`${name}: gram accumulates the upper triangle of S += xᵀx like js`, () => {
    const k = load();
    for (const [rows, K] of GRAM_CASES) {
      const x = randF32(rows * K, rows + K), S = new Float64Array(K * K).fill(0.5), ref = S.slice();
      k.gram!(x, S, rows, K);
      jsKernels.gram!(x, ref, rows, K);
      assertClose(upper(S, K), upper(ref, K), NMSE_MAX.gram, `gram ${rows}x${K}`);
    }
  });

  it(`${name}: gramF32 (when present) is xᵀx to float32 accuracy, summed onto S in float64`, (t) => {
    const k = load();
    if (!k.gramF32) { t.skip(`${name} has no gramF32`); return; }
    for (const [rows, K] of GRAM_CASES) {
      const x = randF32(rows * K, rows + K), S = new Float64Array(K * K).fill(0.5), ref = S.slice();
      k.gramF32(x, S, rows, K);
      jsKernels.gram!(x, ref, rows, K);
      const a = upper(S, K), b = upper(ref, K);
      let num = 0, den = 0;
      for (let i = 0; i < a.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
      assert.ok(Math.sqrt(num / den) < 1e-6, `gramF32 ${rows}x${K}: relative error ${Math.sqrt(num / den)}`);
      assert.ok(Math.sqrt(num / den) > 0 || rows * K < 10, 'float32 sums differ from float64 ones somewhere');
    }
    // non-finite inputs propagate like the float64 reference
    const x = randF32(4 * 3, 1); x[4] = NaN;
    const S = new Float64Array(9);
    k.gramF32(x, S, 4, 3);
    assert.ok(Number.isNaN(S[0 * 3 + 1]!) && Number.isNaN(S[1 * 3 + 1]!) && Number.isFinite(S[0]!), 'NaN in column 1 only');
  });
}

describe('js linalg (reference)', () => suite('js', () => withLinalg(jsKernels)));
for (const p of PROVIDERS) {
  describe(`${p.name} linalg`, availability(p), () => suite(p.name, () => withLinalg(kernelsOf(p))));
}
