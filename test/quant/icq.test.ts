// ICQ (quant/methods/icq.ts) against htqin/IR-QLoRA: numpy's linspace of the factors, the entropy of a
// block's codes, the search on a deterministic matrix against the reference's own code run on bitsandbytes'
// torch kernels (test/golden/icq-irqlora.json, written by scripts/icq-golden.py); the stored kinds decode to
// Q bit for bit and multiply as x·Qᵀ; the bundled model round-trips through a checkpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytes, floats, goldenInput, readGolden } from './nf4Golden.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { openModel } from '../../src/io/open.js';
import { bitsPerWeight } from '../../src/io/storage.js';
import { quantizeBlocks } from '../../src/quant/pipeline.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { resolveOptions } from '../../src/quant/options.js';
import { ICQ, SIGMA, blockEntropy, icq, quantizeTau, tauFactors } from '../../src/quant/methods/icq.js';
import { quantizeNf4 } from '../../src/quant/methods/nf4.js';
import { DYNAMIC_MAP, ICQ_KIND, ICQDQ_KIND, NF4_LEVELS, packNf4 } from '../../src/tensor/nf4Pack.js';
import { materializeKind } from '../../src/tensor/packed.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { TINY656K } from '../helpers/paths.js';
import { Rng } from './rand.js';

const f = Math.fround;
const bitsOf = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);
function sameBits(a: Float32Array, b: Float32Array, what: string) {
  assert.equal(a.length, b.length, `${what}: length`);
  const A = bitsOf(a), B = bitsOf(b);
  for (let i = 0; i < A.length; i++) if (A[i] !== B[i]) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}
const info = (p: Record<string, Tensor>) => Object.fromEntries(Object.entries(p).map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]));
const OPTS = { tauLambda: 0.1, tauN: 100 };

test('the factors are np.linspace(-0.1σ, 0.1σ, 201) to the bit; the entropy of a block\'s codes', () => {
  const fac = tauFactors(0.1, 100);
  assert.equal(fac.length, 201);
  // values numpy 2.4.6 prints for np.linspace(-0.1*sigma, 0.1*sigma, 201)
  assert.deepEqual([fac[0], fac[37], fac[100], fac[200]], [-0.05410872368978237, -0.034088495924562895, 6.938893903907228e-18, 0.05410872368978237]);
  assert.equal(SIGMA, 0.5410872368978237);
  const hist = (counts: Record<number, number>) => Int32Array.from({ length: 16 }, (_, k) => counts[k] ?? 0);
  assert.equal(blockEntropy(hist(Object.fromEntries(Array.from({ length: 16 }, (_, k) => [k, 4])))), 4, 'uniform: 16 · (1/16 · 4) = 4');
  assert.equal(blockEntropy(hist({ 3: 32, 9: 32 })), 1);
  assert.equal(blockEntropy(hist({ 7: 64 })), 0);
  // 48 and 16: −0.75·log2 0.75 − 0.25·log2 0.25 in float32 steps
  assert.equal(blockEntropy(hist({ 0: 48, 15: 16 })), f(f(-0.75 * f(Math.log2(0.75))) + 0.5));
});

interface Golden { rows: number; cols: number; sigma: number; tau: string; tauCodes: string; tauAbsmax: string; codes: string; absmax: string; torch: string }
const golden = readGolden<Golden>('icq-irqlora.json');

test(`a deterministic matrix: τ, its codes and the NF4 codes equal IR-QLoRA's search (torch ${golden.torch})`, () => {
  assert.equal(golden.sigma, SIGMA);
  const w = goldenInput(golden.rows, golden.cols);
  const r = icq(w, { ...OPTS, doubleQuant: false });
  sameBits(r.tauSearched, floats(golden.tau), 'τ as searched');
  assert.deepEqual([...r.tau.q], [...bytes(golden.tauCodes)], 'τ codes');
  sameBits(r.tau.absmax, floats(golden.tauAbsmax), 'τ absmax');
  sameBits(r.absmax as Float32Array, floats(golden.absmax), 'absmax of w − τ');
  const packed = packNf4({ rows: golden.rows, cols: golden.cols, codes: r.codes, absmax: r.absmax }).codes!.data as Uint8Array, ref = bytes(golden.codes);
  // block 11 is all zero: bitsandbytes' torch fallback codes it 7, its CUDA kernel (and lowbit) 0; both decode to 0
  for (let i = 0; i < packed.length; i++) assert.equal(packed[i], i >= 32 * 11 && i < 32 * 12 ? 0 : ref[i], `byte ${i}`);
  // the paper's point: the codes carry more information than plain NF4's (mean entropy over the blocks)
  const plain = quantizeNf4(w).codes;
  const meanEntropy = (c: Uint8Array) => {
    let sum = 0;
    for (let b = 0; b < 256; b++) { const h = new Int32Array(16); for (let i = b * 64; i < b * 64 + 64; i++) h[c[i]!]!++; sum += blockEntropy(h); }
    return sum / 256;
  };
  assert.ok(meanEntropy(r.codes) > meanEntropy(plain), `ICQ ${meanEntropy(r.codes)} bits vs NF4 ${meanEntropy(plain)}`);
});

test('τ on the dynamic map: nearest value, first index on ties, a zero group gives code 0', () => {
  const tau = Float32Array.from({ length: 300 }, (_, b) => (b < 256 ? f(Math.sin(b) * 0.01) : 0));
  const { q, absmax } = quantizeTau(tau);
  assert.equal(absmax.length, 2);
  assert.equal(absmax[1], 0);
  for (let b = 0; b < 256; b++) {
    const x = f(tau[b]! / absmax[0]!);
    for (let k = 0; k < 256; k++) assert.ok(Math.abs(f(x - DYNAMIC_MAP[q[b]!]!)) <= Math.abs(f(x - DYNAMIC_MAP[k]!)), `τ ${b}: code ${q[b]} vs ${k}`);
  }
  assert.ok(q.subarray(256).every((c) => c === 0));
});

test('the icq kinds decode to Q bit for bit and multiply as x·Qᵀ on the CPU backend; the bundled model reads back', async () => {
  const rng = new Rng(5), rows = 40, cols = 96;
  const w = rng.normals(rows * cols, 0.05);
  for (let i = 0; i < w.length; i += 3) w[i] = w[i]! + 0.02; // a shifted distribution: τ has work to do
  const { kernels, note } = selectKernels('auto', 1);
  const be = new CpuBackend(kernels, note);
  for (const [kind, doubleQuant] of [[ICQ_KIND, false], [ICQDQ_KIND, true]] as const) {
    const r = icq(w, { ...OPTS, doubleQuant });
    const parts = packNf4({ rows, cols, codes: r.codes, absmax: r.absmax, tau: r.tau });
    assert.deepEqual(Object.keys(parts).sort(), [...kind.parts].sort());
    assert.deepEqual(kind.shape(info(parts), 4), [rows, cols]);
    const layer = kind.open(parts, 4);
    sameBits(materializeKind(layer), r.Q, `${kind.name} decoded`);
    // Q = NF4 value + the quantized τ of its block
    const t0 = f(DYNAMIC_MAP[r.tau.q[0]!]! * r.tau.absmax[0]!);
    const am0 = doubleQuant ? layer.parameters[0]! : (r.absmax as Float32Array)[0]!;
    assert.equal(r.Q[5], f(f(NF4_LEVELS[r.codes[5]!]! * am0) + t0));
    const M = 3, x = rng.normals(M * cols);
    const y = await be.read(be.linear(be.upload(x, [M, cols]), be.uploadQuantized(layer)));
    for (let m = 0; m < M; m++) {
      for (let o = 0; o < rows; o++) {
        let acc = 0;
        for (let c = 0; c < cols; c++) acc += x[m * cols + c]! * r.Q[o * cols + c]!;
        assert.ok(Math.abs(y[m * rows + o]! - acc) <= 1e-5 * (1 + Math.abs(acc)), `${kind.name} y[${m}, ${o}]`);
      }
    }
    assert.throws(() => kind.shape(info({ ...parts, tau_quant: parts.codes! }), 4), /tau_quant is u8 \[40, 48\]; it must be u8 \[60\]/);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'lowbit-icq-'));
  const ck = openModel(TINY656K), be2 = new CpuBackend(selectKernels('auto', 2).kernels, note);
  const out = join(tmp, 'icq');
  const report = await quantizeModel(ck, be2, { method: 'icq', bits: 4, options: {}, calib: 'none', out });
  assert.deepEqual([report.settings.format, report.settings.nominalBits, (report.settings as Record<string, unknown>).tauN], ['icq', 4, 100]);
  const Qs = new Map<string, Float32Array>();
  await quantizeBlocks(ck, be2, {
    method: ICQ, spec: { bits: 4, groupSize: 64, sym: true, scaleDtype: 'f32' }, options: resolveOptions(ICQ, {}), seed: 0,
    calibration: undefined, reportErrors: false, onLayer: (l) => Qs.set(l.name, l.out.Q),
  });
  const back = openModel(out);
  assert.equal(back.format, 'lowbit-icq');
  let weights = 0, storedBits = 0;
  for (const [name, Q] of Qs) {
    sameBits(back.weights.read(`${name}.weight`).toF32(), Q, name);
    const blocks = Q.length / 64;
    weights += Q.length;
    storedBits += 4 * Q.length + 32 * blocks + 8 * blocks + 32 * Math.ceil(blocks / 256);
  }
  assert.ok(Math.abs(bitsPerWeight(back).storedLinear - storedBits / weights) < 1e-12);
});
