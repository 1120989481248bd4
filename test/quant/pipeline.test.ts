import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../../src/io/open.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { quantizeBlocks } from '../../src/quant/pipeline.js';
import { getMethod } from '../../src/quant/registry.js';
import { evaluatePpl } from '../../src/eval/ppl.js';
import { calibrationSet } from '../../src/data/calibration.js';
import { UsageError } from '../../src/errors.js';
import { TINY656K, DATA } from '../helpers/paths.js';

const { kernels, note } = selectKernels('auto', 2);
const be = new CpuBackend(kernels, note);
const ck = openModel(TINY656K);
const tmp = mkdtempSync(join(tmpdir(), 'lowbit-quant-'));
const calib = { calib: 'c4', nsamples: 16, seed: 0, dataDir: DATA };
const PPL = { seqlen: 512, limit: 24, dataDir: DATA };

test('bundled model: W8 RTN and W8 GPTQ perplexity within 1% of FP (tinystories, 24 windows)', async () => {
  const fp = (await evaluatePpl(ck, be, 'tinystories', PPL)).ppl;
  for (const method of ['rtn', 'gptq']) {
    const out = join(tmp, `${method}-w8`);
    await quantizeModel(ck, be, { method, bits: 8, group: 128, ...calib, out });
    const q = (await evaluatePpl(openModel(out), be, 'tinystories', PPL)).ppl;
    assert.ok(Math.abs(q / fp - 1) < 0.01, `${method} W8: ppl ${q} vs FP ${fp}`);
  }
});

test('bundled model: summed GPTQ reconstruction error is below RTN at W4 g32 and W3 g32', async () => {
  for (const bits of [4, 3]) {
    const r = await quantizeModel(ck, be, { method: 'rtn', bits, group: 32, ...calib, out: join(tmp, `rtn${bits}`) });
    const g = await quantizeModel(ck, be, { method: 'gptq', bits, group: 32, ...calib, out: join(tmp, `gptq${bits}`) });
    assert.ok(r.totalError !== null && g.totalError !== null);
    assert.ok(g.totalError! < r.totalError!, `W${bits}: GPTQ ${g.totalError} vs RTN ${r.totalError}`);
    assert.equal(r.layers.length, 14);
  }
});

test('quantized checkpoint: reading it back reproduces the pipeline\'s fake-quantized weights bit for bit (act-order, groups)', async () => {
  const captured = new Map<string, Float32Array>();
  const windows = calibrationSet('c4', ck.tokenizer, { nsamples: 8, seqlen: 512, seed: 0, dataDir: DATA }).windows;
  await quantizeBlocks(ck, be, {
    method: getMethod('gptq'), spec: { bits: 3, groupSize: 32, sym: false, scaleDtype: 'f16' }, actOrder: true, staticGroups: false,
    percdamp: 0.01, blocksize: 128, trueSequential: true, calibration: windows, onLayer: (l) => captured.set(l.name, l.out.Q),
  });
  const out = join(tmp, 'act');
  const report = await quantizeModel(ck, be, { method: 'gptq', bits: 3, group: 32, actOrder: true, calib: 'c4', nsamples: 8, seed: 0, dataDir: DATA, out });
  const back = openModel(out);
  assert.equal(back.format, 'lowbit-gptq');
  for (const [name, Q] of captured) assert.deepEqual(back.weights.read(`${name}.weight`).toF32(), Q, name);
  // partial reads (chunked embedding and LM head) pass through to the float tensors, and work on packed ones
  for (const name of ['model.embed_tokens.weight', 'lm_head.weight', 'model.layers.0.mlp.up_proj.weight']) {
    if (!back.weights.has(name)) continue;
    const whole = back.weights.read(name), row = whole.shape[1]!;
    const part = back.weights.readRows!(name, 3, 5);
    assert.deepEqual(part.shape, [5, row], name);
    assert.deepEqual(part.toF32(), whole.toF32().slice(3 * row, 8 * row), name);
  }
  assert.throws(() => back.weights.readRows!('model.embed_tokens.weight', 0, 1e9), /rows/);
  const qc = JSON.parse(readFileSync(join(out, 'quantize_config.json'), 'utf8'));
  assert.deepEqual([qc.bits, qc.group_size, qc.desc_act, qc.sym, qc.quant_method], [3, 32, true, false, 'gptq']);
  const saved = JSON.parse(readFileSync(join(out, 'lowbit_quant.json'), 'utf8'));
  assert.equal(saved.calibration.source, 'c4');
  assert.equal(saved.layers.length, 14);
  assert.equal(saved.totalError, report.totalError);
});

test('bad settings fail clearly and write nothing', async () => {
  const out = join(tmp, 'bad');
  await assert.rejects(quantizeModel(ck, be, { method: 'awq2', bits: 4, group: 128, ...calib, out }), (e) => e instanceof UsageError && /unknown method 'awq2'/.test(e.message));
  await assert.rejects(quantizeModel(ck, be, { method: 'rtn', bits: 9, group: 128, out }), UsageError);
  await assert.rejects(quantizeModel(ck, be, { method: 'rtn', bits: 4, group: 100, out }), /group size 100 does not divide the 128 input columns of model\.layers\.0\.self_attn\.q_proj/);
  await assert.rejects(quantizeModel(ck, be, { method: 'gptq', bits: 4, group: 128, out }), /needs calibration data/);
  await assert.rejects(quantizeModel(ck, be, { method: 'gptq', bits: 4, group: 128, calib: 'wikitext2', dataDir: DATA, out }), /train split/);
  assert.equal(existsSync(out), false);
});
