// PB-LLM (quant/methods/pbllm.ts) against hahnyuan/PB-LLM gptq_pb: low fraction 0 is 8-bit GPTQ on a
// per-row grid; the mask binarizes k + 1 weights per group (k = int(numel · f)) plus ties at the
// threshold; μ, α, signs and ties on hand-worked cases; a one-column transcription of the reference
// gives the same Q; the stored kind decodes to Q bit for bit; the model's error is below RTN's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../../src/errors.js';
import { HessianAccumulator } from '../../src/quant/core/hessian.js';
import { findParams, maxqOf, quantize, dequantize } from '../../src/quant/core/grid.js';
import { cholesky, choleskyInverse } from '../../src/quant/core/linalg.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { gptq } from '../../src/quant/methods/gptq.js';
import { kthSmallest, pbllm, pbllmNominalBits, PBLLM } from '../../src/quant/methods/pbllm.js';
import { PBLLM_KIND, packPbllm } from '../../src/tensor/pbllmPack.js';
import { materializeKind } from '../../src/tensor/packed.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { openModel } from '../../src/io/open.js';
import { bitsPerWeight } from '../../src/io/storage.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { quantizeBlocks } from '../../src/quant/pipeline.js';
import { resolveOptions } from '../../src/quant/options.js';
import { calibrationSet } from '../../src/data/calibration.js';
import { DATA, TINY656K } from '../helpers/paths.js';
import { Rng, correlatedInputs, layer } from './rand.js';

const { kernels, note } = selectKernels('auto', 2);

/** H with input column `c` never active (a dead column: H_cc = 0 and its row and column 0). */
function killColumn(H: Float64Array, n: number, c: number): Float64Array {
  const D = H.slice();
  for (let i = 0; i < n; i++) { D[i * n + c] = 0; D[c * n + i] = 0; }
  return D;
}

const identity = (n: number) => { const H = new Float64Array(n * n); for (let i = 0; i < n; i++) H[i * n + i] = 1; return H; };

/**
 * gptq_pb's fasterquant written plainly: U = chol_upper((H + λI)⁻¹) by cholesky / cholesky_inverse /
 * cholesky, the mask by a full sort of each [rows × G] slice, μ and α from the masked W, then one column
 * at a time with every update applied to the whole rest of the row at once.
 */
function plainPbllm(W0: Float32Array, rows: number, cols: number, H0: Float64Array, lowFrac: number, G: number) {
  const n = cols, maxq = maxqOf(8), W = Float64Array.from(W0);
  const grid = Array.from({ length: rows }, (_, r) => findParams(W, 8, false, r * cols, (r + 1) * cols));
  const H = H0.slice();
  for (let i = 0; i < n; i++) if (H[i * n + i] === 0) { H[i * n + i] = 1; for (let r = 0; r < rows; r++) W[r * cols + i] = 0; }
  let mean = 0;
  for (let i = 0; i < n; i++) mean += H[i * n + i]!;
  for (let i = 0; i < n; i++) H[i * n + i]! += (0.01 * mean) / n;
  assert.ok(cholesky(H, n));
  for (let i = 0; i < n; i++) H.fill(0, i * n + i + 1, (i + 1) * n);
  const M = choleskyInverse(H, n);
  assert.ok(cholesky(M, n));
  const U = (i: number, j: number) => M[j * n + i]!;
  const mask = new Uint8Array(rows * cols), mu: number[] = [], alpha: number[] = [];
  for (let st = 0; st < cols; st += G) {
    const s: number[] = [];
    for (let r = 0; r < rows; r++) for (let j = st; j < st + G; j++) s.push(Math.fround(Math.fround(W[r * cols + j]! ** 2) / Math.fround(Math.fround(U(j, j)) ** 2)));
    const sorted = Float32Array.from(s).sort();
    const thresh = sorted[Math.floor(s.length * lowFrac)]!;
    for (let r = 0; r < rows; r++) for (let j = st; j < st + G; j++) mask[r * cols + j] = s[(r * G) + j - st]! <= thresh ? 1 : 0;
  }
  const nG = cols / G;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < nG; g++) {
      const x = Array.from({ length: G }, (_, j) => (mask[r * cols + g * G + j] ? W[r * cols + g * G + j]! : 0));
      const m = Math.fround(x.reduce((a, b) => a + b, 0) / G);
      mu[r * nG + g] = m;
      alpha[r * nG + g] = Math.fround(x.reduce((a, b) => a + Math.abs(Math.fround(b - m)), 0) / G);
    }
  }
  const Q = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const w = W[r * cols + j]!, p = r * nG + Math.floor(j / G);
      const q = mask[r * cols + j]
        ? (w === mu[p] ? mu[p]! : Math.fround(mu[p]! + alpha[p]! * Math.sign(w - mu[p]!)))
        : dequantize(quantize(w, grid[r]!.scale, grid[r]!.zero, maxq), grid[r]!.scale, grid[r]!.zero);
      Q[r * cols + j] = q;
      const err = (w - q) / U(j, j);
      for (let k = j + 1; k < cols; k++) W[r * cols + k]! -= err * U(j, k);
    }
  }
  return { Q, mask, mu, alpha };
}

test('low fraction 0 is GPTQ at 8 bits on a per-row asymmetric grid: the same codes and Q', () => {
  for (const [seed, rows, cols, linalg] of [[1, 24, 256, undefined], [2, 40, 384, kernels], [3, 7, 128, undefined]] as const) {
    let { W, H } = layer(seed, rows, cols);
    H = killColumn(H, cols, 5); // a dead column: zeroed by both, after the grid is fitted
    const pb = pbllm(W, rows, cols, H, { lowFrac: 0, groupSize: 128, ...(linalg ? { linalg } : {}) });
    const g = gptq(W, rows, cols, H, { spec: { bits: 8, groupSize: -1, sym: false }, ...(linalg ? { linalg } : {}) });
    assert.ok(pb.binarized.every((b) => b === 0), 'nothing binarized');
    assert.deepEqual(pb.codes, g.codes, `seed ${seed}: codes`);
    assert.deepEqual(pb.Q, g.Q, `seed ${seed}: Q`);
    assert.deepEqual(pb.scale, g.scales, 'the grid: one scale per row');
    assert.deepEqual(pb.zero, g.zeros);
    assert.equal(pb.loss, g.loss);
    assert.equal(pb.dampUsed, g.dampUsed);
  }
});

test('the mask binarizes int(numel · f) + 1 weights in every [rows × group] slice, by W² / U_jj² before the sweep', () => {
  const rows = 16, cols = 384;
  const { W, H } = layer(11, rows, cols);
  for (const [f, G] of [[0.9, 128], [6 / 7, 128], [0.5, 128], [0.95, 64], [0.9, -1]] as const) {
    const g = G === -1 ? cols : G, numel = rows * g, want = Math.floor(numel * f) + 1;
    const r = pbllm(W, rows, cols, H, { lowFrac: f, groupSize: G });
    const perRow: number[] = [];
    for (let c0 = 0; c0 < cols; c0 += g) {
      let count = 0;
      for (let i = 0; i < rows; i++) {
        let inRow = 0;
        for (let j = c0; j < c0 + g; j++) inRow += r.binarized[i * cols + j]!;
        count += inRow;
        perRow.push(inRow);
      }
      assert.equal(count, want, `f ${f} group ${G} at column ${c0}`);
    }
    assert.ok(new Set(perRow).size > 1, 'selected over the whole slice, not row by row');
  }
  // the same mask, μ and α as a full sort of the slice (gptq_pb's torch.sort(...)[0][k] and <=)
  const ref = plainPbllm(W, rows, cols, H, 0.9, 128);
  const r = pbllm(W, rows, cols, H, { lowFrac: 0.9, groupSize: 128 });
  assert.deepEqual(r.binarized, ref.mask);
  assert.deepEqual(Array.from(r.mu), ref.mu);
  assert.deepEqual(Array.from(r.alpha), ref.alpha);
  // low fraction 1: everything binarized (the reference's index would run past the end)
  assert.ok(pbllm(W, rows, cols, H, { lowFrac: 1, groupSize: 128 }).binarized.every((b) => b === 1));
});

test('ties at the threshold are binarized too (s ≤ the k-th smallest, not the k + 1 smallest)', () => {
  // H = I: every U_jj is the same, so s orders the weights by |w|. 16 weights, f = 0.5: k = 8; the sorted
  // |w| are 0.125, 0.25, 0.25, 0.5, 0.5, then eight 1s (index 5 to 12): the threshold is 1, so 13 are
  // binarized, and only 2, 3 and 4 stay salient.
  const W = Float32Array.from([1, -1, 1, -1, 2, 3, 0.5, 0.25, 1, 1, -1, 1, 4, 0.5, 0.25, 0.125]);
  const r = pbllm(W, 2, 8, identity(8), { lowFrac: 0.5, groupSize: -1 });
  assert.deepEqual(Array.from(r.binarized), Array.from(W, (w) => (Math.abs(w) <= 1 ? 1 : 0)));
  assert.equal(r.binarized.reduce((a, b) => a + b, 0), 13);
});

test('the binarizer by hand: μ and α over the whole group with salient weights as zeros, signs about μ, a tie gives μ', () => {
  // H = I: no error feedback between columns, so every weight is quantized as it is. f = 0.7 of 8: k = 5,
  // 6 binarized, the two largest |w| (8 and −6) salient. Masked row: [2, 1, 3, 2, 0, 2, 0, 0]:
  // μ = 10 / 8 = 1.25, α = (0.75 + 0.25 + 1.75 + 0.75 + 1.25 + 0.75 + 1.25 + 1.25) / 8 = 1.
  const W = Float32Array.from([2, 1, 3, 2, 8, 2, -6, 0]);
  const r = pbllm(W, 1, 8, identity(8), { lowFrac: 0.7, groupSize: -1 });
  assert.deepEqual(Array.from(r.binarized), [1, 1, 1, 1, 0, 1, 0, 1]);
  assert.deepEqual([r.mu[0], r.alpha[0]], [1.25, 1]);
  const s = Math.fround(Math.fround(14) / 255), z = Math.round(6 / s); // the 8-bit grid over [−6, 8]
  assert.deepEqual([r.scale[0], r.zero[0]], [s, z]);
  const g = (x: number) => Math.fround(s * (Math.min(255, Math.max(0, Math.round(Math.fround(x / s)) + z)) - z));
  assert.deepEqual(Array.from(r.Q), [2.25, 0.25, 2.25, 2.25, g(8), 2.25, g(-6), 0.25]);
  assert.deepEqual(Array.from(r.codes).filter((_, i) => r.binarized[i]), [2, 0, 2, 2, 2, 0]);
  // all binarized, a row whose mean is one of its weights: μ = 2, α = 0.25; w = μ has sign 0 and stays μ
  const t = pbllm(Float32Array.from([2, 1, 3, 2, 2, 2, 2, 2]), 1, 8, identity(8), { lowFrac: 1, groupSize: -1 });
  assert.deepEqual([t.mu[0], t.alpha[0]], [2, 0.25]);
  assert.deepEqual(Array.from(t.Q), [2, 1.75, 2.25, 2, 2, 2, 2, 2]);
  assert.deepEqual(Array.from(t.codes), [1, 0, 2, 1, 1, 1, 1, 1]);
  assert.ok(t.notes.some((n) => n.includes('exactly at μ')));
  // and the stored kind keeps the ties
  const k = PBLLM_KIND.open(packPbllm({ rows: 1, cols: 8, ...t, paramDtype: 'f32' }), 1.7);
  assert.deepEqual(materializeKind(k), t.Q);
});

test('the solver is gptq_pb\'s one-column loop: Q as a plain transcription of it (groups, blocks, dead columns)', () => {
  for (const [seed, f, G, blocksize, linalg] of [[21, 0.9, 64, 32, undefined], [22, 6 / 7, 128, 128, kernels], [23, 0.5, -1, 128, undefined]] as const) {
    const rows = 12, cols = 256;
    let { W, H } = layer(seed, rows, cols);
    H = killColumn(H, cols, 70);
    const ref = plainPbllm(W, rows, cols, H, f, G === -1 ? cols : G);
    const r = pbllm(W, rows, cols, H, { lowFrac: f, groupSize: G, blocksize, ...(linalg ? { linalg } : {}) });
    assert.deepEqual(r.binarized, ref.mask, `seed ${seed}: mask`);
    let maxRel = 0;
    for (let i = 0; i < ref.Q.length; i++) maxRel = Math.max(maxRel, Math.abs(r.Q[i]! - ref.Q[i]!) / (Math.abs(ref.Q[i]!) + 1e-3));
    assert.ok(maxRel <= 1e-6, `seed ${seed}: max relative difference ${maxRel}`);
    for (let i = 0; i < rows; i++) assert.equal(r.binarized[i * cols + 70], 1, 'a dead column has s = 0: binarized');
  }
});

test('the stored kind decodes to Q bit for bit (f32 and f16 parameters), and its shape checks name the part', () => {
  const rows = 20, cols = 256, { W, H } = layer(31, rows, cols);
  for (const scaleDtype of ['f32', 'f16'] as const) {
    const r = pbllm(W, rows, cols, H, { lowFrac: 0.9, groupSize: 128, scaleDtype });
    const parts = packPbllm({ rows, cols, ...r, paramDtype: scaleDtype });
    assert.equal(parts.mu!.dtype, scaleDtype);
    assert.equal(parts.codes!.numel, r.binarized.reduce((a, b) => a + (b ? 0 : 1), 0));
    const k = PBLLM_KIND.open(parts, 1.7);
    assert.deepEqual(materializeKind(k), r.Q);
    const some = new Float32Array(5 * cols);
    k.decodeRows(7, 5, some);
    assert.deepEqual(some, r.Q.subarray(7 * cols, 12 * cols), 'a panel of rows from the middle');
  }
  const r = pbllm(W, rows, cols, H, { lowFrac: 0.9, groupSize: 128 });
  const parts = packPbllm({ rows, cols, ...r, paramDtype: 'f32' });
  const info = Object.fromEntries(Object.entries(parts).map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape }]));
  assert.deepEqual(PBLLM_KIND.shape(info, 1.7), [rows, cols]);
  assert.throws(() => PBLLM_KIND.shape({ ...info, mu: { dtype: 'f32', shape: [rows, 3] } }, 1.7), /mu is f32 \[20, 3\]/);
  assert.throws(() => PBLLM_KIND.shape({ ...info, zero: { dtype: 'f32', shape: [rows] } }, 1.7), /zero/);
  assert.throws(() => PBLLM_KIND.open({ ...parts, codes: new Tensor('u8', [3], new Uint8Array(3)) }, 1.7), /codes holds 3/);
});

test('options: --wbits must be 1, the nominal bits are f + 8(1 − f), bad settings are usage errors', () => {
  assert.equal(pbllmNominalBits(0.9, 8), 1.7);
  assert.equal(pbllmNominalBits(6 / 7, 8), 2);
  assert.equal(PBLLM.nominalBits!({ bits: 1, groupSize: 128, sym: false }, resolveOptions(PBLLM, {})), 1.7);
  assert.throws(() => PBLLM.validate!({ bits: 2, groupSize: 128, sym: false }, resolveOptions(PBLLM, {})), /--wbits must be 1/);
  assert.throws(() => resolveOptions(PBLLM, { lowFrac: 1.5 }), /--low-frac must be a number in 0..1/);
  const { W, H } = layer(5, 4, 64);
  assert.throws(() => pbllm(W, 4, 64, H, { lowFrac: 0.9, groupSize: 48 }), UsageError);
  const a = Float32Array.from([5, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]);
  assert.equal(kthSmallest(a.slice(), 0), 1);
  assert.equal(kthSmallest(a.slice(), 5), 5);
  assert.equal(kthSmallest(a.slice(), 10), 9);
});

const be = new CpuBackend(kernels, note);
const ck = openModel(TINY656K);
const tmp = mkdtempSync(join(tmpdir(), 'lowbit-pbllm-'));

test('bundled model: the checkpoint read back gives the quantizer\'s Q bit for bit; bits as stored and nominal', async () => {
  const windows = calibrationSet('c4', ck.tokenizer, { nsamples: 8, seqlen: 512, seed: 0, dataDir: DATA }).windows;
  for (const [group, scaleDtype, lowFrac] of [[128, 'f32', 0.9], [-1, 'f16', 6 / 7]] as const) {
    const out = join(tmp, `g${group}-${scaleDtype}`);
    const report = await quantizeModel(ck, be, { method: 'pbllm', bits: 1, group, scaleDtype, options: { lowFrac }, nsamples: 8, seed: 0, dataDir: DATA, out });
    assert.equal(report.settings.trueSequential, false);
    assert.equal(report.settings.format, 'pbllm');
    const Qs = new Map<string, Float32Array>();
    await quantizeBlocks(ck, be, {
      method: PBLLM, spec: { bits: 1, groupSize: group, sym: false, scaleDtype }, options: resolveOptions(PBLLM, { lowFrac }), seed: 0,
      calibration: windows, reportErrors: false, onLayer: (l) => Qs.set(l.name, l.out.Q),
    });
    const back = openModel(out);
    assert.equal(back.format, 'lowbit-pbllm');
    assert.equal(Qs.size, 14);
    for (const [name, Q] of Qs) assert.deepEqual(back.weights.read(`${name}.weight`).toF32(), Q, `${name} (group ${group}, ${scaleDtype})`);
    const bits = bitsPerWeight(back);
    assert.ok(Math.abs(bits.nominal - (lowFrac + 8 * (1 - lowFrac))) < 1e-9, `nominal ${bits.nominal}`);
    // two bit planes, 8 bits per salient weight, the parameters: more than the nominal figure, as stored
    assert.ok(bits.storedLinear > 2 + 8 * (1 - lowFrac) && bits.storedLinear < 4.5, `stored ${bits.storedLinear}`);
  }
});

test('bundled model: the summed reconstruction error at 1.7 and 2 bits is below RTN\'s at 2 bits (g128)', async () => {
  const run = (method: string, bits: number, options = {}) => quantizeModel(ck, be, {
    method, bits, group: 128, options, nsamples: 8, seed: 0, dataDir: DATA, out: join(tmp, `err-${method}-${bits}-${JSON.stringify(options).replace(/\W/g, '')}`),
  });
  const rtn2 = (await run('rtn', 2)).totalError!;
  const pb17 = (await run('pbllm', 1, { lowFrac: 0.9 })).totalError!;
  const pb2 = (await run('pbllm', 1, { lowFrac: 6 / 7 })).totalError!;
  assert.ok(pb17 < rtn2, `PB-LLM 1.7 bits ${pb17} vs RTN W2 g128 ${rtn2}`);
  assert.ok(pb2 < pb17, `PB-LLM 2 bits ${pb2} vs 1.7 bits ${pb17}`);
});
