/**
 * The fine-tuning loop on the bundled model: it overfits two sequences, a killed run resumes to the
 * same adapters bit for bit, a diverging run stops with the last good save kept, and the adapters
 * written in PEFT's layout evaluate (LlamaModel with the folder's adapter) as the training forward.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, copyFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { openModel } from '../../src/io/open.js';
import { DEFAULT_MODEL } from '../../src/paths.js';
const bundledModelPath = () => DEFAULT_MODEL;
import { finetune, loadFrozen, type FinetuneConfig } from '../../src/train/finetune.js';
import { loadTrainState } from '../../src/train/state.js';
import { IGNORE_INDEX, type TokenizedExample } from '../../src/data/alpaca.js';
import { LlamaModel } from '../../src/model/llama.js';
import { writePeftAdapter } from '../../src/io/peft.js';
import { LORA_TARGETS } from '../../src/io/peft.js';
import { peftLayers } from '../../src/quant/lora/finetuneModel.js';
import { AdapterSet, type AdapterForm } from '../../src/train/lora.js';
import { blockForwardTape } from '../../src/train/blockGrad.js';
import { ropeFor } from '../../src/model/stream.js';
import { LowbitError } from '../../src/errors.js';

const be = new CpuBackend(jsKernels, 'js, 1 thread');
const ckpt = openModel(bundledModelPath());
const tmp = () => mkdtempSync(join(tmpdir(), 'lowbit-ft-'));

function example(text: string, promptTokens: number): TokenizedExample {
  const ids = Int32Array.from([ckpt.tokenizer.bosId!, ...ckpt.tokenizer.encode(text, { bos: false })]);
  const labels = ids.map((v, i) => (i < promptTokens ? IGNORE_INDEX : v));
  return { ids, labels };
}
const EXAMPLES = [example('Once upon a time there was a red ball that liked to bounce over the hill.', 4), example('Tom and Sue went to the park and found a big green frog in the pond.', 3)];

const config = (o: Partial<FinetuneConfig> = {}): FinetuneConfig => ({
  lora: { form: 'lora', rank: 8, alpha: 16, dropout: 0.1 }, lr: 1e-2, schedule: 'constant', warmupRatio: 0, maxGradNorm: 1,
  adam: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, gradAccum: 2, steps: 4, seed: 7, saveEvery: 2, ...o,
});

describe('fine-tuning loop', () => {
  it('overfits two sequences: the loss falls below a third of its start', async () => {
    const dir = tmp();
    try {
      const r = await finetune(be, ckpt, EXAMPLES, config({ steps: 40, saveEvery: 100, lora: { form: 'lora', rank: 8, alpha: 16, dropout: 0 } }), join(dir, 's'));
      const first = r.losses[0]!, last = r.losses.at(-1)!;
      assert.ok(first > 2, `a pretrained TinyStories model starts near its perplexity (loss ${first})`);
      assert.ok(last < first / 3, `loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('a run killed after its step-2 save resumes to the same adapters, bit for bit', async () => {
    const a = tmp(), b = tmp();
    try {
      const whole = await finetune(be, ckpt, EXAMPLES, config(), join(a, 's'));
      await assert.rejects(finetune(be, ckpt, EXAMPLES, config(), join(b, 's'), (p) => { if (p.step === 3) throw new Error('killed'); }), /killed/);
      assert.equal(loadTrainState(join(b, 's')).step, 2);
      const resumed = await finetune(be, ckpt, EXAMPLES, config(), join(b, 's'));
      assert.equal(resumed.resumedFrom, 2);
      assert.deepEqual(resumed.losses, whole.losses.slice(2));
      const pa = whole.adapters.params(), pb = resumed.adapters.params();
      assert.ok(pa.some((p) => p.name.endsWith('lora_B.weight') && p.value.some((v) => v !== 0)), 'training moved B');
      pa.forEach((p, i) => assert.deepEqual(pb[i]!.value, p.value, p.name));
      await assert.rejects(finetune(be, ckpt, EXAMPLES, config({ lr: 5e-3 }), join(b, 's')), /holds a run with other settings/);
    } finally { rmSync(a, { recursive: true, force: true }); rmSync(b, { recursive: true, force: true }); }
  });

  it('a diverging run stops with a clear error and keeps the last good save', async () => {
    const dir = tmp();
    try {
      const cfg = config({ lr: 1e38, maxGradNorm: 1e30, steps: 6, saveEvery: 1 });
      await assert.rejects(finetune(be, ckpt, EXAMPLES, cfg, join(dir, 's')), (e: unknown) => e instanceof LowbitError && /diverged at step \d+/.test((e as Error).message));
      const st = loadTrainState(join(dir, 's'));
      assert.ok(st.step >= 1, 'a good state was saved before the divergence');
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  for (const form of ['lora', 'iec', 'qa'] as AdapterForm[]) {
    it(`${form}: the PEFT adapter written next to the base evaluates as the training forward`, async () => {
      const dir = tmp();
      try {
        for (const f of readdirSync(bundledModelPath())) if (/\.(json|safetensors)$/.test(f)) copyFileSync(join(bundledModelPath(), f), join(dir, f));
        const set = new AdapterSet(ckpt.config, { form, rank: 4, alpha: 8, dropout: 0, groupSize: 32 }, 3);
        let k = 1;
        for (const a of set.all()) {
          for (let i = 0; i < a.B.length; i++) a.B[i] = Math.sin(k++ * 0.37) * 0.05;
          if (a.beta) { a.beta.A[0] = 0.3; a.beta.B[0] = -0.2; }
        }
        writePeftAdapter(dir, { config: { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: [...LORA_TARGETS], baseModelNameOrPath: null, lowbit: { form, ...(form === 'qa' ? { group_size: 32 } : {}) } }, layers: peftLayers(set) });
        const withAdapter = openModel(dir);
        assert.equal(withAdapter.adapter?.form, form);
        const ids = EXAMPLES[0]!.ids;
        const m = LlamaModel.load(withAdapter, be);
        const got = await be.read(m.forward(ids).logits);
        // the training forward: blocks with the AdapterSet's tensors, then the final norm and head
        const fz = loadFrozen(ckpt, be);
        const { cos, sin } = ropeFor(ckpt, be, 0, ids.length);
        const rope = { cos, sin, negSin: be.scale(sin, -1) };
        let x = be.embedding(fz.embed, ids);
        for (let i = 0; i < ckpt.config.numLayers; i++) x = blockForwardTape(be, ckpt.config, fz.blocks[i]!, x, rope, set.blockTensors(be, i, ids.length, () => 0)).out;
        const want = await be.read(be.linear(be.rmsnorm(x, fz.norm, ckpt.config.rmsNormEps), fz.head));
        const plain = await be.read(LlamaModel.load(ckpt, be).forward(ids).logits);
        let num = 0, den = 0, moved = 0;
        for (let i = 0; i < want.length; i++) { num += (got[i]! - want[i]!) ** 2; den += want[i]! ** 2; moved = Math.max(moved, Math.abs(want[i]! - plain[i]!)); }
        assert.ok(moved > 1e-3, `the adapter changes the logits (max change ${moved})`);
        assert.ok(Math.sqrt(num / den) < 1e-5, `eval vs training forward: relative error ${Math.sqrt(num / den)}`);
      } finally { rmSync(dir, { recursive: true, force: true }); }
    });
  }
});
