// One inverse factor per input (quant/core/inverseFactor.ts) for PB-LLM and BiLLM, as GPTQ (gptq.test.ts):
// three readers of one H factor it once and get the bits of factoring each, dead columns and damping
// retries included; the last reader drops it; other settings or another provider factor again; the
// pipeline factors once per distinct input (4 a block, not 7) for every method of the family.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { factorKey, keepFactor, takeFactor } from '../../src/quant/core/inverseFactor.js';
import { billm, BILLM } from '../../src/quant/methods/billm.js';
import { GPTQ } from '../../src/quant/methods/gptq.js';
import { pbllm, PBLLM } from '../../src/quant/methods/pbllm.js';
import { quantizeBlocks } from '../../src/quant/pipeline.js';
import { resolveOptions } from '../../src/quant/options.js';
import { calibrationSet } from '../../src/data/calibration.js';
import { openModel } from '../../src/io/open.js';
import { DATA, TINY656K } from '../helpers/paths.js';
import { layer } from './rand.js';

const { kernels, note } = selectKernels('js', 1);

/** The js provider with its Cholesky counted. */
function counting(name: typeof kernels.name = 'js'): { linalg: typeof kernels; count: () => number } {
  let n = 0;
  return { linalg: { ...kernels, name, cholesky: (A: Float64Array, k: number) => { n++; return kernels.cholesky!(A, k); } }, count: () => n };
}

/** H [cols, cols] of correlated inputs with column 5 dead (its row and column 0). */
function hessian(cols: number): Float64Array {
  const { H } = layer(7, 8, cols);
  for (let r = 0; r < cols; r++) { H[5 * cols + r] = 0; H[r * cols + 5] = 0; }
  return H;
}

const cases = [
  ['pbllm', (W: Float32Array, rows: number, H: Float64Array, o: object) => pbllm(W, rows, 64, H, { lowFrac: 0.8, groupSize: 32, ...o })],
  ['billm', (W: Float32Array, rows: number, H: Float64Array, o: object) => billm(W, rows, 64, H, { blockSize: 16, ...o })],
] as const;

for (const [name, run] of cases) {
  test(`${name}: readers of one input share its inverse factor: factored once, the same bits as factoring each`, () => {
    const H = hessian(64), Ws = [1, 2, 3].map((s) => layer(100 + s, 8 + s, 64).W);
    const c = counting();
    const alone = Ws.map((W, i) => run(W, 9 + i, H, { linalg: c.linalg }));
    assert.equal(c.count(), 3, 'each factored on its own');
    const shared = Ws.map((W, i) => run(W, 9 + i, H, { linalg: c.linalg, readers: 3 }));
    assert.equal(c.count(), 4, 'factored once for three readers');
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(shared[i]!.Q, alone[i]!.Q, `${name} reader ${i}: Q`);
      assert.deepEqual(shared[i]!.notes, alone[i]!.notes);
      assert.equal(shared[i]!.dampUsed, alone[i]!.dampUsed);
      assert.ok(alone[i]!.notes.some((x) => /1 dead input column/.test(x)), 'the dead column is every reader\'s note');
    }
    // the last reader dropped it; other damping and another provider factor again
    run(Ws[0]!, 9, H, { linalg: c.linalg, readers: 3 });
    assert.equal(c.count(), 5);
    run(Ws[0]!, 9, H, { linalg: c.linalg, readers: 2, percdamp: 0.1 });
    run(Ws[0]!, 9, H, { linalg: c.linalg, readers: 2 });
    assert.equal(c.count(), 7, 'damping 0.01 does not take the factor kept with 0.1');
    const other = counting('wasm'); // another provider object (the js kernels under another name)
    run(Ws[0]!, 9, H, { linalg: other.linalg, readers: 2 });
    assert.equal(other.count(), 1, 'another provider does not take it');
    assert.equal(c.count(), 7);
  });

  test(`${name}: a shared factor keeps the damping retries' notes and damping for every reader`, () => {
    const n = 64, H = new Float64Array(n * n);
    for (let i = 0; i < n; i++) H[i * n + i] = 1;
    H[1] = H[n] = 1.05; // not positive definite with damping 0.01, positive with 0.1
    const W = Float32Array.from({ length: 4 * n }, (_, i) => Math.sin(i) * 0.1);
    const a = run(W, 4, H, { readers: 2 }), b = run(W, 4, H, { readers: 2 });
    assert.equal(a.dampUsed, 0.1);
    assert.equal(b.dampUsed, 0.1);
    assert.equal(a.notes.filter((x) => /^Cholesky failed with damping 0.01; succeeded with 0.1/.test(x)).length, 1);
    assert.deepEqual(b.notes, a.notes);
    assert.deepEqual(b.Q, a.Q);
  });
}

test('takeFactor: nothing for one reader, the kept factor for the key and provider it was kept with, counted off', () => {
  const H = new Float64Array(4), f = { Hinv: new Float64Array(4), dampUsed: 0.01, notes: [] };
  const share = { readers: 3, key: factorKey(false, 0.01, 3) };
  keepFactor(H, { ...share, readers: 1 }, f);
  assert.equal(takeFactor(H, share), undefined, 'one reader keeps nothing');
  keepFactor(H, share, f);
  assert.equal(takeFactor(H, { ...share, readers: 1 }), undefined, 'one reader takes nothing');
  assert.equal(takeFactor(H, { ...share, key: factorKey(true, 0.01, 3) }), undefined, 'act-order is another factor');
  const second = takeFactor(H, share), third = takeFactor(H, share);
  assert.equal(second?.Hinv, f.Hinv);
  assert.equal(second?.last, false);
  assert.equal(third?.Hinv, f.Hinv);
  assert.equal(third?.last, true, 'the third of three readers is the last: it may free the factor');
  assert.equal(takeFactor(H, share), undefined, 'gone after the last reader');
});

test('the pipeline factors once per distinct input (4 a block, not 7) for GPTQ, PB-LLM and BiLLM', async () => {
  const be = new CpuBackend(kernels, note), ck = openModel(TINY656K);
  const windows = calibrationSet('c4', ck.tokenizer, { nsamples: 2, seqlen: 64, seed: 0, dataDir: DATA }).windows;
  for (const [method, bits, group, opts] of [[GPTQ, 4, 32, {}], [PBLLM, 1, 32, { lowFrac: 0.9 }], [BILLM, 1, 32, {}]] as const) {
    const c = counting();
    let layers = 0;
    await quantizeBlocks(ck, be, {
      method, spec: { bits, groupSize: group, sym: false }, options: resolveOptions(method, opts), seed: 0,
      calibration: windows, reportErrors: false, linalg: c.linalg, onLayer: () => { layers++; },
    });
    assert.equal(layers, 14, method.name);
    assert.equal(c.count(), 8, `${method.name}: 4 factors in each of 2 blocks`);
  }
});
