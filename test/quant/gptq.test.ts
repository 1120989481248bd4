import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LowbitError, UsageError } from '../../src/errors.js';
import { HessianAccumulator } from '../../src/quant/core/hessian.js';
import { QuantSpec, dequantize, dequantizeMatrix, findParams, maxqOf, quantize } from '../../src/quant/core/grid.js';
import { cholesky, choleskyInverse } from '../../src/quant/core/linalg.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { gptq } from '../../src/quant/methods/gptq.js';
import { gridCode } from '../../src/quant/methods/gptqSolve.js';
import { rtn } from '../../src/quant/methods/rtn.js';
import { dequantizeGptq, packGptq } from '../../src/tensor/gptqPack.js';
import { scalesTensor } from '../../src/io/quantized/formats.js';
import { Rng, correlatedInputs, proxyLoss, layer } from './rand.js';

function damped(H: Float64Array, n: number, frac: number): Float64Array {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += H[i * n + i]!;
  const D = H.slice();
  for (let i = 0; i < n; i++) D[i * n + i]! += (frac * mean) / n;
  return D;
}

/**
 * GPTQ written plainly: one column at a time on row-major W, every update applied at once,
 * Hinv by the four-step route of gptq.py, group parameters from the current weights at a group's start
 * or, given gptq.py's blocksize, from the weights as they stood at the start of the group's block.
 */
function plainGptq(W0: Float32Array, rows: number, cols: number, H: Float64Array, spec: QuantSpec, blocksize?: number) {
  const W = Float64Array.from(W0), n = cols, maxq = maxqOf(spec.bits);
  const gs = spec.groupSize === -1 ? cols : spec.groupSize;
  const L = damped(H, n, 0.01);
  assert.ok(cholesky(L, n));
  for (let i = 0; i < n; i++) L.fill(0, i * n + i + 1, (i + 1) * n);
  const M = choleskyInverse(L, n);
  assert.ok(cholesky(M, n));
  const U = (i: number, j: number) => M[j * n + i]!; // upper factor = transpose of the lower one
  const Q = new Float32Array(rows * cols);
  let atBlockStart = W;
  for (let r = 0; r < rows; r++) {
    let p = findParams(W, spec.bits, spec.sym, r * cols, (r + 1) * cols, spec.scaleDtype);
    for (let j = 0; j < cols; j++) {
      if (blocksize && j % blocksize === 0) atBlockStart = W.slice();
      if (spec.groupSize !== -1 && j % gs === 0) p = findParams(atBlockStart, spec.bits, spec.sym, r * cols + j, r * cols + j + gs, spec.scaleDtype);
      const w = W[r * cols + j]!;
      const q = dequantize(quantize(w, p.scale, p.zero, maxq), p.scale, p.zero);
      Q[r * cols + j] = q;
      const err = (w - q) / U(j, j);
      for (let k = j + 1; k < cols; k++) W[r * cols + k]! -= err * U(j, k);
    }
  }
  return Q;
}

test('GPTQ beats RTN on ‖WX − ŴX‖² across 24 seeded correlated layers', () => {
  const rows = 16, cols = 64;
  let ratioSum = 0, cases = 0;
  for (let seed = 1; seed <= 24; seed++) {
    const bits = [2, 3, 4][seed % 3]!, groupSize = seed % 2 ? -1 : 16;
    const spec: QuantSpec = { bits, groupSize, sym: false };
    const { W, H } = layer(seed, rows, cols);
    const g = gptq(W, rows, cols, H, { spec, blocksize: 16, actOrder: seed % 4 === 0 });
    const eG = proxyLoss(W, g.Q, rows, cols, H), eR = proxyLoss(W, rtn(W, rows, cols, spec).Q, rows, cols, H);
    assert.ok(eG <= eR, `seed ${seed}, ${bits} bits, group ${groupSize}: GPTQ ${eG} > RTN ${eR}`);
    ratioSum += eG / eR; cases++;
  }
  assert.ok(ratioSum / cases < 0.8, `mean GPTQ/RTN error ratio ${ratioSum / cases}`);
});

test("the reported loss is GPTQ's identity: 2 · Σ Losses = tr(ΔW (H + λI) ΔWᵀ)", () => {
  for (const actOrder of [false, true]) {
    const rows = 8, cols = 48, { W, H } = layer(77, rows, cols);
    const g = gptq(W, rows, cols, H, { spec: { bits: 3, groupSize: 16, sym: false }, blocksize: 32, actOrder });
    const exact = proxyLoss(W, g.Q, rows, cols, damped(H, cols, g.dampUsed));
    assert.ok(Math.abs(2 * g.loss - exact) <= 1e-9 * exact, `actOrder ${actOrder}: ${2 * g.loss} vs ${exact}`);
  }
});

test('GPTQ with a diagonal H and no act-order equals RTN exactly', () => {
  const rng = new Rng(42), rows = 12, cols = 32;
  const W = rng.normals(rows * cols);
  const H = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) H[i * cols + i] = 0.1 + rng.next() * 10;
  for (const spec of [
    { bits: 2, groupSize: -1, sym: false }, { bits: 4, groupSize: 8, sym: false },
    { bits: 3, groupSize: 16, sym: true }, { bits: 8, groupSize: -1, sym: false, scaleDtype: 'f16' as const },
  ]) {
    const g = gptq(W, rows, cols, H, { spec, blocksize: 8 });
    const r = rtn(W, rows, cols, spec);
    assert.deepEqual(g.codes, r.codes);
    assert.deepEqual(g.scales, r.scales);
    assert.deepEqual(g.zeros, r.zeros);
    assert.deepEqual(g.Q, r.Q);
  }
});

test('blocked GPTQ with lazy batch updates equals plain one-column-at-a-time GPTQ', () => {
  const cases: [number, QuantSpec, number][] = [
    [5, { bits: 3, groupSize: -1, sym: false }, 16],
    [6, { bits: 4, groupSize: 32, sym: false }, 16], // group starts coincide with block starts
    [7, { bits: 2, groupSize: -1, sym: true }, 24],  // blocksize not dividing cols
    [8, { bits: 4, groupSize: 16, sym: false }, 16],
  ];
  for (const [seed, spec, blocksize] of cases) {
    const rows = 12, cols = 64, { W, H } = layer(seed, rows, cols);
    const ref = plainGptq(W, rows, cols, H, spec);
    const g = gptq(W, rows, cols, H, { spec, blocksize });
    let maxRel = 0;
    for (let i = 0; i < ref.length; i++) maxRel = Math.max(maxRel, Math.abs(g.Q[i]! - ref[i]!) / (Math.abs(ref[i]!) + 1e-3));
    assert.ok(maxRel <= 1e-6, `seed ${seed}: max relative difference ${maxRel}`);
  }
});

test('act-order with groups: g_idx picks the right scale and the packed checkpoint reproduces Q bit for bit', () => {
  const rows = 32, cols = 64, gs = 16;
  for (const [bits, staticGroups] of [[4, false], [3, false], [2, true], [8, true]] as const) {
    const { W, H } = layer(100 + bits, rows, cols);
    const spec: QuantSpec = { bits, groupSize: gs, sym: false, scaleDtype: 'f16' };
    const g = gptq(W, rows, cols, H, { spec, blocksize: 32, actOrder: true, staticGroups });
    assert.ok(g.perm);
    const perm = g.perm;
    assert.deepEqual([...perm].sort((a, b) => a - b), Array.from({ length: cols }, (_, i) => i));
    for (let j = 1; j < cols; j++) assert.ok(H[perm[j - 1]! * cols + perm[j - 1]!]! >= H[perm[j]! * cols + perm[j]!]!);
    for (let j = 0; j < cols; j++) {
      assert.equal(g.gIdx[perm[j]!], staticGroups ? Math.floor(perm[j]! / gs) : Math.floor(j / gs));
    }
    assert.deepEqual(dequantizeMatrix(g, rows, cols), g.Q);
    const { tensors } = packGptq(g, rows, cols, bits);
    assert.doesNotThrow(() => scalesTensor(tensors.scales, tensors.groups, rows, 'f16')); // solved in fp16: stored exactly
    const back = dequantizeGptq(tensors);
    assert.deepEqual(new Uint32Array(back.buffer), new Uint32Array(g.Q.buffer));
  }
});

test('dead columns are zeroed and noted', () => {
  const rows = 4, cols = 16, { W, H } = layer(3, rows, cols);
  for (let k = 0; k < cols; k++) { H[5 * cols + k] = 0; H[k * cols + 5] = 0; }
  const g = gptq(W, rows, cols, H, { spec: { bits: 4, groupSize: -1, sym: false } });
  for (let r = 0; r < rows; r++) assert.equal(g.Q[r * cols + 5], 0);
  assert.ok(g.notes.some((s) => /1 dead input column/.test(s)));
});

test('an indefinite H raises the damping and records it, or throws a LowbitError', () => {
  const cols = 8, rows = 4, W = new Rng(1).normals(rows * cols);
  const withPair = (offDiag: number) => {
    const H = new Float64Array(cols * cols);
    for (let i = 0; i < cols; i++) H[i * cols + i] = 1;
    H[1] = offDiag; H[cols] = offDiag; // eigenvalues 1 ± offDiag
    return H;
  };
  const ok = gptq(W, rows, cols, withPair(1.05), { spec: { bits: 4, groupSize: -1, sym: false } }); // λmin = −0.05
  assert.equal(ok.dampUsed, 0.1);
  assert.ok(ok.notes.some((s) => /Cholesky failed with damping 0.01; succeeded with 0.1/.test(s)));
  assert.throws(() => gptq(W, rows, cols, withPair(30), { spec: { bits: 4, groupSize: -1, sym: false }, where: 'layers.3.mlp.up_proj' }),
    (e: unknown) => e instanceof LowbitError && /layers\.3\.mlp\.up_proj: the Hessian is not positive definite/.test(e.message));
});

test('bad inputs throw UsageError', () => {
  const { W, H } = layer(2, 4, 16);
  for (const bits of [0, 9]) assert.throws(() => gptq(W, 4, 16, H, { spec: { bits, groupSize: -1, sym: false } }), UsageError);
  assert.throws(() => gptq(W, 4, 16, H, { spec: { bits: 4, groupSize: 6, sym: false } }), UsageError);
  assert.throws(() => gptq(W, 4, 16, H.subarray(1), { spec: { bits: 4, groupSize: -1, sym: false } }), UsageError);
  const bad = W.slice(); bad[5] = NaN;
  assert.throws(() => gptq(bad, 4, 16, H, { spec: { bits: 4, groupSize: -1, sym: false }, where: 'o_proj' }), /o_proj: weight \[0, 5\] is NaN/);
});

// Sub-blocks (pushes by GEMM inside a block) and lazy blocks of several gptq.py blocks are the same
// algorithm as plain per-column updates in exact arithmetic; in float64 only rounding separates them,
// far below any code change on these layers. Awkward shapes: 150 rows (row panels of 128 + 22), 200
// cols (blocks of 128 + 72, or 48 × 4 + 8), sub-blocks not dividing the block, groups straddling blocks.
const nativeSel = selectKernels('native', 2);
const kernelSets: [string, ReturnType<typeof selectKernels>['kernels'], string | undefined][] = [
  ['js', selectKernels('js', 1).kernels, undefined],
  ['native', nativeSel.kernels, nativeSel.note.startsWith('native') ? undefined : `native kernels unavailable: ${nativeSel.note}`],
];
for (const [name, linalg, skip] of kernelSets) {
  test(`${name}: sub-blocks and nested lazy blocks give the plain path's codes, and its loss to 1e-9`, { skip }, () => {
    const rows = 150, cols = 200;
    const cases: [QuantSpec, number, boolean, boolean][] = [ // spec, blocksize, actOrder, staticGroups
      [{ bits: 4, groupSize: -1, sym: false }, 128, false, false],
      [{ bits: 3, groupSize: 40, sym: false, scaleDtype: 'f16' }, 48, false, false], // a group spans two blocks
      [{ bits: 4, groupSize: 8, sym: false }, 64, true, false],
      [{ bits: 4, groupSize: 25, sym: true }, 128, true, false],
      [{ bits: 2, groupSize: 50, sym: false }, 128, true, true],
      [{ bits: 3, groupSize: 20, sym: false, scaleDtype: 'f16' }, 48, false, true],
    ];
    for (const [i, [spec, blocksize, actOrder, staticGroups]] of cases.entries()) {
      const { W, H } = layer(300 + i, rows, cols);
      const base = { spec, blocksize, actOrder, staticGroups, linalg };
      const plain = gptq(W, rows, cols, H, { ...base, subBlock: blocksize, lazyBlock: blocksize });
      for (const [subBlock, lazyBlock] of [[12, blocksize], [7, 4 * blocksize], [40, 2 * blocksize], [undefined, undefined]]) {
        const g = gptq(W, rows, cols, H, { ...base, ...(subBlock ? { subBlock } : {}), ...(lazyBlock ? { lazyBlock } : {}) });
        const at = `case ${i}, subBlock ${subBlock}, lazyBlock ${lazyBlock}`;
        assert.deepEqual(g.codes, plain.codes, at);
        assert.deepEqual(g.scales, plain.scales, at);
        assert.deepEqual(g.zeros, plain.zeros, at);
        assert.deepEqual(g.gIdx, plain.gIdx, at);
        assert.deepEqual(g.Q, plain.Q, at);
        assert.ok(Math.abs(g.loss - plain.loss) <= 1e-9 * plain.loss, `${at}: loss ${g.loss} vs ${plain.loss}`);
      }
      // And the plain path is gptq.py's algorithm: Q as the one-column reference's (no act-order or static groups).
      if (!actOrder && !staticGroups) {
        const ref = plainGptq(W, rows, cols, H, spec, blocksize);
        for (let k = 0; k < ref.length; k++) assert.ok(Math.abs(plain.Q[k]! - ref[k]!) <= 1e-6 * (Math.abs(ref[k]!) + 1e-3), `case ${i} [${k}]`);
      }
    }
  });
}

test('subBlock and lazyBlock must be positive integers', () => {
  const { W, H } = layer(2, 4, 16);
  const spec: QuantSpec = { bits: 4, groupSize: -1, sym: false };
  assert.throws(() => gptq(W, 4, 16, H, { spec, subBlock: 0 }), UsageError);
  assert.throws(() => gptq(W, 4, 16, H, { spec, lazyBlock: 2.5 }), UsageError);
});

test("the solver's branch-free grid code equals grid.ts's quantize, ties and extremes included", () => {
  const rng = new Rng(11);
  let checked = 0;
  for (let bits = 1; bits <= 8; bits++) {
    const maxq = maxqOf(bits);
    for (let i = 0; i < 200; i++) {
      // Scales with short mantissas (as fp16 scales have), so that s · (k + ½) is exact: x / s is a tie.
      const s = i === 0 ? 2 ** -24 : Math.fround((1 + Math.floor(rng.next() * 1024)) / 1024 * 2 ** Math.floor(rng.next() * 40 - 30));
      const z = Math.floor(rng.next() * (maxq + 1));
      const xs = [0, -0, 3e38, -3e38, 1e-45, -1e-45, Math.fround(s * 0.5), Math.fround(-s * 0.5)];
      for (let k = -maxq - 3; k <= maxq + 3; k++) xs.push(Math.fround(s * (k + 0.5)), Math.fround(s * k), Math.fround(s * (k + rng.next())));
      for (const x of xs) {
        assert.equal(gridCode(x, s, z, maxq), quantize(x, s, z, maxq), `x ${x}, s ${s}, z ${z}, bits ${bits}`);
        checked++;
      }
    }
  }
  assert.ok(checked > 20000);
});

test('layers reading one input (readers > 1) share its inverse factor: factored once, the same bits as factoring each', () => {
  const { kernels } = selectKernels('js', 1);
  let factored = 0;
  const counting = { ...kernels, name: 'counting', cholesky: (A: Float64Array, n: number) => { factored++; return kernels.cholesky!(A, n); } };
  const cols = 48, spec: QuantSpec = { bits: 3, groupSize: 16, sym: false };
  const { H } = layer(7, 8, cols);
  H[5 * cols + 5] = 0; // a dead column: its note comes from prepare, per layer
  for (let r = 0; r < cols; r++) { H[5 * cols + r] = 0; H[r * cols + 5] = 0; }
  const Ws = [1, 2, 3].map((s) => layer(100 + s, 8 + s, cols).W);
  for (const actOrder of [false, true]) {
    factored = 0;
    const alone = Ws.map((W, i) => gptq(W, 8 + i + 1, cols, H, { spec, actOrder, linalg: counting }));
    assert.equal(factored, 3, 'each factored on its own');
    factored = 0;
    const shared = Ws.map((W, i) => gptq(W, 8 + i + 1, cols, H, { spec, actOrder, linalg: counting, readers: 3 }));
    assert.equal(factored, 1, 'factored once for three readers');
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(shared[i]!.codes, alone[i]!.codes);
      assert.deepEqual(shared[i]!.Q, alone[i]!.Q);
      assert.deepEqual(shared[i]!.scales, alone[i]!.scales);
      assert.equal(shared[i]!.loss, alone[i]!.loss);
      assert.deepEqual(shared[i]!.notes, alone[i]!.notes);
      assert.deepEqual(shared[i]!.perm, alone[i]!.perm);
    }
    // the last reader dropped it: the next layer factors again
    gptq(Ws[0]!, 9, cols, H, { spec, actOrder, linalg: counting, readers: 3 });
    assert.equal(factored, 2);
    // other settings do not take a kept factor: damping 0.1 after a kept 0.01
    factored = 0;
    gptq(Ws[1]!, 10, cols, H, { spec, actOrder, linalg: counting, readers: 2, percdamp: 0.1 });
    assert.equal(factored, 1);
    // nor another provider
    const other = { ...counting, name: 'other' };
    gptq(Ws[1]!, 10, cols, H, { spec, actOrder, linalg: other, readers: 2 });
    assert.equal(factored, 2);
  }
});

test('a shared factor keeps the damping retries\' notes and damping for every reader', () => {
  const n = 8, spec: QuantSpec = { bits: 4, groupSize: -1, sym: false };
  const H = new Float64Array(n * n);
  for (let i = 0; i < n; i++) H[i * n + i] = 1;
  H[1] = H[n] = 1.05; // not positive definite with damping 0.01, positive with 0.1
  const W = Float32Array.from({ length: 4 * n }, (_, i) => Math.sin(i) * 0.1);
  const a = gptq(W, 4, n, H, { spec, readers: 2 }), b = gptq(W, 4, n, H, { spec, readers: 2 });
  assert.equal(a.dampUsed, 0.1);
  assert.equal(b.dampUsed, 0.1);
  assert.deepEqual(b.notes, a.notes);
  assert.equal(a.notes.length, 1);
  assert.deepEqual(b.codes, a.codes);
});
