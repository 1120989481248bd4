// The method framework (method.ts, pipeline.ts, formats.ts): RTN and GPTQ write the same checkpoints as
// before it existed, statistics are accumulated once per shared input, the block function's parts compose
// to the block, and method options are checked against each method's schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../../src/io/open.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { quantizeBlocks } from '../../src/quant/pipeline.js';
import { getMethod, METHODS } from '../../src/quant/registry.js';
import { allOptions, optionKeyParts, resolveOptions } from '../../src/quant/options.js';
import { InputStatsAccumulator } from '../../src/quant/stats.js';
import { calibrationSet } from '../../src/data/calibration.js';
import { attentionPart, blockForward, mlpPart } from '../../src/model/block.js';
import { ropeFor } from '../../src/model/stream.js';
import { loadBlock } from '../../src/model/weights.js';
import { UsageError } from '../../src/errors.js';
import type { QuantMethod } from '../../src/quant/method.js';
import { DATA, TINY656K } from '../helpers/paths.js';
import { Rng } from './rand.js';

const { kernels, note } = selectKernels('auto', 2);
const be = new CpuBackend(kernels, note);
const ck = openModel(TINY656K);
const tmp = mkdtempSync(join(tmpdir(), 'lowbit-framework-'));

test('RTN and GPTQ checkpoints are byte-identical to those written before the method framework', async () => {
  // sha256 of model.safetensors written by lowbit at c04ea00 (before the framework): `quantize --method ... --nsamples 8`
  // on the bundled TinyStories-656K, calibration c4 (the default), float32 scales (the default)
  const cases: [string, Parameters<typeof quantizeModel>[2] extends infer O ? Partial<O> : never, string][] = [
    ['rtn w4 g32', { method: 'rtn', bits: 4, group: 32 }, '79855503fad51f9ba53bbec32e66316dcf5b3330dab93d276d7d32551d678633'],
    ['gptq w3 g32 act-order', { method: 'gptq', bits: 3, group: 32, options: { actOrder: true } }, '7134d9a4513586577b798a603fef3d4a6b0b60c5599b25e3780d27026918fa42'],
    ['gptq w4 per-channel', { method: 'gptq', bits: 4, group: -1 }, '1f0529f3dab7e00275b985c5004a51db8a674d672f8dd0a8b2a9e7e9a7b82754'],
    ['gptq w2 g64 sym act-order static', { method: 'gptq', bits: 2, group: 64, sym: true, options: { actOrder: true, staticGroups: true } },
      '7322e3b5af1c82023f2497731a9c728c86d9e6058a30efac4f5f155e770b664f'],
    ['rtn w8 per-channel, no calibration', { method: 'rtn', bits: 8, group: -1, calib: 'none' }, '9086c3312f84fc2dabfb18af90834864bea3263a41d9d96e7788f2be7f7c2f41'],
  ];
  for (const [name, o, sha] of cases) {
    const out = join(tmp, name.replace(/[^a-z0-9]+/g, '-'));
    await quantizeModel(ck, be, { method: 'rtn', bits: 4, group: 32, nsamples: 8, seed: 0, dataDir: DATA, ...o, out });
    assert.equal(createHash('sha256').update(readFileSync(join(out, 'model.safetensors'))).digest('hex'), sha, name);
  }
});

test('statistics are accumulated once per shared input: q/k/v one Hessian, gate/up one', async () => {
  const calls: string[] = [];
  const probe: QuantMethod = {
    ...getMethod('rtn'), name: 'probe', stats: ['hessian', 'meanAbs', 'maxAbs'],
    quantizeLayer(l, o) {
      calls.push(`${l.linear}:${l.stats?.tokens}`);
      assert.ok(l.stats?.H && l.stats.meanAbs && l.stats.maxAbs, 'every declared statistic arrives');
      assert.equal(l.stats.H.length, l.cols * l.cols);
      return getMethod('rtn').quantizeLayer(l, o);
    },
  };
  const windows = calibrationSet('c4', ck.tokenizer, { nsamples: 2, seqlen: 64, seed: 0, dataDir: DATA }).windows;
  const stats = new Map<string, unknown>();
  await quantizeBlocks(ck, be, {
    method: { ...probe, quantizeLayer(l, o) { stats.set(`${l.name}`, l.stats); return probe.quantizeLayer(l, o); } },
    spec: { bits: 4, groupSize: -1, sym: false }, options: {}, calibration: windows, onLayer: () => {},
  });
  // the same accumulated object for the layers that share an input
  assert.equal(stats.get('model.layers.0.self_attn.q_proj'), stats.get('model.layers.0.self_attn.k_proj'));
  assert.equal(stats.get('model.layers.0.self_attn.q_proj'), stats.get('model.layers.0.self_attn.v_proj'));
  assert.equal(stats.get('model.layers.0.mlp.gate_proj'), stats.get('model.layers.0.mlp.up_proj'));
  assert.notEqual(stats.get('model.layers.0.self_attn.q_proj'), stats.get('model.layers.0.self_attn.o_proj'));
  assert.equal(calls.length, 14);
  assert.ok(calls.every((c) => c.endsWith(':128')), calls.join(' '));
});

test('per-channel mean |x| and max |x| equal a naive float64 reference', async () => {
  const rng = new Rng(7), T = 37, C = 11;
  const x = Float32Array.from({ length: T * C }, () => rng.normal() * 3);
  const acc = new InputStatsAccumulator(C, new Set(['meanAbs', 'maxAbs']));
  acc.add(x.subarray(0, 20 * C), 20);
  acc.add(x.subarray(20 * C), T - 20);
  const s = await acc.finish();
  for (let c = 0; c < C; c++) {
    let sum = 0, max = 0;
    for (let t = 0; t < T; t++) { sum += Math.abs(x[t * C + c]!); max = Math.max(max, Math.abs(x[t * C + c]!)); }
    assert.equal(s.meanAbs![c], Math.fround(sum / T));
    assert.equal(s.maxAbs![c], max);
  }
  assert.equal(s.tokens, T);
  assert.equal(s.H, undefined);
});

test('the block is its parts: x + attention(rmsnorm x), then h + mlp(rmsnorm h), bit for bit', async () => {
  const w = loadBlock(ck, be, 0);
  const T = 9, D = ck.config.hiddenSize;
  const rng = new Rng(3);
  const x = be.upload(Float32Array.from({ length: T * D }, () => rng.normal()), [T, D]);
  const rope = ropeFor(ck, be, 0, T);
  const whole = await be.read(blockForward(be, ck.config, w, x, rope).out);
  const h = be.add(x, attentionPart(be, ck.config, w, be.rmsnorm(x, w.inputNorm, ck.config.rmsNormEps), rope).out);
  const out = be.add(h, mlpPart(be, w, be.rmsnorm(h, w.postNorm, ck.config.rmsNormEps)));
  assert.deepEqual(await be.read(out), whole);
  // an interceptor sees every linear once, in order, and can replace its output
  const seen: string[] = [];
  const r = blockForward(be, ck.config, w, x, rope, { linear: (name, xi, wi) => { seen.push(name); return be.linear(xi, wi); } });
  assert.deepEqual(seen, ['q', 'k', 'v', 'o', 'gate', 'up', 'down']);
  assert.deepEqual(await be.read(r.out), whole);
});

test('method options: checked against the method\'s schema, defaults filled in, non-defaults named in a cell key', () => {
  const gptq = getMethod('gptq');
  assert.deepEqual(resolveOptions(gptq, {}), { actOrder: false, staticGroups: false, percdamp: 0.01, blocksize: 128, deviceSolve: false });
  assert.deepEqual(resolveOptions(gptq, { actOrder: true, percdamp: '0.1' }), { actOrder: true, staticGroups: false, percdamp: 0.1, blocksize: 128, deviceSolve: false });
  assert.deepEqual(optionKeyParts(gptq, resolveOptions(gptq, { actOrder: true })), ['act']);
  assert.throws(() => resolveOptions(getMethod('rtn'), { actOrder: true }, allOptions(METHODS)), (e) => e instanceof UsageError && /--act-order is not an option of rtn/.test(e.message));
  assert.throws(() => resolveOptions(gptq, { percdamp: 11 }), /--percdamp must be a number in 0\.\.10/);
  assert.throws(() => resolveOptions(gptq, { blocksize: 1.5 }), /--blocksize must be an integer/);
  assert.throws(() => resolveOptions(gptq, { actOrder: 'yes' }), /--act-order is a switch/);
});
