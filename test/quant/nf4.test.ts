// NF4 (quant/methods/nf4.ts) against bitsandbytes: the tables; dQuantizeNF4's tree against the nearest
// level and at its thresholds; a block worked by hand; a deterministic matrix against the codes, absmax and
// double quantization that bitsandbytes' own torch kernels give (test/golden/nf4-bnb.json, written by
// scripts/nf4-golden.py); the double quantization's error bound; the stored kinds decode to Q bit for bit
// and multiply as x·Qᵀ on the CPU backend; the bundled model round-trips through a checkpoint.
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
import { NF4, NF4_THRESHOLDS, dQuantize, dQuantizeNF4, doubleQuantize, float32Mean, nf4, quantizeNf4 } from '../../src/quant/methods/nf4.js';
import { DYNAMIC_MAP, NF4_DQ_ERROR, NF4_KIND, NF4_LEVELS, NF4DQ_KIND, dequantNested, packNf4 } from '../../src/tensor/nf4Pack.js';
import { materializeKind } from '../../src/tensor/packed.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { TINY656K } from '../helpers/paths.js';
import { Rng } from './rand.js';

const f = Math.fround;
const bitsOf = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);
function sameBits(a: Float32Array, b: Float32Array, what: string) {
  assert.equal(a.length, b.length, `${what}: length`);
  const A = bitsOf(a), B = bitsOf(b);
  for (let i = 0; i < A.length; i++) if (A[i] !== B[i]) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}
const nextUp = (x: number) => { const b = new Float32Array([x]), u = new Int32Array(b.buffer); u[0]! += x >= 0 ? 1 : -1; return b[0]!; };
const info = (p: Record<string, Tensor>) => Object.fromEntries(Object.entries(p).map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]));

test('tables: bitsandbytes\' NF4 levels, the tree\'s thresholds are their float32 midpoints, the dynamic map is create_dynamic_map', () => {
  assert.deepEqual([...NF4_LEVELS].map((v) => v.toPrecision(8)), ['-1.0000000', '-0.69619280', '-0.52507305', '-0.39491749', '-0.28444138', '-0.18477343', '-0.091050036',
    '0.0000000', '0.079580300', '0.16093020', '0.24611230', '0.33791524', '0.44070983', '0.56261700', '0.72295684', '1.0000000']);
  for (let k = 0; k < 15; k++) assert.equal(NF4_THRESHOLDS[k], f(f(NF4_LEVELS[k]! + NF4_LEVELS[k + 1]!) / 2), `threshold ${k}`);
  // create_dynamic_map(signed=True): per exponent i = 0..6, 10^(i-6) · the midpoints of linspace(0.1, 1, 2^i + 1), both signs; 0 and 1
  const ref: number[] = [0, 1];
  for (let i = 0; i < 7; i++) {
    const n = 2 ** i + 1, b = Array.from({ length: n }, (_, k) => 0.1 + (0.9 * k) / (n - 1));
    for (let k = 0; k + 1 < n; k++) { const m = 10 ** (i - 6) * (b[k]! + b[k + 1]!) / 2; ref.push(m, -m); }
  }
  ref.sort((a, b) => a - b);
  assert.equal(DYNAMIC_MAP.length, 256);
  assert.deepEqual([DYNAMIC_MAP[127], DYNAMIC_MAP[255]], [0, 1]);
  for (let k = 0; k < 256; k++) {
    if (k > 0) assert.ok(DYNAMIC_MAP[k - 1]! < DYNAMIC_MAP[k]!, `ascending at ${k}`);
    const ulp = Math.abs(nextUp(Math.abs(ref[k]!)) - Math.abs(ref[k]!)) || 1e-45;
    assert.ok(Math.abs(DYNAMIC_MAP[k]! - ref[k]!) <= 2 * ulp, `map[${k}] ${DYNAMIC_MAP[k]} vs the formula ${ref[k]}`);
    if (k < 127) assert.equal(DYNAMIC_MAP[k], -DYNAMIC_MAP[254 - k]!, `symmetric at ${k}`);
  }
});

test('dQuantizeNF4: the nearest level; a value on a threshold takes the lower level; NaN (an all-zero block) gives code 0', () => {
  const rng = new Rng(1);
  for (let i = 0; i < 200_000; i++) {
    const x = f(rng.next() * 2 - 1);
    let best = 0;
    for (let k = 1; k < 16; k++) if (Math.abs(x - NF4_LEVELS[k]!) < Math.abs(x - NF4_LEVELS[best]!)) best = k;
    if (NF4_THRESHOLDS.includes(x)) continue;
    assert.equal(dQuantizeNF4(x), best, `x = ${x}`);
  }
  for (let k = 0; k < 15; k++) {
    const t = NF4_THRESHOLDS[k]!;
    assert.equal(dQuantizeNF4(t), k, `on threshold ${k}`);
    assert.equal(dQuantizeNF4(nextUp(t)), k + 1, `just above threshold ${k}`);
  }
  assert.deepEqual([dQuantizeNF4(-1), dQuantizeNF4(1), dQuantizeNF4(0), dQuantizeNF4(Number.NaN)], [0, 15, 7, 0]);
});

test('a block worked by hand: codes, absmax, packed nibbles and Q', () => {
  const T7 = NF4_THRESHOLDS[7]!; // 0.03979015
  const w = new Float32Array(192);
  // block 0, absmax 2 (1/absmax = 0.5 exactly): x = w / 2
  w.set([2, -2, 0, 0.08, 0.0795, 2 * T7, 2 * nextUp(T7), -0.5, 1.0, 1.1]);
  // x:    1, -1, 0, 0.04 > T7 → 8, 0.03975 ≤ T7 → 7, on T7 → 7, above → 8, -0.25 in (-0.3397, -0.2346] → 4, 0.5 in (0.3893, 0.5017] → 12, 0.55 → 13
  // block 1 stays zero; block 2: absmax 3 (1/3 in float32 = 0.33333334; 3 · that rounds to 1)
  w.set([3, -3, 0.9], 128);
  const { codes, absmax } = quantizeNf4(w);
  assert.deepEqual([...absmax], [2, 0, 3]);
  assert.deepEqual([...codes.subarray(0, 11)], [15, 0, 7, 8, 7, 7, 8, 4, 12, 13, 7]);
  assert.ok(codes.subarray(64, 128).every((c) => c === 0), 'all-zero block: 0 · (1/0) = NaN → code 0');
  // 0.9 · 0.33333334 = 0.3 → (0.2920, 0.3893] → 11
  assert.deepEqual([...codes.subarray(128, 131)], [15, 0, 11]);
  const parts = packNf4({ rows: 3, cols: 64, codes, absmax });
  assert.deepEqual([...(parts.codes!.data as Uint8Array).subarray(0, 6)], [0xf0, 0x78, 0x77, 0x84, 0xcd, 0x77]);
  const { Q } = nf4(w, false);
  assert.deepEqual([...Q.subarray(0, 10)], [2, -2, 0, f(0.07958029955625534 * 2), 0, 0, f(0.07958029955625534 * 2), f(-0.28444138169288635 * 2), f(0.44070982933044434 * 2), f(0.5626170039176941 * 2)]);
  assert.ok(Object.is(Q[64], -0), 'the zero block decodes to −1 · 0 = −0, as bitsandbytes');
  assert.equal(Q[130], f(0.33791524171829224 * 3));
});

interface Golden { rows: number; cols: number; codes: string; absmax: string; Q256: string; offset: string; absmaxCodes: string; absmax2: string; absmaxDq: string; torch: string }
const golden = readGolden<Golden>('nf4-bnb.json');

test(`a deterministic matrix: codes, absmax and double quantization equal bitsandbytes' torch kernels (torch ${golden.torch})`, () => {
  const w = goldenInput(golden.rows, golden.cols);
  const { codes, absmax } = quantizeNf4(w);
  const packed = packNf4({ rows: golden.rows, cols: golden.cols, codes, absmax }).codes!.data as Uint8Array;
  const bnbCodes = bytes(golden.codes), bnbAbsmax = floats(golden.absmax);
  // the one difference: bitsandbytes' torch fallback clamps an all-zero block's absmax to 1e-38 (codes 7 = 0.0),
  // where its CUDA kernel (whose dQuantizeNF4 lowbit follows) gets NaN and code 0; both decode to zero
  assert.equal(bnbAbsmax[11], 0);
  for (let i = 0; i < packed.length; i++) {
    if (i >= 32 * 11 && i < 32 * 12) { assert.equal(packed[i], 0x00); assert.equal(bnbCodes[i], 0x77); continue; }
    assert.equal(packed[i], bnbCodes[i], `byte ${i} (weights ${2 * i}, ${2 * i + 1})`);
  }
  sameBits(absmax, bnbAbsmax, 'absmax');
  const { Q } = nf4(w, false);
  sameBits(Q.subarray(0, 256), floats(golden.Q256), 'Q, rows 0-1');
  // the mean: lowbit's float32 rounding of the exact sum is within an ulp of torch's float32 cascade
  const bnbOffset = floats(golden.offset)[0]!, ours = float32Mean(absmax);
  assert.ok(Math.abs(ours - bnbOffset) <= nextUp(bnbOffset) - bnbOffset, `offset ${ours} vs torch's ${bnbOffset}`);
  const dq = doubleQuantize(absmax, bnbOffset);
  assert.deepEqual([...dq.absmax2], [...floats(golden.absmax2)], 'absmax2 per 256 absmax values');
  assert.deepEqual([...dq.q], [...bytes(golden.absmaxCodes)], 'absmax codes on the dynamic map');
  sameBits(dequantNested(dq.q, dq.absmax2, dq.offset), floats(golden.absmaxDq), 'dequantized absmax');
});

test('double quantization: the exact dequantization formula and its error bound', () => {
  const rng = new Rng(7);
  // 600 blocks: two full groups of 256 and one of 88; absmax values of very different sizes
  const w = new Float32Array(600 * 64);
  for (let b = 0; b < 600; b++) { const s = 0.01 + 0.2 * rng.next() ** 3; for (let i = 0; i < 64; i++) w[b * 64 + i] = f(rng.normal() * s); }
  const plain = nf4(w, false), r = nf4(w, true);
  assert.deepEqual(r.codes, plain.codes, 'the codes come from the float32 absmax either way');
  const dq = r.absmax as { q: Uint8Array; absmax2: Float32Array; offset: number };
  assert.equal(dq.absmax2.length, 3);
  for (let b = 0; b < 600; b++) {
    const a2 = dq.absmax2[Math.floor(b / 256)]!;
    const want = f(f(DYNAMIC_MAP[dq.q[b]!]! * a2) + dq.offset);
    assert.equal(r.absmaxUsed[b], want, `absmax ${b}`);
    // the map's largest half-gap (NF4_DQ_ERROR) times the group's absmax2, plus the two float32 roundings
    const err = Math.abs(r.absmaxUsed[b]! - plain.absmaxUsed[b]!);
    assert.ok(err <= NF4_DQ_ERROR * a2 * (1 + 1e-6) + 2 ** -23 * Math.abs(plain.absmaxUsed[b]!), `absmax ${b}: error ${err} > ${NF4_DQ_ERROR} · ${a2}`);
    for (let i = b * 64; i < b * 64 + 64; i++) assert.equal(r.Q[i], f(NF4_LEVELS[r.codes[i]!]! * want));
  }
  assert.ok(Math.abs(NF4_DQ_ERROR - 0.9 / 64 / 2) < 1e-7, `stated bound ${NF4_DQ_ERROR} vs the last decade's half-gap 0.9/128`);
  // dQuantize: the binary search picks the nearest map value (ties by its midpoint rule) for values in [-1, 1]
  for (let i = 0; i < 20_000; i++) {
    const x = f(rng.next() * 2 - 1), q = dQuantize(DYNAMIC_MAP, x);
    for (const k of [q - 1, q + 1]) if (k >= 0 && k < 256) assert.ok(Math.abs(x - DYNAMIC_MAP[q]!) <= Math.abs(x - DYNAMIC_MAP[k]!), `x ${x}: code ${q} not nearest`);
  }
});

test('the stored kinds decode to Q bit for bit, check their parts, and multiply as x·Qᵀ on the CPU backend', async () => {
  const rng = new Rng(3), rows = 48, cols = 96; // 72 blocks; blocks straddle rows (96 is not a multiple of 64)
  const w = rng.normals(rows * cols, 0.05);
  const { kernels, note } = selectKernels('auto', 1);
  const be = new CpuBackend(kernels, note);
  for (const [kind, dq] of [[NF4_KIND, false], [NF4DQ_KIND, true]] as const) {
    const r = nf4(w, dq);
    const parts = packNf4({ rows, cols, codes: r.codes, absmax: r.absmax });
    assert.deepEqual(Object.keys(parts).sort(), [...kind.parts].sort());
    assert.deepEqual(kind.shape(info(parts), 4), [rows, cols]);
    const layer = kind.open(parts, 4);
    sameBits(materializeKind(layer), r.Q, `${kind.name} decoded`);
    const panel = new Float32Array(5 * cols);
    layer.decodeRows(11, 5, panel);
    sameBits(panel, r.Q.subarray(11 * cols, 16 * cols), `${kind.name} rows 11..15`);
    const M = 6, x = rng.normals(M * cols);
    const y = await be.read(be.linear(be.upload(x, [M, cols]), be.uploadQuantized(layer)));
    for (let m = 0; m < M; m++) {
      for (let o = 0; o < rows; o++) {
        let acc = 0;
        for (let c = 0; c < cols; c++) acc += x[m * cols + c]! * r.Q[o * cols + c]!;
        assert.ok(Math.abs(y[m * rows + o]! - acc) <= 1e-5 * (1 + Math.abs(acc)), `${kind.name} y[${m}, ${o}] ${y[m * rows + o]} vs ${acc}`);
      }
    }
    assert.throws(() => kind.shape(info(parts), 3), /4-bit codes, but the checkpoint says 3 bits/);
  }
  const r = nf4(w, true), good = packNf4({ rows, cols, codes: r.codes, absmax: r.absmax });
  assert.throws(() => NF4DQ_KIND.shape(info({ ...good, absmax: good.absmax2! }), 4), /absmax is f32 \[1\]; it must be u8 \[72\]/);
  assert.throws(() => NF4_KIND.shape(info({ ...good }), 4), /absmax is u8 \[72\]; it must be f32 \[72\]/);
  const bad = { ...good, offset: new Tensor('f32', [1], Float32Array.of(Number.NaN)) };
  assert.throws(() => NF4DQ_KIND.open(bad, 4), /offset\[0\] is NaN/);
});

test('bundled model: nf4 and nf4 --double-quant checkpoints read back as Q, stored bits 4.5 and ≈4.13', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'lowbit-nf4-'));
  const ck = openModel(TINY656K);
  const { kernels, note } = selectKernels('auto', 2);
  const be = new CpuBackend(kernels, note);
  for (const doubleQuant of [false, true]) {
    const out = join(tmp, doubleQuant ? 'dq' : 'plain');
    const report = await quantizeModel(ck, be, { method: 'nf4', bits: 4, options: { doubleQuant }, calib: 'none', out });
    assert.deepEqual([report.settings.format, report.settings.nominalBits, report.settings.groupSize, report.calibration], [doubleQuant ? 'nf4dq' : 'nf4', 4, 64, null]);
    const Qs = new Map<string, Float32Array>();
    await quantizeBlocks(ck, be, {
      method: NF4, spec: { bits: 4, groupSize: 64, sym: true, scaleDtype: 'f32' }, options: resolveOptions(NF4, { doubleQuant }), seed: 0,
      calibration: undefined, reportErrors: false, onLayer: (l) => Qs.set(l.name, l.out.Q),
    });
    const back = openModel(out);
    assert.equal(back.format, doubleQuant ? 'lowbit-nf4dq' : 'lowbit-nf4');
    assert.equal(Qs.size, 14);
    let weights = 0, storedBits = 0;
    for (const [name, Q] of Qs) {
      sameBits(back.weights.read(`${name}.weight`).toF32(), Q, name);
      const n = Q.length, blocks = n / 64;
      weights += n;
      storedBits += 4 * n + (doubleQuant ? 8 * blocks + 32 * Math.ceil(blocks / 256) + 32 : 32 * blocks);
    }
    const bits = bitsPerWeight(back);
    assert.equal(bits.nominal, 4);
    assert.ok(Math.abs(bits.storedLinear - storedBits / weights) < 1e-12, `stored ${bits.storedLinear} vs ${storedBits / weights}`);
    if (!doubleQuant) assert.equal(bits.storedLinear, 4.5);
    else assert.ok(bits.storedLinear > 4.125 && bits.storedLinear < 4.13, `${bits.storedLinear}`);
  }
});
