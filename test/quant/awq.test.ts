// AWQ and SmoothQuant: scale folding preserves the float model, AWQ degenerates to llm-awq's round-to-nearest
// with the ratio pinned to 0 and no clipping, its search never does worse than ratio 0, AutoAWQ's GEMM packing
// (worked example, round trip, reading an AutoAWQ folder), SmoothQuant's weight and activation quantizers
// against naive references, and activation quantization applied at evaluation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../../src/io/open.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend, quantizeRowsAbsmax } from '../../src/backend/cpu/cpuBackend.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { readHostBlock, uploadHostBlock } from '../../src/quant/blockJob.js';
import { foldScale } from '../../src/quant/core/fold.js';
import { awqQuantize, clampQuantizeGroup, quantizeScaledInto } from '../../src/quant/methods/awqQuantizer.js';
import { absmaxPerChannel } from '../../src/quant/methods/smoothquant.js';
import { SCALE_FOLDS } from '../../src/model/layout.js';
import { blockForward, LINEARS } from '../../src/model/block.js';
import { ropeFor, streamedNll } from '../../src/model/stream.js';
import { LINEAR_PART } from '../../src/model/layout.js';
import { NAMES } from '../../src/io/source.js';
import { AWQ_ORDER, awqToGptq, dequantizeAwq, packAwq, unpackAwq } from '../../src/tensor/awqPack.js';
import { dequantizeGptq } from '../../src/tensor/gptqPack.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { AwqPacked } from '../../src/tensor/packed.js';
import { f32ToF16, f16ToF32 } from '../../src/tensor/codecs.js';
import { FormatError } from '../../src/errors.js';
import { randomCheckpoint, SMALL_GQA_LLAMA3 } from '../helpers/randomModel.js';
import { DATA, TINY656K } from '../helpers/paths.js';
import { Rng } from './rand.js';

const { kernels, note } = selectKernels('auto', 2);
const be = new CpuBackend(kernels, note);
const ck = openModel(TINY656K);
const tmp = mkdtempSync(join(tmpdir(), 'lowbit-awq-'));
const calib = { calib: 'c4', nsamples: 8, seed: 0, dataDir: DATA } as const;

test('folding a scale into a norm (or v\'s rows) and its inverse into the consumers leaves the block\'s output unchanged', async () => {
  const mha = randomCheckpoint({ ...SMALL_GQA_LLAMA3, numKvHeads: 4 }, 5); // v and o of equal shape: the v → o fold applies
  const rng = new Rng(11);
  const host = readHostBlock(mha, 0);
  const T = 7, D = mha.config.hiddenSize;
  const x = be.upload(Float32Array.from({ length: T * D }, () => rng.normal()), [T, D]);
  const rope = ropeFor(mha, be, 0, T);
  const before = await be.read(blockForward(be, mha.config, uploadHostBlock(be, host), x, rope).out);
  for (const fold of SCALE_FOLDS) foldScale(host, fold, Float32Array.from({ length: host[fold.consumers[0]!].cols }, () => Math.exp(rng.normal())));
  const after = await be.read(blockForward(be, mha.config, uploadHostBlock(be, host), x, rope).out);
  let worst = 0;
  for (let i = 0; i < before.length; i++) worst = Math.max(worst, Math.abs(after[i]! - before[i]!) / (1e-3 + Math.abs(before[i]!)));
  assert.ok(worst < 1e-4, `largest relative change ${worst}`);
  // and shapes are checked: a scale of the wrong length is an error, not a silent misfold
  assert.throws(() => foldScale(host, SCALE_FOLDS[0]!, new Float32Array(3)), /foldScale: inputNorm has 32 channels, the scale 3/);
});

test('AWQ with the ratio pinned to 0 and no clipping is llm-awq\'s round-to-nearest, exactly', async () => {
  const out = join(tmp, 'awq-rtn');
  await quantizeModel(ck, be, { method: 'awq', bits: 3, group: 32, options: { awqGrid: 1, awqClip: false }, ...calib, out });
  const back = openModel(out);
  assert.equal(back.format, 'lowbit-gptq', '3-bit AWQ is stored in the GPTQ layout (AutoAWQ\'s GEMM holds 4 bits only)');
  for (let i = 0; i < ck.config.numLayers; i++) {
    for (const l of LINEARS) {
      const name = NAMES.layer(i, LINEAR_PART[l]);
      const w = ck.weights.read(name);
      const [rows, cols] = w.shape as [number, number];
      assert.deepEqual(back.weights.read(name).toF32(), awqQuantize(w.toF32(), rows, cols, 32, 3).Q, name);
    }
    // nothing was folded: the norms are the model's own
    assert.deepEqual(back.weights.read(NAMES.layer(i, 'input_layernorm')).toF32(), ck.weights.read(NAMES.layer(i, 'input_layernorm')).toF32());
  }
});

test('llm-awq\'s quantizer: min-max range without 0, scale ≥ 1e-5 / maxq, zero clamped, half-to-even', () => {
  // a group [0.5, 0.75, 1.0, 2.0] at 2 bits: scale = 1.5/3 = 0.5, zero = clamp(-round(1), 0, 3) = 0 (GPTQ's range would include 0 too)
  const r = awqQuantize(Float32Array.of(0.5, 0.75, 1, 2), 1, 4, 4, 2);
  assert.equal(r.scales[0], 0.5);
  assert.equal(r.zeros[0], 0);
  assert.deepEqual([...r.codes], [1, 2, 2, 3]); // 0.75/0.5 = 1.5 → 2 (even), 1/0.5 = 2
  assert.deepEqual([...r.Q], [0.5, 1, 1, 1.5]);
  // a constant group: range clamped to 1e-5, every weight on the grid
  const c = awqQuantize(new Float32Array(8).fill(-3), 1, 8, -1, 4);
  assert.equal(c.scales[0], Math.fround(Math.fround(1e-5) / 15));
  assert.equal(c.zeros[0], 15);
  fc.assert(fc.property(fc.array(fc.float({ min: -4, max: 4, noNaN: true }), { minLength: 2, maxLength: 40 }), fc.integer({ min: 2, max: 8 }), (w, bits) => {
    const W = Float32Array.from(w), q = awqQuantize(W, 1, W.length, -1, bits);
    const s = q.scales[0]!;
    for (let i = 0; i < W.length; i++) assert.ok(Math.abs(q.Q[i]! - W[i]!) <= s / 2 + 1e-6 * (1 + Math.abs(W[i]!)), `${W[i]} → ${q.Q[i]} (scale ${s})`);
  }), { seed: 11, numRuns: 200 });
});

test('AWQ: every scale search ends no worse than ratio 0 on the calibration data, and the report says what it chose', async () => {
  const out = join(tmp, 'awq4');
  const r = await quantizeModel(ck, be, { method: 'awq', bits: 4, group: 32, ...calib, out });
  assert.equal(r.blocks?.length, ck.config.numLayers);
  for (const b of r.blocks) {
    const awq = b.awq as { scaleRatios: Record<string, { index: number; loss: number; lossRatio0: number } | string>; clipSteps: Record<string, number[]> };
    assert.match(String(awq.scaleRatios.attnOut), /skipped: v has 64 outputs, o 128 inputs/); // GQA: v → o is not searched
    for (const k of ['attnIn', 'mlpIn', 'mlpAct']) {
      const g = awq.scaleRatios[k] as { index: number; loss: number; lossRatio0: number };
      assert.ok(g.loss <= g.lossRatio0, `${k}: ${g.loss} > ratio 0's ${g.lossRatio0}`);
      assert.ok(Number.isInteger(g.index) && g.index >= 0 && g.index < 20);
    }
    assert.deepEqual(Object.keys(awq.clipSteps), ['v', 'o', 'gate', 'up', 'down'], 'q and k are not clipped');
    // one choice per output row and group of 32 columns
    const rows: Record<string, [number, number]> = { v: [64, 128], o: [128, 128], gate: [384, 128], up: [384, 128], down: [128, 384] };
    for (const [l, [R, C]] of Object.entries(rows)) assert.equal(awq.clipSteps[l]!.reduce((a, b) => a + b, 0), R * (C / 32), l);
  }
  // 4 bits with groups: AutoAWQ's GEMM layout, read back and evaluated through the packed kernel
  const back = openModel(out);
  assert.equal(back.format, 'lowbit-awq');
  const qc = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config;
  assert.deepEqual([qc.quant_method, qc.version, qc.bits, qc.group_size, qc.zero_point], ['awq', 'gemm', 4, 32, true]);
  const q = back.weights.readQuantized!(NAMES.layer(0, 'mlp.up_proj'));
  assert.equal(q?.kind, 'awq');
  const [nll] = await streamedNll(back, be, [Int32Array.from({ length: 16 }, (_, i) => (i * 37) % 2048)]);
  assert.ok(nll!.every(Number.isFinite));
});

test('AutoAWQ GEMM packing: the worked example, round trips, and the GPTQ repacking the kernels use', () => {
  // one int32 word holds outputs 0..7 as nibbles v0 v2 v4 v6 v1 v3 v5 v7: [1,2,3,4,5,6,7,15] → 0xF6427531
  const codes = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 15); // 8 rows (outputs), 1 column
  const m = { codes, scales: new Float32Array(8).fill(0.5), zeros: new Uint8Array(8).fill(8), gIdx: Int32Array.of(0) };
  const t = packAwq(m, 8, 1, 1);
  assert.deepEqual(AWQ_ORDER, [0, 2, 4, 6, 1, 3, 5, 7]);
  assert.equal(t.qweight[0]! >>> 0, 0xF6427531);
  assert.equal(t.qzeros[0]! >>> 0, 0x88888888);
  fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.constantFrom(1, 2, 4, 8), fc.integer({ min: 0, max: 2 ** 31 }), (rm, cm, gs, seed) => {
    const rng = new Rng(seed), rows = 8 * rm, cols = 8 * cm, groups = cols / gs;
    const mm = {
      codes: Uint8Array.from({ length: rows * cols }, () => Math.floor(rng.next() * 16)),
      scales: Float32Array.from({ length: rows * groups }, () => f16ToF32(f32ToF16(0.01 + rng.next()))),
      zeros: Uint8Array.from({ length: rows * groups }, () => Math.floor(rng.next() * 16)),
      gIdx: Int32Array.from({ length: cols }, (_, c) => Math.floor(c / gs)),
    };
    const p = packAwq(mm, rows, cols, gs);
    assert.deepEqual(unpackAwq(p), mm);
    assert.deepEqual(dequantizeAwq(p), dequantizeGptq(awqToGptq(p)));
  }), { seed: 3, numRuns: 100 });
});

test('an AutoAWQ folder (quantization_config in config.json, fp16 scales, no g_idx) is read and evaluated', async () => {
  const src = join(tmp, 'awq4');
  const dir = join(tmp, 'autoawq');
  mkdirSync(dir, { recursive: true });
  const st = openModel(src).weights;
  const tensors: { name: string; tensor: Tensor }[] = [];
  const inner = (await import('../../src/io/safetensors.js')).openSafetensorsDir(src);
  for (const { name } of inner.list()) {
    let t = inner.read(name);
    if (name.endsWith('.scales')) t = new Tensor('f16', t.shape, Uint16Array.from(t.data as Float32Array, (v) => f32ToF16(v)));
    tensors.push({ name, tensor: t });
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  cfg.quantization_config = { quant_method: 'awq', zero_point: true, group_size: 32, bits: 4, version: 'gemm', modules_to_not_convert: null };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) writeFileSync(join(dir, f), readFileSync(join(src, f)));
  const m = openModel(dir);
  assert.equal(m.format, 'lowbit-awq');
  const name = NAMES.layer(1, 'self_attn.o_proj');
  const a = st.read(name).toF32(), b = m.weights.read(name).toF32();
  // the same codes and zeros; scales through fp16
  const qa = st.readQuantized!(name)! as AwqPacked, qb = m.weights.readQuantized!(name)! as AwqPacked;
  assert.deepEqual(qb.qweight, qa.qweight);
  assert.ok(b.every((v, i) => Math.abs(v - a[i]!) <= 1e-3 * (1 + Math.abs(a[i]!))));
  // tensors that disagree in shape: one error naming the file
  const bad = join(tmp, 'autoawq-bad');
  mkdirSync(bad, { recursive: true });
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) writeFileSync(join(bad, f), readFileSync(join(dir, f)));
  writeSafetensors(join(bad, 'model.safetensors'), tensors.map((t) => (t.name === `${name.slice(0, -'.weight'.length)}.scales` ? { name: t.name, tensor: new Tensor('f16', [2, 128], new Uint16Array(256)) } : t)));
  assert.throws(() => openModel(bad), (e) => e instanceof FormatError && e.message.includes(join(bad, 'model.safetensors')) && /o_proj\.scales" has shape \[2, 128\]/.test(e.message));
});

test('SmoothQuant\'s weight quantizer is symmetric per-channel absmax round-to-nearest (naive reference)', () => {
  const rng = new Rng(5), rows = 6, cols = 40;
  const W = Float32Array.from({ length: rows * cols }, () => rng.normal());
  for (const bits of [8, 6, 4]) {
    const q = absmaxPerChannel(W, rows, cols, bits), qmax = 2 ** (bits - 1) - 1;
    for (let r = 0; r < rows; r++) {
      let mx = 0;
      for (let c = 0; c < cols; c++) mx = Math.max(mx, Math.abs(W[r * cols + c]!));
      const s = Math.fround(mx / qmax);
      for (let c = 0; c < cols; c++) {
        const x = Math.fround(W[r * cols + c]! / s), k = Math.round(x) - (Math.abs(x % 1) === 0.5 && Math.round(x) % 2 !== 0 ? 1 : 0);
        assert.equal(q.Q[r * cols + c], Math.fround(k * s) + 0); // +0: a stored code cannot hold the reference's -0
        assert.ok(Math.abs(k) <= qmax);
      }
    }
  }
});

test('SmoothQuant with smoothing off and 16-bit activations equals per-channel absmax RTN of the weights; with A8 the model records it', async () => {
  const plain = join(tmp, 'sq-w6a16');
  await quantizeModel(ck, be, { method: 'smoothquant', bits: 6, options: { smooth: false, abits: 16 }, ...calib, out: plain });
  const back = openModel(plain);
  assert.equal(back.activation, undefined);
  for (const l of LINEARS) {
    const name = NAMES.layer(1, LINEAR_PART[l]);
    const w = ck.weights.read(name);
    const [rows, cols] = w.shape as [number, number];
    assert.deepEqual(back.weights.read(name).toF32(), absmaxPerChannel(w.toF32(), rows, cols, 6).Q, name);
  }
  const a8 = join(tmp, 'sq-w8a8');
  const r = await quantizeModel(ck, be, { method: 'smoothquant', bits: 8, options: { abits: 8 }, ...calib, out: a8 });
  assert.deepEqual(r.settings.activation, { bits: 8, granularity: 'per-token', quantBmm: false });
  const m = openModel(a8);
  assert.deepEqual(m.activation, { bits: 8, granularity: 'per-token', quantBmm: false });
  // the smoothed norms are stored (float32), not re-read from the source
  assert.notDeepEqual(m.weights.read(NAMES.layer(0, 'input_layernorm')).toF32(), ck.weights.read(NAMES.layer(0, 'input_layernorm')).toF32());
  // evaluation applies the activation quantization: the same weights without it score differently
  const ids = [Int32Array.from({ length: 32 }, (_, i) => (i * 53) % 2048)];
  const withAct = (await streamedNll(m, be, ids))[0]!;
  const withoutAct = (await streamedNll({ ...m, activation: undefined }, be, ids))[0]!;
  assert.notDeepEqual(withAct, withoutAct);
});

test('activation fake-quantization keeps every value within half a step of its row\'s grid', () => {
  fc.assert(fc.property(fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 1, maxLength: 64 }), fc.integer({ min: 2, max: 16 }), (row, bits) => {
    const x = Float32Array.from(row), y = new Float32Array(x.length);
    quantizeRowsAbsmax(x, y, 1, x.length, bits);
    const s = Math.fround(Math.max(Math.max(...x.map(Math.abs)), Math.fround(1e-5)) / (2 ** (bits - 1) - 1));
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(y[i]! - x[i]!) <= s / 2 + 1e-6 * Math.abs(x[i]!), `${x[i]} → ${y[i]} (step ${s})`);
  }), { seed: 17, numRuns: 300 });
});

test('the clip search\'s one-pass clamp-and-quantize equals clamping, then llm-awq\'s quantizer', () => {
  fc.assert(fc.property(fc.array(fc.float({ min: -3, max: 3, noNaN: true }), { minLength: 1, maxLength: 48 }), fc.float({ min: Math.fround(0.01), max: 4, noNaN: true }), fc.integer({ min: 2, max: 8 }),
    (w, mv, bits) => {
      const W = Float32Array.from(w), n = W.length;
      const mn = Math.min(...W), mx = Math.max(...W);
      const got = new Float32Array(n);
      clampQuantizeGroup(W, 0, n, mv, mn, mx, bits, undefined, got);
      const clamped = W.map((v) => (v > mv ? mv : v < -mv ? -mv : v));
      assert.deepEqual(got, awqQuantize(clamped, 1, n, -1, bits).Q);
    }), { seed: 23, numRuns: 300 });
});

test('the scale search\'s fused candidate equals Q(W·s)/s step by step', () => {
  const rng = new Rng(31), rows = 5, cols = 64;
  const W = Float32Array.from({ length: rows * cols }, () => rng.normal());
  const s = Float32Array.from({ length: cols }, () => Math.fround(Math.exp(rng.normal())));
  for (const [gs, bits] of [[16, 4], [-1, 3], [64, 8]] as const) {
    const got = new Float32Array(rows * cols);
    quantizeScaledInto(W, rows, cols, s, gs, bits, undefined, got);
    const ws = W.map((w, i) => Math.fround(w * s[i % cols]!));
    const want = awqQuantize(ws, rows, cols, gs, bits).Q.map((q, i) => Math.fround(q / s[i % cols]!));
    assert.deepEqual(got, want);
  }
});
