// The quantization core with a linear-algebra provider agrees with its TypeScript reference:
// the js provider always, the native provider when its addon is built (skipped with the reason otherwise).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { loadNativeKernels } from '../../src/backend/cpu/kernels/native.js';
import { HessianAccumulator } from '../../src/quant/core/hessian.js';
import { upperCholeskyOfInverse as upperTs } from '../../src/quant/core/linalg.js';
import { QuantLinalg, upperCholeskyOfInverse } from '../../src/quant/core/linalgProvider.js';
import type { QuantSpec } from '../../src/quant/core/grid.js';
import { gptq } from '../../src/quant/methods/gptq.js';
import { Rng, correlatedInputs } from './rand.js';

const native = loadNativeKernels(2);
const providers: [string, QuantLinalg | undefined, string | undefined][] = [
  ['js', jsKernels, undefined],
  ['native', native.ok ? native.kernels : undefined, native.ok ? undefined : `native provider unavailable: ${native.reason}`],
];

/** max |a − b| / sqrt(|H_aa H_bb|): entry errors relative to the scale of their row and column. */
function scaledDiff(A: Float64Array, B: Float64Array, n: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const s = Math.sqrt(Math.abs(B[i * n + i]! * B[j * n + j]!)) || 1;
      worst = Math.max(worst, Math.abs(A[i * n + j]! - B[i * n + j]!) / s);
    }
  }
  return worst;
}

function hessian(X: Float32Array, batches: number[], cols: number, linalg?: QuantLinalg): Float64Array {
  const acc = new HessianAccumulator(cols, { linalg });
  let o = 0;
  for (const t of batches) { acc.add(X.subarray(o, o + t * cols), t); o += t * cols; }
  return acc.finish();
}

for (const [name, linalg, skip] of providers) {
  test(`${name}: Hessian through gram equals the TypeScript accumulator to 1e-12`, { skip }, () => {
    for (const cols of [1, 7, 64, 131]) {
      const rng = new Rng(cols), batches = [300, 1, 17];
      const X = correlatedInputs(rng, 318, cols);
      const ref = hessian(X, batches, cols), H = hessian(X, batches, cols, linalg);
      const d = scaledDiff(H, ref, cols);
      assert.ok(d < 1e-12, `cols ${cols}: scaled difference ${d}`);
      for (let a = 0; a < cols; a++) for (let b = 0; b < a; b++) assert.equal(H[a * cols + b], H[b * cols + a]);
    }
  });

  test(`${name}: upper Cholesky factor of H⁻¹ equals linalg.ts, and a failure restores A`, { skip }, () => {
    for (const n of [1, 2, 33, 96]) {
      const rng = new Rng(n + 5), X = correlatedInputs(rng, 4 * n + 8, n);
      const A = hessian(X, [4 * n + 8], n);
      const ref = A.slice(), got = A.slice();
      assert.ok(upperTs(ref, n));
      assert.ok(upperCholeskyOfInverse(got, n, linalg));
      const d = scaledDiff(got, ref, n);
      assert.ok(d < 1e-9, `n ${n}: scaled difference ${d}`);
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(got[i * n + j], 0);
    }
    const n = 6, bad = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) bad[i * n + j] = i === j ? 1 : 0.9 - 0.05 * Math.abs(i - j);
    bad[1] = bad[n] = 3; // indefinite
    const before = bad.slice();
    assert.equal(upperCholeskyOfInverse(bad, n, linalg), false);
    assert.deepEqual(bad, before);
  });

  // Default (float64 lazy update, Hinv from the provider): the same codes, Q and loss to 1e-6. With
  // lazyUpdate 'f32' (float32 sgemm, as gptq.py) a weight near a rounding boundary may flip and the rest
  // of its row follows (see gptq.ts), so only the loss is compared, to 1e-2.
  test(`${name}: GPTQ with the provider agrees with GPTQ without`, { skip }, () => {
    const rows = 48, cols = 160;
    const specs: [QuantSpec, boolean, number][] = [
      [{ bits: 4, groupSize: -1, sym: false }, false, 32],
      [{ bits: 3, groupSize: 32, sym: false, scaleDtype: 'f16' }, true, 64],
      [{ bits: 2, groupSize: 16, sym: true }, false, 48], // blocksize not dividing cols
      [{ bits: 4, groupSize: 32, sym: true }, true, 128],
    ];
    for (const [seed, [spec, actOrder, blocksize]] of specs.entries()) {
      const rng = new Rng(900 + seed);
      const W = rng.normals(rows * cols, 0.05);
      const H = hessian(correlatedInputs(rng, 2 * cols, cols), [2 * cols], cols);
      const ref = gptq(W, rows, cols, H, { spec, actOrder, blocksize });
      const at = `spec ${JSON.stringify(spec)}, actOrder ${actOrder}`;
      for (const lin of [linalg, { ...linalg, name: `${name}+gemmF64`, gemmF64 }]) {
        const g = gptq(W, rows, cols, H, { spec, actOrder, blocksize, linalg: lin });
        assert.deepEqual(g.codes, ref.codes, `${at}, ${lin?.name}`);
        assert.deepEqual(g.gIdx, ref.gIdx, at);
        assert.deepEqual(g.perm, ref.perm, at);
        assert.equal(g.dampUsed, ref.dampUsed, at);
        assert.ok(relDiff(g.Q, ref.Q) <= 1e-6, `${at}, ${lin?.name}: Q ${relDiff(g.Q, ref.Q)} apart`);
        assert.ok(Math.abs(g.loss - ref.loss) <= 1e-6 * ref.loss, `${at}: loss ${g.loss} vs ${ref.loss}`);
      }
      const f = gptq(W, rows, cols, H, { spec, actOrder, blocksize, linalg, lazyUpdate: 'f32' });
      assert.ok(Math.abs(f.loss - ref.loss) <= 1e-2 * ref.loss, `${at}, f32 update: loss ${f.loss} vs ${ref.loss}`);
    }
  });
}

/** A float64 gemm in plain loops, standing in for a provider's dgemm. */
function gemmF64(x: Float64Array, w: Float64Array, y: Float64Array, M: number, N: number, K: number): void {
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      y[m * N + n] = s;
    }
  }
}

function relDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (Math.abs(b[i]!) + 1e-6));
  return worst;
}

test('a provider without the optional methods falls back to TypeScript', () => {
  const rows = 8, cols = 24, rng = new Rng(3);
  const W = rng.normals(rows * cols, 0.05);
  const H = hessian(correlatedInputs(rng, 64, cols), [64], cols);
  const bare: QuantLinalg = { name: 'bare' };
  assert.deepEqual(hessian(correlatedInputs(new Rng(4), 32, cols), [32], cols, bare),
    hessian(correlatedInputs(new Rng(4), 32, cols), [32], cols));
  const spec: QuantSpec = { bits: 4, groupSize: -1, sym: false };
  const a = gptq(W, rows, cols, H, { spec }), b = gptq(W, rows, cols, H, { spec, linalg: bare });
  assert.deepEqual(b.Q, a.Q);
  assert.equal(b.loss, a.loss);
});
