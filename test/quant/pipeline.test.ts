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
import { resolveOptions } from '../../src/quant/options.js';
import { evaluatePpl } from '../../src/eval/ppl.js';
import { calibrationSet } from '../../src/data/calibration.js';
import { UsageError } from '../../src/errors.js';
import { createHash } from 'node:crypto';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { exportGptqFp16Scales } from '../../src/io/quantized/export.js';
import { f16ToF32, f32ToF16 } from '../../src/tensor/codecs.js';
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
    assert.ok(g.totalError < r.totalError, `W${bits}: GPTQ ${g.totalError} vs RTN ${r.totalError}`);
    assert.equal(r.layers.length, 14);
  }
});

test('quantized checkpoint: reading it back reproduces the pipeline\'s fake-quantized weights bit for bit (act-order, groups, f32 and f16 scales)', async () => {
  const windows = calibrationSet('c4', ck.tokenizer, { nsamples: 8, seqlen: 512, seed: 0, dataDir: DATA }).windows;
  for (const scaleDtype of ['f32', 'f16'] as const) {
    const captured = new Map<string, Float32Array>();
    await quantizeBlocks(ck, be, {
      method: getMethod('gptq'), spec: { bits: 3, groupSize: 32, sym: false, scaleDtype }, options: resolveOptions(getMethod('gptq'), { actOrder: true }),
      calibration: windows, onLayer: (l) => captured.set(l.name, l.out.Q),
    });
    const out = join(tmp, `act-${scaleDtype}`);
    // f32 is the default (the paper's protocol)
    const report = await quantizeModel(ck, be, {
      method: 'gptq', bits: 3, group: 32, options: { actOrder: true }, calib: 'c4', nsamples: 8, seed: 0, dataDir: DATA, out, ...(scaleDtype === 'f16' ? { scaleDtype } : {}),
    });
    assert.equal(report.settings.scaleDtype, scaleDtype);
    const back = openModel(out);
    assert.equal(back.format, 'lowbit-gptq');
    for (const [name, Q] of captured) assert.deepEqual(back.weights.read(`${name}.weight`).toF32(), Q, name);
    const stored = SafetensorsFile.open(join(out, 'model.safetensors'));
    assert.equal(stored.list().find((t) => t.name.endsWith('.scales'))!.dtype, scaleDtype);
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
    assert.deepEqual([qc.bits, qc.group_size, qc.desc_act, qc.sym, qc.quant_method, qc.scale_dtype],
      [3, 32, true, false, 'gptq', scaleDtype === 'f32' ? 'float32' : 'float16']);
    const saved = JSON.parse(readFileSync(join(out, 'lowbit_quant.json'), 'utf8'));
    assert.equal(saved.calibration.source, 'c4');
    assert.equal(saved.layers.length, 14);
    assert.equal(saved.totalError, report.totalError);
  }
});

test('--scale-dtype f16 keeps the checkpoints of the code before float32 scales, byte for byte', async () => {
  // sha256 of model.safetensors written by lowbit 2b7584e (fp16 scales only): quantize --wbits 3 --group 32 --calib c4 --nsamples 8
  const golden: Record<string, string> = {
    rtn: 'ba07f6f3ce3a838da719f8980e7f181d9b900da9b84b0fcadb773ac264a6667c',
    gptq: 'd7dc659eb96963e7c0208e5edd5191f01d933449c5c306c8a5b340f63cd569aa',
  };
  for (const method of ['rtn', 'gptq']) {
    const out = join(tmp, `golden-${method}`);
    await quantizeModel(ck, be, { method, bits: 3, group: 32, calib: 'c4', nsamples: 8, seed: 0, dataDir: DATA, scaleDtype: 'f16', out });
    assert.equal(createHash('sha256').update(readFileSync(join(out, 'model.safetensors'))).digest('hex'), golden[method], method);
  }
});

test('f32 and f16 scales are different protocols: same codes almost everywhere, different perplexity', async () => {
  const ppl: Record<string, number> = {};
  for (const scaleDtype of ['f32', 'f16'] as const) {
    const out = join(tmp, `rtn4-${scaleDtype}`);
    await quantizeModel(ck, be, { method: 'rtn', bits: 4, group: 128, calib: 'none', scaleDtype, out });
    ppl[scaleDtype] = (await evaluatePpl(openModel(out), be, 'tinystories', PPL)).ppl;
  }
  assert.notEqual(ppl.f32, ppl.f16);
  assert.ok(Math.abs(ppl.f32! / ppl.f16! - 1) < 0.01, `${ppl.f32} vs ${ppl.f16}`);
});

test('export --format gptq: fp16 scales, and a record of what rounding changed', async () => {
  const src = join(tmp, 'rtn4-f32'), out = join(tmp, 'rtn4-exported');
  if (!existsSync(src)) await quantizeModel(ck, be, { method: 'rtn', bits: 4, group: 128, calib: 'none', out: src });
  const r = exportGptqFp16Scales(src, out, false);
  const s32 = SafetensorsFile.open(join(src, 'model.safetensors')), s16 = SafetensorsFile.open(join(out, 'model.safetensors'));
  let n = 0, changed = 0, maxRel = 0;
  for (const t of s32.list().filter((i) => i.name.endsWith('.scales'))) {
    const a = s32.read(t.name).data as Float32Array, b = s16.read(t.name);
    assert.equal(b.dtype, 'f16');
    const bf = b.toF32();
    for (let i = 0; i < a.length; i++) {
      n++;
      assert.equal(bf[i], f16ToF32(f32ToF16(a[i]!)));
      if (bf[i] !== a[i]) { changed++; maxRel = Math.max(maxRel, Math.abs(bf[i]! - a[i]!) / Math.abs(a[i]!)); }
    }
  }
  assert.deepEqual([r.scales, r.scalesChanged, r.maxRelativeScaleChange], [n, changed, maxRel]);
  assert.ok(changed > 0 && maxRel < 2 ** -11);
  // codes are untouched; the report says what changed
  for (const t of s32.list().filter((i) => !i.name.endsWith('.scales'))) assert.deepEqual(s16.read(t.name).data, s32.read(t.name).data, t.name);
  const saved = JSON.parse(readFileSync(join(out, 'lowbit_quant.json'), 'utf8'));
  assert.equal(saved.export.scalesChanged, changed);
  assert.equal(JSON.parse(readFileSync(join(out, 'quantize_config.json'), 'utf8')).scale_dtype, 'float16');
  assert.throws(() => exportGptqFp16Scales(src, out, false), /already holds a lowbit checkpoint: pass --force/);
  exportGptqFp16Scales(src, out, true);
});

test('bad settings fail clearly and write nothing', async () => {
  const out = join(tmp, 'bad');
  await assert.rejects(quantizeModel(ck, be, { method: 'awq2', bits: 4, group: 128, ...calib, out }), (e) => e instanceof UsageError && /unknown method 'awq2'/.test(e.message));
  await assert.rejects(quantizeModel(ck, be, { method: 'rtn', bits: 9, group: 128, out }), UsageError);
  await assert.rejects(quantizeModel(ck, be, { method: 'rtn', bits: 4, group: 100, out }), /group size 100 does not divide the 128 input columns of model\.layers\.0\.self_attn\.q_proj/);
  await assert.rejects(quantizeModel(ck, be, { method: 'gptq', bits: 4, group: 128, calib: 'none', out }), /needs calibration data/);
  await assert.rejects(quantizeModel(ck, be, { method: 'rtn', bits: 4, group: 128, calib: 'none', scaleDtype: 'bf16' as 'f16', out }), /--scale-dtype must be f32 or f16/);
  await assert.rejects(quantizeModel(ck, be, { method: 'gptq', bits: 4, group: 128, options: { staticGroups: true }, ...calib, out }), /--static-groups only applies with --act-order/);
  await assert.rejects(quantizeModel(ck, be, { method: 'rtn', bits: 4, group: 128, options: { actOrder: true }, calib: 'none', out }), /--act-order is not an option of rtn/);
  await assert.rejects(quantizeModel(ck, be, { method: 'gptq', bits: 4, group: 128, calib: 'wikitext2', dataDir: DATA, out }), /train split/);
  assert.equal(existsSync(out), false);
});
