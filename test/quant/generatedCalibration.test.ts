/**
 * `--calib generated` (data-free, LLM-QAT's generator): the top-k draw keeps exactly the logits ≥ the k-th
 * largest (ties included) with softmax probabilities; windows start with BOS and an ordinary start token, follow
 * the model's greedy choice for 3 + (s mod 3) tokens, are identical run to run and differ by seed; quantizing on
 * them records the source.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { openModel } from '../../src/io/open.js';
import { DEFAULT_MODEL } from '../../src/paths.js';
import { LlamaModel } from '../../src/model/llama.js';
import { generatedCalibration, greedyCount, sampleTopK } from '../../src/quant/generatedCalibration.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';

const { kernels, note } = selectKernels('auto', 2);
const be = new CpuBackend(kernels, note);
const dir = mkdtempSync(join(tmpdir(), 'lowbit-gencalib-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('sampleTopK', () => {
  it('draws by the softmax of the kept logits, in index order', () => {
    // kept: indices 1, 2, 3 with probabilities 1/6, 2/6, 3/6 (index 0 is below the 3rd largest)
    const l = Float32Array.from([-5, 0, Math.log(2), Math.log(3)]);
    assert.equal(sampleTopK(l, 3, 0), 1);
    assert.equal(sampleTopK(l, 3, 0.16), 1);
    assert.equal(sampleTopK(l, 3, 0.17), 2);
    assert.equal(sampleTopK(l, 3, 0.49), 2);
    assert.equal(sampleTopK(l, 3, 0.51), 3);
    assert.equal(sampleTopK(l, 3, 0.999999), 3);
    // with every logit kept index 0 gets its share: e^-5 / (6 + e^-5)
    assert.equal(sampleTopK(l, 4, 0.0005), 0);
    assert.equal(sampleTopK(l, 3, 0.0005), 1);
  });
  it('k = 1 is the greedy choice, and ties at the k-th value are kept', () => {
    const l = Float32Array.from([0.5, 2, 1, 1, -3]);
    for (const u of [0, 0.3, 0.99]) assert.equal(sampleTopK(l, 1, u), 1);
    // k = 2: the 2nd largest is 1, held by indices 2 and 3: three tokens stay in
    const e = [Math.exp(2), 1, 1], total = e[0]! * Math.exp(-1) + 2;
    assert.equal(sampleTopK(l, 2, (e[0]! * Math.exp(-1) + 1.5) / total), 3);
    assert.equal(sampleTopK(l, 2, 0.999), 3);
  });
});

describe('generatedCalibration on the bundled model', () => {
  const ckpt = openModel(DEFAULT_MODEL);
  const opts = { nsamples: 5, seqlen: 40, seed: 3 };
  it('windows: BOS, an ordinary start token, the greedy continuation, then samples; deterministic; seeded', async () => {
    const a = await generatedCalibration(ckpt, be, opts);
    const b = await generatedCalibration(ckpt, be, opts);
    const c = await generatedCalibration(ckpt, be, { ...opts, seed: 4 });
    assert.equal(a.windows.length, 5);
    assert.deepEqual(a.windows, b.windows);
    assert.notDeepEqual(a.windows, c.windows);
    const bos = ckpt.tokenizer.bosId!, eos = ckpt.tokenizer.eosId;
    const model = LlamaModel.load(ckpt, be);
    for (const [s, w] of a.windows.entries()) {
      assert.equal(w.length, 40);
      assert.equal(w[0], bos);
      assert.equal(w[1], a.info.starts[s]);
      assert.ok(w[1] !== bos && w[1] !== eos, `window ${s} starts on a special token`);
      assert.ok(w.every((t) => t >= 0 && t < ckpt.config.vocabSize));
      const greedy = await model.generate([bos, w[1]!], greedyCount(s));
      assert.deepEqual(Array.from(w.subarray(2, 2 + greedyCount(s))), greedy, `window ${s}: the greedy prefix`);
    }
    // sampled, not greedy, after the prefix: some window leaves the greedy path
    const offGreedy = await Promise.all(a.windows.map(async (w, s) => {
      const p = 2 + greedyCount(s);
      const g = await model.generate(Array.from(w.subarray(0, p)), 6);
      return g.some((t, i) => t !== w[p + i]);
    }));
    assert.ok(offGreedy.some((x) => x), 'every window followed the greedy path: not sampled');
    model.free();
  });
  it('quantize --calib generated records the source and its start tokens', async () => {
    const out = join(dir, 'gptq');
    const r = await quantizeModel(ckpt, be, { method: 'gptq', bits: 4, group: 128, calib: 'generated', nsamples: 4, seqlen: 64, seed: 0, out });
    assert.equal(r.calibration?.source, 'generated');
    assert.equal(r.calibration?.starts.length, 4);
    assert.ok(r.totalError !== null && r.totalError > 0);
    assert.match(readFileSync(join(out, 'config.json'), 'utf8'), /LlamaForCausalLM/);
  });
  it('a window too short or beyond the context is one UsageError', async () => {
    await assert.rejects(generatedCalibration(ckpt, be, { nsamples: 1, seqlen: 4, seed: 0 }), /--seqlen 4 is too short/);
    await assert.rejects(generatedCalibration(ckpt, be, { nsamples: 1, seqlen: 513, seed: 0 }), /beyond the model's context of 512/);
  });
});
