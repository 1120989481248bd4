/**
 * DB-LLM: the dual-binary decomposition of the 2-bit grid is exact; the distillation loss's gradient
 * equals finite differences; zero steps give the 2-bit grid's model; a short run lowers the
 * distillation loss; a killed run resumes to the same checkpoint bit for bit; the kind round-trips.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { openModel } from '../../src/io/open.js';
import { DEFAULT_MODEL } from '../../src/paths.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { LlamaModel } from '../../src/model/llama.js';
import { fdbBits, fdbDecode, fdbInit, FDB_SIGNS } from '../../src/quant/methods/dbllm.js';
import { dadLoss, dadWeights } from '../../src/quant/methods/dbllmTrain.js';
import { DBLLM_KIND, dbllmTensors } from '../../src/tensor/dbllmPack.js';
import { quantizeMatrix } from '../../src/quant/core/grid.js';
import { dequantizeMatrix } from '../../src/tensor/packed.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { randF32 } from '../backend/kernelCases.js';

const { kernels, note } = selectKernels('auto', 2);
const be = new CpuBackend(kernels, note);
const dir = mkdtempSync(join(tmpdir(), 'lowbit-dbllm-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('DB-LLM', () => {
  it('the dual binarization of the 2-bit grid is exact for every zero point, and the stored kind round-trips', () => {
    for (let z = 0; z < 4; z++) {
      for (let q = 0; q < 4; q++) {
        const [b1, b2] = fdbBits(z, q);
        assert.ok(FDB_SIGNS[z]![0] * b1 + FDB_SIGNS[z]![1] * b2 === q - z, `z ${z} q ${q}`);
      }
    }
    // rows shifted so that every zero point 0..3 occurs
    const rows = 16, cols = 256, W = randF32(rows * cols, 7);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) W[r * cols + c] = W[r * cols + c]! + [1.2, 0.3, -0.3, -1.2][r % 4]!;
    const grid = quantizeMatrix(W, rows, cols, { bits: 2, groupSize: 128, sym: false, scaleDtype: 'f32' });
    assert.deepEqual(new Set(grid.zeros), new Set([0, 1, 2, 3]));
    const { parts, Q } = fdbInit(W, rows, cols, 128);
    assert.deepEqual(Q, dequantizeMatrix(grid, rows, cols));
    assert.deepEqual(fdbDecode(parts), Q, 'α1·b1 + α2·b2 equals s·(q − z) bit for bit');
    const file = join(dir, 'fdb.safetensors');
    const tensors = dbllmTensors(parts);
    writeSafetensors(file, Object.entries(tensors).map(([name, tensor]) => ({ name, tensor })));
    const back = SafetensorsFile.open(file);
    const read = { planes: back.read('planes'), alphas: back.read('alphas') };
    assert.deepEqual(read.planes.data, parts.planes);
    assert.deepEqual(read.alphas.data, parts.alphas);
    const layer = DBLLM_KIND.open(read, 2);
    const dec = new Float32Array(rows * cols);
    layer.decodeRows(0, rows, dec);
    assert.deepEqual(dec, Q);
  });

  it('the distillation loss\'s gradient equals central finite differences', () => {
    const n = 3, V = 7, S = randF32(n * V, 11, 3), Tl = randF32(n * V, 12, 3);
    const u = dadWeights(Tl, n, V, false), U = u.reduce((a, b) => a + b, 0);
    assert.ok(u.every((x) => x > 0 && x <= 1), `entropy weights in (0, 1]: ${u}`);
    const { loss, grad } = dadLoss(S, Tl, u, U, n, V);
    assert.ok(loss > 0);
    const h = 1e-2;
    for (let i = 0; i < n * V; i++) {
      const p = S.slice(), m = S.slice();
      p[i] = S[i]! + h; m[i] = S[i]! - h;
      const fd = (dadLoss(p, Tl, u, U, n, V).loss - dadLoss(m, Tl, u, U, n, V).loss) / (p[i]! - m[i]!);
      assert.ok(Math.abs(fd - grad[i]!) <= 1e-4 + 2e-3 * Math.abs(fd), `element ${i}: finite difference ${fd}, gradient ${grad[i]}`);
    }
    assert.equal(dadLoss(Tl, Tl, u, U, n, V).loss, 0, 'no deviation, no loss');
  });

  it('zero steps: the checkpoint evaluates exactly as RTN W2 g128', async () => {
    const src = openModel(DEFAULT_MODEL);
    await quantizeModel(src, be, { method: 'dbllm', bits: 2, group: 128, calib: 'none', out: join(dir, 'db0'), reportErrors: false });
    await quantizeModel(src, be, { method: 'rtn', bits: 2, group: 128, calib: 'none', out: join(dir, 'rtn2'), reportErrors: false });
    const ids = Int32Array.from([1, ...src.tokenizer.encode('Once upon a time there was a little cat.', { bos: false })]);
    // the js kernels: a row's dot products do not depend on how the layer's rows are decoded into panels
    const js = new CpuBackend(jsKernels, 'js');
    const a = await js.read(LlamaModel.load(openModel(join(dir, 'db0')), js).forward(ids).logits);
    const b = await js.read(LlamaModel.load(openModel(join(dir, 'rtn2')), js).forward(ids).logits);
    assert.deepEqual(a, b);
  });

  it('a short run lowers the distillation loss; a run killed after its step-2 save resumes to the same checkpoint bit for bit', async () => {
    const src = openModel(DEFAULT_MODEL);
    const opts = (out: string, onTrain?: (p: { step: number }) => void) => quantizeModel(src, be, {
      method: 'dbllm', bits: 2, group: 128, calib: 'c4', nsamples: 2, seqlen: 128, out: join(dir, out), reportErrors: false,
      options: { steps: 4, lr: 1e-3, gradAccum: 2, saveEvery: 2 }, onTrain,
    });
    const whole = await opts('whole');
    const losses = (whole.training as { losses: number[] }).losses;
    assert.equal(losses.length, 4);
    assert.ok(losses[3]! < 0.9 * losses[0]!, `distillation loss ${losses.map((l) => l.toFixed(4))}`);
    await assert.rejects(opts('killed', (p) => { if (p.step === 3) throw new Error('killed'); }), /killed/);
    const resumed = await opts('killed');
    assert.equal((resumed.training as { resumedFrom: number }).resumedFrom, 2);
    assert.deepEqual((resumed.training as { losses: number[] }).losses, losses.slice(2));
    assert.deepEqual(readFileSync(join(dir, 'killed', 'model.safetensors')), readFileSync(join(dir, 'whole', 'model.safetensors')));
  });
});
