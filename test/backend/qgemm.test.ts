/**
 * The fused dequantize-and-multiply for GPTQ-packed weights (gemmQ): every provider against the f32
 * gemm on dequantizeGptq(q), for 2/3/4/8 bits, group sizes 32/128/per-channel and act-order g_idx,
 * awkward shapes; the CpuBackend fallback for providers without gemmQ; and end to end, perplexity of
 * a quantized checkpoint through the fused path against the dequantized path.
 */
import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { checked } from '../../src/backend/cpu/kernels/provider.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { dequantizeGptq, packGptq } from '../../src/tensor/gptqPack.js';
import type { GptqPacked } from '../../src/tensor/packed.js';
import { maxqOf } from '../../src/quant/core/grid.js';
import { openModel } from '../../src/io/open.js';
import type { TensorSource } from '../../src/io/source.js';
import type { ModelCheckpoint } from '../../src/io/checkpoint.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { evaluatePpl } from '../../src/eval/ppl.js';
import type { Backend } from '../../src/backend/backend.js';
import { PROVIDERS, assertClose, assertGuards, assertSameBits, availability, guarded, kernelsOf, randF32, rng } from './kernelCases.js';
import { DATA, TINY656K } from '../helpers/paths.js';
import { runCli } from '../cli/helpers.js';

type Grouping = 32 | 128 | -1 | 'act32';
const BITS = [2, 3, 4, 8] as const;
const GROUPINGS: readonly Grouping[] = [32, 128, -1, 'act32'];
/** [M, N, K]: ones, primes, one past a power of two, K not a multiple of the group size. */
const SHAPES: [number, number, number][] = [[1, 1, 1], [1, 257, 96], [3, 129, 257], [5, 300, 130], [17, 33, 1025], [2, 7, 31]];

/** A random packed weight: random codes, zeros and fp16-exact scales; act-order g_idx is a shuffled group map. */
function randQuant(N: number, K: number, bits: number, grouping: Grouping, seed: number): GptqPacked {
  const r = rng(seed), maxq = maxqOf(bits);
  const gs = grouping === -1 ? K : grouping === 'act32' ? 32 : grouping;
  const groups = Math.max(1, Math.ceil(K / gs));
  const gIdx = new Int32Array(K);
  for (let c = 0; c < K; c++) gIdx[c] = Math.floor(c / gs);
  if (grouping === 'act32') {
    for (let c = K - 1; c > 0; c--) { const j = Math.floor(r() * (c + 1)); const t = gIdx[c]!; gIdx[c] = gIdx[j]!; gIdx[j] = t; }
  }
  const codes = new Uint8Array(N * K).map(() => Math.floor(r() * (maxq + 1)));
  const zeros = new Uint8Array(N * groups).map(() => Math.floor(r() * (maxq + 1)));
  const scales = new Float32Array(N * groups).map(() => (r() - 0.3) * 0.05);
  return packGptq({ codes, scales, zeros, gIdx }, N, K, bits).tensors;
}

function* cases(): Generator<{ q: GptqPacked; x: Float32Array; M: number; what: string }> {
  let seed = 1;
  for (const bits of BITS) {
    for (const g of GROUPINGS) {
      for (const [M, N, K] of SHAPES) {
        seed++;
        yield { q: randQuant(N, K, bits, g, seed), x: randF32(M * K, seed * 7 + 1), M, what: `gemmQ ${bits}-bit group ${g} ${M}x${N}x${K}` };
      }
    }
  }
}

/** The js reference: bit for bit the js gemm on the dequantized matrix. */
describe('js gemmQ', () => {
  it('equals jsKernels.gemm(x, dequantizeGptq(q)) bit for bit', () => {
    const k = checked(jsKernels);
    for (const { q, x, M, what } of cases()) {
      const y = guarded(Float32Array, M * q.rows), ref = new Float32Array(M * q.rows);
      k.gemmQ!(x, q, y, M);
      jsKernels.gemm(x, dequantizeGptq(q), ref, M, q.rows, q.cols);
      assertGuards(y, what);
      assertSameBits(y, ref, what);
    }
  });

  it('rejects a g_idx outside the groups and arrays that do not match the shape', () => {
    const k = checked(jsKernels);
    const q = randQuant(8, 64, 4, 32, 3), x = randF32(2 * 64, 4), y = new Float32Array(2 * 8);
    assert.throws(() => k.gemmQ!(x, { ...q, gIdx: q.gIdx.map((g, i) => (i === 5 ? 2 : g)) }, y, 2), /gemmQ: g_idx\[5\] = 2 is outside 0\.\.1/);
    assert.throws(() => k.gemmQ!(x, { ...q, qweight: q.qweight.subarray(1) }, y, 2), /gemmQ: qweight has/);
    assert.throws(() => k.gemmQ!(x.subarray(1), q, y, 2), /gemmQ: x has/);
    assert.throws(() => new CpuBackend().uploadQuantized({ ...q, scales: q.scales.subarray(1) }), /uploadQuantized: scales has/);
  });
});

for (const p of PROVIDERS) {
  describe(`${p.name} gemmQ`, availability(p), () => {
    it('equals the same provider\'s linear on the dequantized weight', () => {
      const k = kernelsOf(p);
      const be = new CpuBackend(k);
      for (const { q, x, M, what } of cases()) {
        const xt = be.upload(x, [M, q.cols]);
        const ref = (be.linear(xt, be.upload(dequantizeGptq(q), [q.rows, q.cols])) as unknown as { data: Float32Array }).data;
        const got = (be.linear(xt, be.uploadQuantized(q)) as unknown as { data: Float32Array }).data;
        if (k.gemmQ) {
          // native: tiles decoded to f32 then the very same BLAS calls as gemm → identical bits
          const y = guarded(Float32Array, M * q.rows);
          k.gemmQ(x, q, y, M);
          assertGuards(y, `${p.name} ${what}`);
          assertSameBits(y, ref, `${p.name} ${what}`);
          assertSameBits(got, ref, `${p.name} linear ${what}`);
        } else {
          // no gemmQ (wasm): CpuBackend decodes 64-row panels with the js reference, then the provider's gemm
          assertClose(got, ref, 1e-12, `${p.name} fallback ${what}`);
        }
      }
    });

    it('gives identical results for 1 and 3 threads', () => {
      const k1 = kernelsOf(p, 1);
      if (!k1.gemmQ) return;
      const q = randQuant(600, 300, 3, 'act32', 9), M = 37, x = randF32(M * 300, 10);
      const a = new Float32Array(M * 600), b = new Float32Array(M * 600);
      k1.gemmQ(x, q, a, M);
      kernelsOf(p, 3).gemmQ!(x, q, b, M);
      assertSameBits(a, b, `${p.name} gemmQ threads`);
    });
  });
}

test('CpuBackend without a provider gemmQ decodes row panels and matches bit for bit (js gemm)', () => {
  const { gemmQ: _drop, ...rest } = jsKernels;
  const be = new CpuBackend(rest);
  for (const { q, x, M, what } of cases()) {
    const xt = be.upload(x, [M, q.cols]);
    const want = new Float32Array(M * q.rows);
    jsKernels.gemm(x, dequantizeGptq(q), want, M, q.rows, q.cols);
    const got = (be.linear(xt, be.uploadQuantized(q)) as unknown as { data: Float32Array }).data;
    assertSameBits(got, want, `fallback ${what}`);
  }
});

test('a quantized weight is only for linear: read decodes it, embedding refuses it', async () => {
  const be = new CpuBackend();
  const q = randQuant(10, 40, 3, 'act32', 5);
  const w = be.uploadQuantized(q);
  assert.equal(w.dtype, 'q');
  assert.deepEqual(w.shape, [10, 40]);
  assertSameBits(await be.read(w), dequantizeGptq(q), 'read');
  assert.throws(() => be.embedding(w, new Int32Array([0])), /quantized weight/);
});

/** The checkpoint with a source that has no readQuantized: every weight dequantized when read. */
function dequantizedView(ck: ModelCheckpoint): ModelCheckpoint {
  const src = ck.weights;
  const weights: TensorSource = { path: src.path, list: () => src.list(), has: (n) => src.has(n), read: (n) => src.read(n) };
  return { ...ck, weights };
}

test('TinyStories-656K, RTN W4 g32: perplexity through the fused path equals the dequantized path; lowbit info works', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'lowbit-qgemm-'));
  try {
    const { kernels, note } = selectKernels('auto', 2);
    const be = new CpuBackend(kernels, note);
    const out = join(tmp, 'rtn4');
    await quantizeModel(openModel(TINY656K), be, { method: 'rtn', bits: 4, group: 32, out });
    const ck = openModel(out);
    assert.ok(ck.weights.readQuantized?.('model.layers.0.mlp.down_proj.weight'));
    assert.equal(ck.weights.readQuantized?.('model.layers.0.input_layernorm.weight'), undefined);
    let quantUploads = 0;
    const spy: Backend = Object.create(be, { uploadQuantized: { value: (q: GptqPacked) => { quantUploads++; return be.uploadQuantized(q); } } });
    const PPL = { seqlen: 256, limit: 6, dataDir: DATA };
    const fused = await evaluatePpl(ck, spy, 'tinystories', PPL);
    assert.ok(quantUploads > 0, 'the fused path uploads packed weights');
    const deq = await evaluatePpl(dequantizedView(ck), be, 'tinystories', PPL);
    assert.ok(Number.isFinite(fused.ppl) && fused.ppl > 1);
    assert.ok(Math.abs(fused.ppl - deq.ppl) <= 1e-9 * deq.ppl, `fused ${fused.ppl} vs dequantized ${deq.ppl}`);
    const info = runCli(['info', '--model', out, '--json']);
    assert.equal(info.status, 0, info.stderr);
    const s = JSON.parse(info.stdout) as { format: string; storedDtypes: Record<string, number> };
    assert.equal(s.format, 'lowbit-gptq');
    assert.ok((s.storedDtypes['GPTQ-INT4'] ?? 0) > 0);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
