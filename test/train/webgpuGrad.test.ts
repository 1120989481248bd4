/**
 * Training on WebGPU against the CPU backend (js kernels): one decoder block's tape forward and
 * backward (LoRA on all seven linears, one with a dropout mask; QA-LoRA pooling and IR-QLoRA
 * elastic connections through AdapterSet), then two steps of the fine-tuning loop on the bundled
 * model, whose block forwards and backwards run inside Backend.scope (sequenceGrad.ts): a tensor
 * freed there and used later is an Error on WebGPU, and every tensor made is freed by the end.
 * Skipped with the reason when there is no WebGPU adapter.
 *
 * Tolerances: the block's gradients to NMSE 1e-9 (measured at most 1.4e-12 on lavapipe: float32
 * accumulation against float64 in the host's reductions, compounded through the block); the loop's
 * losses to 1e-6 relative and the trained adapters to NMSE 1e-8 (Adam's first steps move each
 * parameter by about lr whatever the gradient's size, so gradients near zero may differ in sign).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrainableBackend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import type { LlamaConfig } from '../../src/io/config.js';
import type { BlockWeights } from '../../src/model/weights.js';
import { blockBackward, blockForwardTape, type BlockAdapters } from '../../src/train/blockGrad.js';
import { ropeInvFreq, ropeTables } from '../../src/model/rope.js';
import { dropoutMask, maskKey } from '../../src/train/random.js';
import { AdapterSet } from '../../src/train/lora.js';
import { finetune, type FinetuneConfig } from '../../src/train/finetune.js';
import { openModel } from '../../src/io/open.js';
import { DEFAULT_MODEL } from '../../src/paths.js';
import { IGNORE_INDEX, type TokenizedExample } from '../../src/data/alpaca.js';
import { assertClose, randF32 } from '../backend/kernelCases.js';
import { LIN, linShape, type Dims } from './ref64.js';

const cpu = new CpuBackend(jsKernels, 'js, 1 thread');
const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
const gpu = made.ok ? made.backend : undefined;
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# webgpuGrad: WebGPU cases skipped: ${made.reason}`);

const BLOCK_NMSE = 1e-9, LOSS_REL = 1e-6, ADAPTER_NMSE = 1e-8;

const d: Dims = { D: 16, F: 24, H: 4, KVH: 2, hd: 4, T: 6, eps: 1e-6 };
const cfg = { hiddenSize: d.D, intermediateSize: d.F, numLayers: 1, numHeads: d.H, numKvHeads: d.KVH, headDim: d.hd, vocabSize: 16, rmsNormEps: d.eps, ropeTheta: 10000, ropeScaling: null, maxPositionEmbeddings: 64, tieWordEmbeddings: true, bosTokenId: 1, eosTokenId: 2 } satisfies LlamaConfig;
const r = 2;

/** blockGrad.test.ts's block on backend `be`: seeded weights, adapters (one masked) and rope tables. */
function setup(be: TrainableBackend) {
  let seed = 100;
  const bw = { inputNorm: be.upload(randF32(d.D, seed++), [d.D]), postNorm: be.upload(randF32(d.D, seed++), [d.D]) } as Record<string, unknown>;
  for (const n of LIN) { const [N, K] = linShape(d, n); bw[n] = be.upload(randF32(N * K, seed++, 0.5), [N, K]); }
  const ads: BlockAdapters = Object.fromEntries(LIN.map((n) => {
    const [N, K] = linShape(d, n);
    const mask = n === 'up' ? be.upload(dropoutMask(d.T * K, 0.25, 7), [d.T, K]) : undefined;
    return [n, { A: be.upload(randF32(r * K, seed++, 0.5), [r, K]), B: be.upload(randF32(N * r, seed++, 0.5), [N, r]), scaling: 2.5, mask }];
  }));
  const { cos, sin } = ropeTables(ropeInvFreq(cfg), 0, d.T);
  const rope = { cos: be.upload(cos, [d.T, d.hd / 2]), sin: be.upload(sin, [d.T, d.hd / 2]), negSin: be.upload(sin.map((z) => -z), [d.T, d.hd / 2]) };
  return { bw: bw as unknown as BlockWeights, ads, rope, x: be.upload(randF32(d.T * d.D, seed++), [d.T, d.D]), R: be.upload(randF32(d.T * d.D, 999), [d.T, d.D]) };
}

/** The block's output, input gradient and every adapter gradient, read back. */
async function blockGrads(be: TrainableBackend, ads?: (s: ReturnType<typeof setup>) => BlockAdapters): Promise<Map<string, Float32Array>> {
  const s = setup(be);
  const a = ads ? ads(s) : s.ads;
  const { out, tape } = blockForwardTape(be, cfg, s.bw, s.x, s.rope, a);
  const { dx, grads } = blockBackward(be, cfg, s.bw, tape, s.rope, a, s.R);
  const res = new Map([['out', await be.read(out)], ['dx', await be.read(dx)]]);
  for (const n of LIN) {
    const g = grads[n]!;
    res.set(`${n} dA`, await be.read(g.dA));
    res.set(`${n} dB`, await be.read(g.dB));
    for (const [k, p] of [['dβA', g.dBetaA], ['dβB', g.dBetaB]] as const) {
      if (p) { res.set(`${n} ${k} x`, await be.read(p.x)); res.set(`${n} ${k} y`, await be.read(p.y)); }
    }
  }
  return res;
}

async function sameGrads(what: string, run: (be: TrainableBackend) => Promise<Map<string, Float32Array>>): Promise<void> {
  const want = await run(cpu), got = await run(gpu!);
  assert.deepEqual([...got.keys()], [...want.keys()]);
  let worst = 0;
  for (const [k, w] of want) {
    assertClose(got.get(k)!, w, BLOCK_NMSE, `${what}: ${k}`);
    worst = Math.max(worst, nmse(got.get(k)!, w));
  }
  console.log(`# webgpuGrad: ${what}: worst NMSE ${worst.toExponential(2)} over ${want.size} outputs`);
}

function nmse(got: Float32Array, want: Float32Array): number {
  let num = 0, den = 0;
  want.forEach((w, i) => { num += (got[i]! - w) ** 2; den += w * w; });
  return den === 0 ? num : num / den;
}

const ckpt = openModel(DEFAULT_MODEL);
function example(text: string, promptTokens: number): TokenizedExample {
  const ids = Int32Array.from([ckpt.tokenizer.bosId!, ...ckpt.tokenizer.encode(text, { bos: false })]);
  return { ids, labels: ids.map((v, i) => (i < promptTokens ? IGNORE_INDEX : v)) };
}

describe('training on WebGPU vs CPU', { skip }, () => {
  it('one decoder block: output, input and adapter gradients (LoRA with a dropout mask)', async () => {
    await sameGrads('lora', (be) => blockGrads(be));
  });

  for (const form of ['iec', 'qa'] as const) {
    it(`one decoder block through AdapterSet (${form})`, async () => {
      // one set per backend (a set keeps its constant matrices on the backend that asked first); same seeds, same values
      const adapters = (be: TrainableBackend) => {
        const set = new AdapterSet(cfg, { form, rank: r, alpha: 5, dropout: form === 'qa' ? 0.3 : 0, groupSize: 4 }, 11);
        let seed = 500;
        for (const a of set.all()) {
          a.B.set(randF32(a.B.length, seed++, 0.5));
          if (a.beta) { a.beta.A[0] = 0.7; a.beta.B[0] = -0.4; }
        }
        return set.blockTensors(be, 0, d.T, (li) => maskKey(3, li));
      };
      await sameGrads(form, (be) => blockGrads(be, () => adapters(be)));
    });
  }

  it('two fine-tuning steps on the bundled model: the same losses and adapters, no tensor left behind', async () => {
    const examples = [example('Once upon a time there was a red ball that liked to bounce.', 4), example('Tom and Sue went to the park and found a frog.', 3)];
    const config: FinetuneConfig = {
      lora: { form: 'lora', rank: 4, alpha: 8, dropout: 0.1 }, lr: 1e-3, schedule: 'constant', warmupRatio: 0, maxGradNorm: 1,
      adam: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, gradAccum: 2, steps: 2, seed: 7, saveEvery: 100,
    };
    const dir = mkdtempSync(join(tmpdir(), 'lowbit-wg-'));
    try {
      const want = await finetune(cpu, ckpt, examples, config, join(dir, 'cpu'));
      const live = gpu!.liveTensors;
      const got = await finetune(gpu!, ckpt, examples, config, join(dir, 'gpu'));
      assert.equal(gpu!.liveTensors, live, 'every tensor the loop made is freed');
      got.losses.forEach((l, i) => assert.ok(Math.abs(l - want.losses[i]!) <= LOSS_REL * Math.abs(want.losses[i]!), `step ${i + 1}: loss ${l} on WebGPU, ${want.losses[i]} on the CPU`));
      const pw = want.adapters.params(), pg = got.adapters.params();
      pw.forEach((p, i) => assertClose(pg[i]!.value, p.value, ADAPTER_NMSE, p.name));
      const worst = Math.max(...pw.map((p, i) => nmse(pg[i]!.value, p.value)));
      console.log(`# webgpuGrad: losses cpu ${want.losses.join(', ')}; webgpu ${got.losses.join(', ')}; adapters' worst NMSE ${worst.toExponential(2)}`);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});
