/**
 * A whole decoder block with LoRA adapters on all seven linears (one with a dropout mask): the
 * engine's float32 input and adapter gradients against central finite differences of the float64
 * reference block; and with zero adapters the tape forward equals model/block.ts bit for bit.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import type { LlamaConfig } from '../../src/io/config.js';
import type { BlockWeights } from '../../src/model/weights.js';
import { blockForward } from '../../src/model/block.js';
import { blockBackward, blockForwardTape, type BlockAdapters } from '../../src/train/blockGrad.js';
import { ropeInvFreq, ropeTables } from '../../src/model/rope.js';
import { dropoutMask, maskKey } from '../../src/train/random.js';
import { AdapterSet } from '../../src/train/lora.js';
import { randF32 } from '../backend/kernelCases.js';
import { LIN, assertRelClose, block64, finiteDiff, linShape, type Block64, type Dims, type F64 } from './ref64.js';

const be = new CpuBackend(jsKernels, 'js, 1 thread');
const d: Dims = { D: 8, F: 12, H: 4, KVH: 2, hd: 2, T: 4, eps: 1e-6 };
const cfg = { hiddenSize: d.D, intermediateSize: d.F, numLayers: 1, numHeads: d.H, numKvHeads: d.KVH, headDim: d.hd, vocabSize: 16, rmsNormEps: d.eps, ropeTheta: 10000, ropeScaling: null, maxPositionEmbeddings: 64, tieWordEmbeddings: true, bosTokenId: 1, eosTokenId: 2 } satisfies LlamaConfig;
const r = 2;

function setup(zeroB = false) {
  let seed = 100;
  const w = {} as Record<typeof LIN[number], Float32Array>;
  for (const n of LIN) { const [N, K] = linShape(d, n); w[n] = randF32(N * K, seed++, 0.5); }
  const norm1 = randF32(d.D, seed++), norm2 = randF32(d.D, seed++);
  const ad = {} as Record<typeof LIN[number], { A: Float32Array; B: Float32Array; mask?: Float32Array }>;
  for (const n of LIN) {
    const [N, K] = linShape(d, n);
    ad[n] = { A: randF32(r * K, seed++, 0.5), B: zeroB ? new Float32Array(N * r) : randF32(N * r, seed++, 0.5) };
  }
  ad.up.mask = dropoutMask(d.T * d.D, 0.25, 7);
  const { cos, sin } = ropeTables(ropeInvFreq(cfg), 0, d.T);
  const x = randF32(d.T * d.D, seed++);
  const bw: BlockWeights = {
    inputNorm: be.upload(norm1, [d.D]), postNorm: be.upload(norm2, [d.D]),
    ...Object.fromEntries(LIN.map((n) => [n, be.upload(w[n], linShape(d, n))])),
  } as unknown as BlockWeights;
  const s = 2.5;
  const ads: BlockAdapters = Object.fromEntries(LIN.map((n) => {
    const [N, K] = linShape(d, n);
    return [n, { A: be.upload(ad[n].A, [r, K]), B: be.upload(ad[n].B, [N, r]), scaling: s, mask: ad[n].mask && be.upload(ad[n].mask!, [d.T, K]) }];
  }));
  const rope = { cos: be.upload(cos, [d.T, d.hd / 2]), sin: be.upload(sin, [d.T, d.hd / 2]), negSin: be.upload(sin.map((z) => -z), [d.T, d.hd / 2]) };
  const ref: Block64 = {
    norm1: Float64Array.from(norm1), norm2: Float64Array.from(norm2),
    w: Object.fromEntries(LIN.map((n) => [n, Float64Array.from(w[n])])) as Record<typeof LIN[number], F64>,
    ad: Object.fromEntries(LIN.map((n) => [n, { A: Float64Array.from(ad[n].A), B: Float64Array.from(ad[n].B), r, s, mask: ad[n].mask && Float64Array.from(ad[n].mask!) }])),
    cos, sin,
  };
  return { bw, ads, rope, x, ref };
}

describe('decoder block with LoRA: gradients', () => {
  it('input and all adapter gradients equal float64 finite differences of the reference block', async () => {
    const { bw, ads, rope, x, ref } = setup();
    const R = randF32(d.T * d.D, 999);
    const x64 = Float64Array.from(x);
    const loss = () => block64(d, ref, x64).reduce((s, v, i) => s + v * R[i]!, 0);
    const { out, tape } = blockForwardTape(be, cfg, bw, be.upload(x, [d.T, d.D]), rope, ads);
    assertRelClose(await be.read(out), block64(d, ref, x64), 1e-6, 'block output');
    const { dx, grads } = blockBackward(be, cfg, bw, tape, rope, ads, be.upload(R, [d.T, d.D]));
    assertRelClose(await be.read(dx), finiteDiff(loss, x64), 1e-4, 'dx');
    for (const n of LIN) {
      assertRelClose(await be.read(grads[n]!.dA), finiteDiff(loss, ref.ad[n]!.A), 1e-4, `${n} dA`);
      assertRelClose(await be.read(grads[n]!.dB), finiteDiff(loss, ref.ad[n]!.B), 1e-4, `${n} dB`);
    }
  });

  it('with B = 0 the tape forward equals blockForward bit for bit', async () => {
    const { bw, ads, rope, x } = setup(true);
    const xt = be.upload(x, [d.T, d.D]);
    const a = await be.read(blockForwardTape(be, cfg, bw, xt, rope, ads).out);
    const b = await be.read(blockForward(be, cfg, bw, xt, rope).out);
    assert.deepEqual(a, b);
  });
});

describe('adapter forms through AdapterSet: IR-QLoRA elastic connections and QA-LoRA pooling', () => {
  for (const form of ['iec', 'qa'] as const) {
    it(`${form}: input, A, B${form === 'iec' ? ', βA, βB' : ''} gradients equal float64 finite differences`, async () => {
      const { bw, rope, x } = setup();
      const spec = { form, rank: r, alpha: 5, dropout: form === 'qa' ? 0.3 : 0, groupSize: 4 };
      const set = new AdapterSet(cfg, spec, 11);
      let seed = 500;
      for (const a of set.all()) {
        a.B.set(randF32(a.B.length, seed++, 0.5));
        if (a.beta) { a.beta.A[0] = 0.7; a.beta.B[0] = -0.4; }
      }
      const keyOf = (li: number) => maskKey(3, li);
      const ads = set.blockTensors(be, 0, d.T, keyOf);
      const ref: Block64 = { ...setup().ref, ad: {} };
      for (const [li, n] of LIN.entries()) {
        const a = set.layers[0]![n]!;
        ref.ad[n] = {
          A: Float64Array.from(a.A), B: Float64Array.from(a.B), r, s: set.scaling,
          mask: spec.dropout > 0 ? Float64Array.from(dropoutMask(d.T * a.inA, spec.dropout, keyOf(li))) : undefined,
          ...(form === 'qa' ? { pool: 4 } : { iec: { betaA: Float64Array.of(0.7), betaB: Float64Array.of(-0.4) } }),
        };
      }
      const R = randF32(d.T * d.D, 998);
      const x64 = Float64Array.from(x);
      const loss = () => block64(d, ref, x64).reduce((s, v, i) => s + v * R[i]!, 0);
      const { out, tape } = blockForwardTape(be, cfg, bw, be.upload(x, [d.T, d.D]), rope, ads);
      assertRelClose(await be.read(out), block64(d, ref, x64), 1e-6, 'block output');
      const { dx, grads } = blockBackward(be, cfg, bw, tape, rope, ads, be.upload(R, [d.T, d.D]));
      await set.accumulate(be, 0, grads);
      assertRelClose(await be.read(dx), finiteDiff(loss, x64), 1e-4, 'dx');
      for (const n of LIN) {
        const a = set.layers[0]![n]!, ra = ref.ad[n]!;
        assertRelClose(a.gA, finiteDiff(loss, ra.A), 1e-4, `${n} dA`);
        assertRelClose(a.gB, finiteDiff(loss, ra.B), 1e-4, `${n} dB`);
        if (ra.iec) {
          assertRelClose(a.beta!.gA, finiteDiff(loss, ra.iec.betaA), 1e-4, `${n} dβA`);
          assertRelClose(a.beta!.gB, finiteDiff(loss, ra.iec.betaB), 1e-4, `${n} dβB`);
        }
      }
    });
  }

  it('a rank or group size that does not fit a layer names the layer', () => {
    assert.throws(() => new AdapterSet(cfg, { form: 'iec', rank: 3, alpha: 1, dropout: 0 }, 1), /rank 3 to divide the in and out features of layer 0 self_attn\.q_proj \(8×8\)/);
    assert.throws(() => new AdapterSet(cfg, { form: 'qa', rank: 2, alpha: 1, dropout: 0, groupSize: 5 }, 1), /group size 5 does not divide the 8 input features of layer 0 self_attn\.q_proj/);
  });
});
