// BiLLM (quant/methods/billm.ts, braq.ts) and its stored kind (tensor/billmPack.ts): numpy's quantile and torch's
// linspace as the reference gets them, the order-1/order-2 binarizations against a plain port of the reference's
// high_order_residual, a hand-worked 4×16 layer (salient count, break point, μ/α, signs, bits), no error feedback
// inside a block and GPTQ's lazy update between blocks, narrow blocks, the stored kind decoding bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../src/errors.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { HessianAccumulator } from '../../src/quant/core/hessian.js';
import { upperCholeskyOfInverse } from '../../src/quant/core/linalg.js';
import { BILLM, billm } from '../../src/quant/methods/billm.js';
import { type BlockSearch, binarizeBlock, numpyQuantile, order1Error, order2Error, salience, searchBlock, splitLevels } from '../../src/quant/methods/braq.js';
import { BILLM_KIND, BILLM_PARAMS, billmTensors } from '../../src/tensor/billmPack.js';
import { materializeKind } from '../../src/tensor/packed.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { f16ToF32, f32ToF16 } from '../../src/tensor/codecs.js';
import { Rng, correlatedInputs } from './rand.js';

const f = Math.fround;
const f16 = (x: number) => f16ToF32(f32ToF16(x));
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
/** bit-for-bit equality of float32 arrays (−0 and +0 differ) */
function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const x = bits(a), y = bits(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}: element ${i} is ${a[i]} vs ${b[i]}`);
}

test('numpy 1.24.3 quantile, method linear, on float32 data: float32 virtual index, float64 lerp (hand-derived values)', () => {
  const five = Float32Array.of(1, 2, 3, 4, 5);
  // q = fround(0.1) = 0.10000000149011612: index 4q = 0.4000000059604645 (exact), 1 + (2 − 1)·γ in float64
  assert.equal(numpyQuantile(five, f(0.1)), 1.4000000059604645);
  // numpy 2 would lerp in float32 and give fround(1.4000000059604645) = 1.4000000953674316: 1.24 does not
  assert.notEqual(numpyQuantile(five, f(0.1)), f(1.4000000059604645));
  // q = fround(0.9) = 0.8999999761581421: index 3.5999999046325684, γ ≥ 0.5 → b − (b − a)·(1 − γ) = 5 − 0.4000000953674316
  assert.equal(numpyQuantile(five, f(0.9)), 5 - (1 - 0.5999999046325684));
  assert.equal(numpyQuantile(five, 1), 5); // index ≥ n − 1: the last value
  assert.equal(numpyQuantile(five, 0), 1);
  // the index is float32: 10⁶ · fround(0.1) = 100000.0015 rounds to 100000 (float32 spacing there is 1/128)
  const big = Float32Array.from({ length: 1_000_001 }, (_, i) => i);
  assert.equal(numpyQuantile(big, f(0.1)), 100000);
  // zeros shift the quantiles: [0, 0, 0, 8] at 0.5 → index 1.5 between two zeros
  assert.equal(numpyQuantile(Float32Array.of(0, 0, 0, 8), 0.5), 0);
  assert.equal(numpyQuantile(Float32Array.of(0, 0, 0, 8), f(0.9)), 0 + 8 * (f(3 * f(0.9)) - 2));
});

test('torch.linspace(0.10, 0.90, 81) in float32 as torch computes it (values from torch 2.13, CPU)', () => {
  const L = splitLevels();
  assert.equal(L.length, 81);
  assert.equal(L[0], f(0.1));
  assert.equal(L[40], 0.5);
  assert.equal(L[80], f(0.9));
  // float32 bit patterns torch printed (torch.linspace(0.1, 0.9, 81).numpy().view('u4')); fround(0.1 + 0.01·i) differs at some
  const torch: Record<number, number> = { 2: 0x3df5c290, 8: 0x3e3851ec, 20: 0x3e99999a, 23: 0x3ea8f5c2, 33: 0x3edc28f6, 51: 0x3f1c28f5, 76: 0x3f5c28f5 };
  for (const [i, u] of Object.entries(torch)) assert.equal(bits(L.subarray(Number(i), Number(i) + 1))[0], u, `level ${i}`);
  for (let i = 1; i < 81; i++) assert.ok(L[i]! > L[i - 1]!);
});

/** binary.py high_order_residual, ported plainly: x and mask [rows, g], float32 tensors, means over the mask per row. */
function highOrderResidual(x: Float32Array, mask: Uint8Array, rows: number, g: number, order: number): Float32Array {
  const sum = new Float32Array(rows * g);
  for (let od = 0; od < order; od++) {
    for (let r = 0; r < rows; r++) {
      const idx = [...Array(g).keys()].filter((c) => mask[r * g + c]);
      const residual = idx.map((c) => f(x[r * g + c]! - sum[r * g + c]!));
      const mean = idx.length ? f(residual.reduce((a, v) => a + v, 0) / idx.length) : 0;
      const centred = residual.map((v) => f(v - mean));
      const scale = idx.length ? f(centred.reduce((a, v) => a + Math.abs(v), 0) / idx.length) : 0;
      idx.forEach((c, k) => { sum[r * g + c] = f(sum[r * g + c]! + f(Math.sign(centred[k]!) * scale + mean)); });
    }
  }
  return sum;
}

test('order-1 and order-2 binarization (errors and the block\'s values) equal a plain port of high_order_residual, sign(0) = 0 included', () => {
  const rng = new Rng(21);
  for (const [rows, g, ints] of [[7, 12, true], [5, 16, false], [3, 9, true]] as const) {
    // small integers make w = μ (a zero sign) frequent
    const W = Float32Array.from({ length: rows * g }, () => (ints ? Math.round(rng.normal() * 1.5) : f(rng.normal() * 0.1)));
    const S = Float32Array.from({ length: rows * g }, () => f(Math.abs(rng.normal())));
    const isSalient = Uint8Array.from({ length: g }, (_, c) => (c % 4 === 1 ? 1 : 0));
    const split = f(0.8);
    const mask = (pred: (r: number, c: number) => boolean) => Uint8Array.from({ length: rows * g }, (_, i) => (pred(Math.floor(i / g), i % g) ? 1 : 0));
    const m3 = mask((_, c) => !!isSalient[c]), m1 = mask((r, c) => !isSalient[c] && S[r * g + c]! < split), m2 = mask((r, c) => !isSalient[c] && S[r * g + c]! >= split);
    const want = highOrderResidual(W, m3, rows, g, 2), g1 = highOrderResidual(W, m1, rows, g, 1), g2 = highOrderResidual(W, m2, rows, g, 1);
    for (let i = 0; i < want.length; i++) want[i] = m3[i] ? want[i]! : m1[i] ? g1[i]! : g2[i]!;
    const zeroSigns: number[] = [];
    const Q = new Float32Array(rows * g);
    binarizeBlock(W, S, g, isSalient, split, (x) => x, {
      rows, cols: g, col0: 0, block: 0, blocks: 1, planes: new Uint8Array(2 * rows * Math.ceil(g / 8)),
      params: new Float32Array(rows * BILLM_PARAMS), zeroSigns, Q,
    });
    for (let i = 0; i < Q.length; i++) assert.equal(Q[i], want[i], `block ${rows}x${g}, element ${i}`);
    if (ints) assert.ok(zeroSigns.length > 0, 'integer weights give zero signs');
    // the searches' error sums: Σ fround((x − q)²) over a row, order 1 and order 2
    const b1 = new Float32Array(g), res = new Float32Array(g);
    for (let r = 0; r < rows; r++) {
      const row = W.subarray(r * g, (r + 1) * g), all = new Uint8Array(g).fill(1);
      for (const [order, got] of [[1, order1Error(row, 0, g)], [2, order2Error(row, 0, g, b1, res)]] as const) {
        const q = highOrderResidual(row, all, 1, g, order);
        const e = [...row].reduce((a, x, c) => a + f(f(x - q[c]!) ** 2), 0);
        assert.equal(got, e, `row ${r} order ${order}`);
      }
    }
  }
  // by hand: [1, 2, 3] at order 1: μ = 2, α = 2/3, the middle weight has sign 0 and is reconstructed as μ
  const q = highOrderResidual(Float32Array.of(1, 2, 3), Uint8Array.of(1, 1, 1), 1, 3, 1);
  assert.deepEqual([...q], [f(2 - f(2 / 3)), 2, f(2 + f(2 / 3))]);
  const e = f(1 - f(2 - f(2 / 3))); // 1 − (μ − α), in float32: −0.33333325…
  assert.equal(order1Error(Float32Array.of(1, 2, 3), 0, 3), 2 * f(e * e));
  // one or two entries are exact already at order 1
  assert.equal(order1Error(Float32Array.of(0.3), 0, 1), 0);
  assert.equal(order1Error(Float32Array.of(0.25, 4), 0, 2), 0);
});

/**
 * The hand-worked layer: 4 rows × 16 columns, one block of 16, H = I/1.01 so that the damped H is I and
 * U = I: d = 1 and S = W². Columns 1, 6, 9, 14 hold |w| ∈ {4, 8, 11, 13} (S = 16, 64, 121, 169), the others
 * three each of |w| ∈ {1, 2, 2.75, 3.25} (S = 1, 4, 7.5625, 10.5625).
 * - Salient search (order 2 on S): a set {p, p + 2e, q, q + 2e} in equal counts is exact at order 2
 *   (order 1: μ = (p + q)/2 + e, α = (q − p)/2, residuals ±e; order 2: μ₂ = 0, α₂ = e). Both
 *   {16, 64, 121, 169} (e = 24) and {1, 4, 7.5625, 10.5625} (e = 1.5, three each) are, so i = 4 has error 0;
 *   i = 1..3 leave a big value among the small ones: error > 0. First minimum: 4 salient columns.
 * - Break point (order 1 on S, two groups): an order-1 group is exact iff it holds two values in equal counts,
 *   so the error is 0 iff the split falls in (4, 7.5625]. The 64 values of |S ∘ ¬salient| sorted: 16 zeros
 *   (the salient columns), 12 × 1, 12 × 4, 12 × 7.5625, 12 × 10.5625: the first quantile above 4 needs index
 *   63q > 39, q = 0.62 (level 52): index fround(63 · fround(0.62)) = 39.06000137…, p = 4 + 3.5625 · 0.06000137….
 * - Then W: group 1 = |w| ∈ {1, 2}, group 2 = |w| ∈ {2.75, 3.25}, each binarized once; the salient columns twice.
 */
const HAND_SAL = [1, 6, 9, 14];
const HAND_ROWS = [
  { sal: [4, 8, 11, 13], g1: [1, 1, 1, 2, 2, 2], g2: [2.75, 2.75, 2.75, 3.25, 3.25, 3.25] },
  { sal: [-4, 8, -11, 13], g1: [-1, -1, -1, -2, -2, -2], g2: [-2.75, -2.75, -2.75, -3.25, -3.25, -3.25] },
  { sal: [13, -11, 8, -4], g1: [1, 1, -1, 2, 2, -2], g2: [3.25, -2.75, 3.25, -2.75, 3.25, -2.75] },
  { sal: [-13, -8, -11, -4], g1: [2, 1, 2, 1, 2, 1], g2: [2.75, 3.25, 2.75, 3.25, 2.75, 3.25] },
];
function handLayer(): { W: Float32Array; H: Float64Array } {
  const W = new Float32Array(64);
  HAND_ROWS.forEach((row, r) => {
    let a = 0, b = 0; // odd columns take group 1's weights, even ones group 2's
    for (let c = 0; c < 16; c++) {
      const k = HAND_SAL.indexOf(c);
      W[r * 16 + c] = k >= 0 ? row.sal[k]! : c % 2 ? row.g1[a++]! : row.g2[b++]!;
    }
  });
  const H = new Float64Array(256);
  for (let i = 0; i < 16; i++) H[i * 17] = 1 / 1.01;
  return { W, H };
}

test('hand-worked 4×16 layer: 4 salient columns, break point at the 0.62 quantile, μ/α and signs, 1.25 bits as the paper counts', () => {
  const { W, H } = handLayer();
  const seen: { d: Float32Array; search: BlockSearch }[] = [];
  const r = billm(W, 4, 16, H, { blockSize: 16, onBlock: (b) => seen.push(b) });
  assert.equal(seen.length, 1);
  const { d, search } = seen[0]!;
  assert.deepEqual([...d], new Array(16).fill(1));
  assert.deepEqual([...search.ranked.slice(0, 4)].sort((a, b) => a - b), HAND_SAL);
  assert.equal(search.salientErrors.length, 15, 'a block of 16 tries 1..15 salient columns');
  assert.equal(search.salientErrors[3], 0);
  for (const i of [0, 1, 2]) assert.ok(search.salientErrors[i]! > 0, `i = ${i + 1}`);
  assert.equal(search.salient, 4);
  assert.deepEqual([...search.isSalient].flatMap((s, c) => (s ? [c] : [])), HAND_SAL);
  assert.equal(search.splitIndex, 52);
  assert.equal(search.candidates[51], 4);
  assert.equal(search.candidates[52], 4 + 3.5625 * (f(63 * f(0.62)) - 39));
  assert.equal(search.split, f(4.213754892349243));
  assert.equal(search.error, 0);

  // μ, α per row: group 1, group 2, salient order 1, salient order 2
  assert.deepEqual([...r.parts.params], [
    1.5, 0.5, 3, 0.25, 9, 3, 0, 1.5, //           {4, 8, 11, 13}: μ 9, α 3 → 6, 6, 12, 12; residuals −2, 2, −1, 1 → α₂ 1.5
    -1.5, 0.5, -3, 0.25, 1.5, 9, 0, 3, //        {−4, 8, −11, 13}: μ 1.5, α 9; residuals 3.5, −2.5, −3.5, 2.5 → α₂ 3
    0.5, f(8 / 6), 0.25, 3, 1.5, 9, 0, 3, //      group 1 {1, 1, −1, 2, 2, −2}: μ 0.5, α = (0.5 + 0.5 + 1.5 + 1.5 + 1.5 + 2.5)/6
    1.5, 0.5, 3, 0.25, -9, 3, 0, 1.5,
  ]);
  const row = (i: number) => [...r.Q.subarray(i * 16, i * 16 + 16)];
  const at = (i: number, cols: number[]) => cols.map((c) => r.Q[i * 16 + c]);
  assert.deepEqual(at(0, HAND_SAL), [4.5, 7.5, 10.5, 13.5]); // 6 − 1.5, 6 + 1.5, 12 − 1.5, 12 + 1.5
  assert.deepEqual(at(1, HAND_SAL), [-4.5, 7.5, -10.5, 13.5]);
  assert.deepEqual(at(2, HAND_SAL), [13.5, -10.5, 7.5, -4.5]);
  assert.deepEqual(at(3, HAND_SAL), [-13.5, -7.5, -10.5, -4.5]);
  // two values in equal counts are exact: rows 0, 1 and 3 keep every non-salient weight, row 2's group 1 does not
  for (const i of [0, 1, 3]) row(i).forEach((q, c) => { if (!HAND_SAL.includes(c)) assert.equal(q, W[i * 16 + c], `row ${i} col ${c}`); });
  const hi = f(0.5 + f(8 / 6)), lo = f(0.5 - f(8 / 6));
  assert.deepEqual(at(2, [3, 5, 7, 11, 13, 15]), [hi, hi, lo, hi, hi, lo]);
  // row 0's bits: plane 0 = signs (salient: order 1 −, −, +, +), plane 1 = group (non-salient) or order-2 sign (−, +, −, +)
  const bit = (plane: number, i: number, c: number) => (r.parts.planes[plane * 4 * 2 + i * 2 + (c >> 3)]! >> (c & 7)) & 1;
  assert.deepEqual(HAND_SAL.map((c) => bit(0, 0, c)), [0, 0, 1, 1]);
  assert.deepEqual(HAND_SAL.map((c) => bit(1, 0, c)), [0, 1, 0, 1]);
  for (let c = 0; c < 16; c++) {
    if (HAND_SAL.includes(c)) continue;
    const w = Math.abs(W[c]!);
    assert.equal(bit(1, 0, c), w > 2.5 ? 1 : 0, `group of col ${c}`);
    assert.equal(bit(0, 0, c), w === 2 || w === 3.25 ? 1 : 0, `sign of col ${c}`); // above μ = 1.5 (group 1) or 3 (group 2)
  }
  assert.deepEqual([...r.salientCounts], [4]);
  assert.equal(r.paperBits, 1.25); // 2 bits for 4 of 16 columns, 1 for the rest
  assert.equal(r.parts.zeroSigns.length, 0);
  // stored: planes 2·4·2 bytes, salient 16, params 4·1·8 float32, no zero signs: 160 bytes = 20 bits per weight here
  const stored = Object.values(billmTensors(r.parts)).reduce((a, t) => a + t.byteLength, 0);
  assert.equal(stored, 160);
  assert.match(r.notes.at(-1)!, /1\.2500 bits per weight .* salient columns per block of 16: 4; break points at the \|S\| quantiles \(%\) 62/);
});

function randomLayer(seed: number, rows: number, cols: number) {
  const rng = new Rng(seed);
  const W = Float32Array.from(rng.normals(rows * cols, 0.05), (x, i) => (i % cols === 5 ? x * 6 : x));
  const acc = new HessianAccumulator(cols);
  acc.add(correlatedInputs(rng, 4 * cols, cols), 4 * cols);
  return { W, H: acc.finish() };
}

test('no error feedback inside a block; between blocks one lazy update W[:, ed:] −= Err·U[st:ed, ed:] (GPTQ\'s formula)', () => {
  const rows = 24, cols = 96, g = 32;
  const { W, H } = randomLayer(5, rows, cols);
  const blocks: { col0: number; W1: Float32Array; d: Float32Array }[] = [];
  const r = billm(W, rows, cols, H, { blockSize: g, onBlock: (b) => blocks.push(b) });
  assert.equal(blocks.length, 3);
  // U independently: the damped H's upper Cholesky factor of the inverse (linalg.ts), checked as UᵀU = (H + λI)⁻¹
  const n = cols, A = H.slice();
  let mean = 0;
  for (let i = 0; i < n; i++) mean += H[i * n + i]! / n;
  for (let i = 0; i < n; i++) A[i * n + i]! += 0.01 * mean;
  const D = A.slice();
  assert.ok(upperCholeskyOfInverse(A, n));
  for (let i = 0; i < n; i += 17) {
    for (let j = 0; j < n; j += 13) { // (UᵀU · D)[i][j] = δ_ij
      let s = 0;
      for (let k = 0; k < n; k++) { let m = 0; for (let t = 0; t < n; t++) m += A[t * n + i]! * A[t * n + k]!; s += m * D[k * n + j]!; }
      assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-8, `(UᵀU·D)[${i}][${j}] = ${s}`);
    }
  }
  const U = Float32Array.from(A);
  const Wsim = Float32Array.from(W);
  for (const [b, blk] of blocks.entries()) {
    const st = b * g, ed = st + g;
    // the block is binarized from the weights as the earlier blocks' updates left them
    const W1 = new Float32Array(rows * g);
    for (let i = 0; i < rows; i++) W1.set(Wsim.subarray(i * cols + st, i * cols + ed), i * g);
    sameBits(blk.W1, W1, `block ${b}'s weights`);
    assert.deepEqual([...blk.d], Array.from({ length: g }, (_, k) => U[(st + k) * n + st + k]));
    // ... all at once from W1: searching and binarizing W1 alone gives the block's Q (no update between its columns)
    const S = salience(W1, rows, g, blk.d), s = searchBlock(S, rows, g);
    const Qb = new Float32Array(rows * g);
    binarizeBlock(W1, S, g, s.isSalient, s.split, (x) => x, {
      rows, cols: g, col0: 0, block: 0, blocks: 1, planes: new Uint8Array(2 * rows * 4), params: new Float32Array(rows * 8), zeroSigns: [], Q: Qb,
    });
    for (let i = 0; i < rows; i++) sameBits(r.Q.subarray(i * cols + st, i * cols + ed), Qb.subarray(i * g, (i + 1) * g), `block ${b} row ${i}`);
    // the lazy update, written plainly: Err = (W1 − Q1)/U_jj in float32, products summed k ascending in float64
    for (let i = 0; i < rows; i++) {
      for (let j = ed; j < cols; j++) {
        let acc = 0;
        for (let k = 0; k < g; k++) acc += f(f(W1[i * g + k]! - Qb[i * g + k]!) / U[(st + k) * n + st + k]!) * U[(st + k) * n + j]!;
        Wsim[i * cols + j] = f(Wsim[i * cols + j]! - acc);
      }
    }
  }
  // the provider's float64 GEMM for the update: the same masks, weights equal to float32 rounding
  const { kernels } = selectKernels('auto', 1);
  const blocks2: typeof blocks = [];
  const r2 = billm(W, rows, cols, H, { blockSize: g, linalg: kernels, onBlock: (b) => blocks2.push(b) });
  assert.deepEqual([...r2.salientCounts], [...r.salientCounts]);
  for (let i = 0; i < r.Q.length; i++) assert.ok(Math.abs(r2.Q[i]! - r.Q[i]!) <= 1e-5 * (1 + Math.abs(r.Q[i]!)), `Q[${i}]`);
});

test('narrow blocks search up to g − 1 salient columns (the reference needs 50); bad settings are UsageErrors', () => {
  const { W, H } = randomLayer(9, 16, 32);
  const tried: number[] = [];
  const r = billm(W, 16, 32, H, { blockSize: 8, onBlock: (b) => tried.push(b.search.salientErrors.length) });
  assert.deepEqual(tried, [7, 7, 7, 7]);
  assert.ok([...r.salientCounts].every((k) => k >= 1 && k <= 7));
  const two: number[] = [];
  billm(W, 16, 32, H, { blockSize: 2, onBlock: (b) => two.push(b.search.salient) });
  assert.ok(two.length === 16 && two.every((k) => k === 1), 'a block of 2: one salient column, one not');
  assert.throws(() => billm(W, 16, 32, H, { blockSize: 12, where: 'L' }), (e) => e instanceof UsageError && /L: BiLLM's block size --group 12 does not divide the 32 input columns/.test(e.message));
  assert.throws(() => billm(W, 16, 32, H, { blockSize: 1 }), /at least 2/);
  const spec = { bits: 1, groupSize: 128, sym: false };
  assert.throws(() => BILLM.validate!({ ...spec, bits: 4 }, {}), (e) => e instanceof UsageError && e.message === 'BiLLM binarizes: --wbits 1 (got 4)');
  assert.throws(() => BILLM.validate!({ ...spec, groupSize: -1 }, {}), /--group is the block size/);
  assert.throws(() => BILLM.validate!({ ...spec, sym: true }, {}), /drop --sym/);
  BILLM.validate!(spec, {});
  assert.equal(BILLM.nominalBits!(spec, {}), 1.1);
});

test('the billm kind: parts decode to Q bit for bit (f32 and f16 parameters, zero signs), the backend multiplies by them, bad parts are refused', async () => {
  const rng = new Rng(3);
  const rows = 40, cols = 96;
  // integer-valued weights: many w = μ (zero signs in both planes)
  const W = Float32Array.from({ length: rows * cols }, () => Math.round(rng.normal() * 2) / 4);
  const { H } = randomLayer(4, rows, cols);
  for (const scaleDtype of ['f32', 'f16'] as const) {
    const r = billm(W, rows, cols, H, { blockSize: 32, scaleDtype });
    assert.ok(r.parts.zeroSigns.length > 0);
    const parts = billmTensors(r.parts);
    assert.equal(parts.params!.dtype, scaleDtype);
    assert.deepEqual(BILLM_KIND.shape(Object.fromEntries(Object.entries(parts).map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }])), 1.1), [rows, cols]);
    const layer = BILLM_KIND.open(parts, 1.1);
    sameBits(materializeKind(layer), r.Q, `decoded (${scaleDtype})`);
    const panel = new Float32Array(7 * cols);
    layer.decodeRows(13, 7, panel);
    sameBits(panel, r.Q.subarray(13 * cols, 20 * cols), 'rows 13..19');
    if (scaleDtype === 'f16') for (const p of r.parts.params) assert.equal(f16(p), p);
    // y = x·Qᵀ through the packed layer, as the float weight gives it
    const { kernels, note } = selectKernels('auto', 1);
    const be = new CpuBackend(kernels, note);
    const x = be.upload(rng.normals(5 * cols), [5, cols]);
    const yq = await be.read(be.linear(x, be.uploadQuantized(layer)));
    const yf = await be.read(be.linear(x, be.uploadWeight(new Tensor('f32', [rows, cols], r.Q))));
    for (let i = 0; i < yf.length; i++) assert.ok(Math.abs(yq[i]! - yf[i]!) <= 1e-5 * (1 + Math.abs(yf[i]!)), `y[${i}]`);
  }
  const r = billm(W, rows, cols, H, { blockSize: 32 });
  const good = billmTensors(r.parts);
  const info = (p: Record<string, Tensor>) => Object.fromEntries(Object.entries(p).map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]));
  assert.throws(() => BILLM_KIND.shape(info({ ...good, planes: new Tensor('u8', [2, rows, 11], new Uint8Array(2 * rows * 11)) }), 1.1), /planes has shape \[2, 40, 11\]; for 96 columns .* \[2, 40, 12\]/);
  assert.throws(() => BILLM_KIND.shape(info({ ...good, params: new Tensor('f32', [rows, 2, 8], new Float32Array(rows * 16)) }), 1.1), /params is f32 \[40, 2, 8\]; it must be f32 or f16 \[40, 3, 8\]/);
  const z = good.zero_signs!.data as Int32Array;
  const unsorted = Int32Array.from(z).reverse();
  assert.throws(() => BILLM_KIND.open({ ...good, zero_signs: new Tensor('i32', [z.length], unsorted) }, 1.1), /zero_signs\[1\] .* must ascend/);
  const salient = Uint8Array.from(good.salient!.data as Uint8Array);
  salient[3] = 2;
  assert.throws(() => BILLM_KIND.open({ ...good, salient: new Tensor('bool', [3, 32], salient) }, 1.1), /salient\[3\] is 2/);
  const nonSalient = [...(good.salient!.data as Uint8Array)].findIndex((s) => s === 0);
  assert.throws(() => BILLM_KIND.open({ ...good, zero_signs: new Tensor('i32', [1], Int32Array.of(2 * nonSalient + 1)) }, 1.1), /plane 1 of a non-salient weight/);
});
