// `study --kld`: each quantized cell also gets its KL-divergence against the study's model on every perplexity set,
// shown as KLD and Top-1 columns, the FP cell (the base) at 0 and 100; the numbers are evaluateKld's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../../src/io/open.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { evaluateKld } from '../../src/eval/kld.js';
import { runStudy } from '../../src/study/runner.js';
import { parseGrid } from '../../src/study/grid.js';
import { TINY656K, DATA } from '../helpers/paths.js';

const { kernels, note } = selectKernels('js');
const be = new CpuBackend(kernels, note);

test('study --kld: KLD and Top-1 columns per set, FP cell 0 / 100, values equal evaluateKld on the cell checkpoint', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lowbit-study-kld-'));
  try {
    const gridFile = join(out, 'grid.json');
    writeFileSync(gridFile, JSON.stringify({ cells: [{ method: 'fp16' }, { method: 'rtn', wbits: 3, group: 128 }] }));
    const ck = openModel(TINY656K);
    const opts = { out, ppl: ['tinystories'], seqlen: 128, limit: 2, calib: 'c4', nsamples: 2, seed: 0, dataDir: DATA, speed: false as const, kld: true };
    await runStudy(ck, be, parseGrid(gridFile), opts);
    const md = readFileSync(join(out, 'table.md'), 'utf8');
    assert.match(md, /\| Method \| #W \| #G \| TinyStories \| KLD TinyStories \| Top-1 TinyStories \|/);
    assert.match(md, /\| FP16 \| 16 \| - \| [\d.]+ \| 0\.00000 \| 100\.00 \|/);
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    const cell = json.cells[1];
    assert.equal(cell.settings.kld, true);
    const want = await evaluateKld(openModel(join(out, 'checkpoints', cell.key)), ck, be, 'tinystories', { seqlen: 128, limit: 2, dataDir: DATA });
    const got = cell.results.kld.tinystories;
    assert.equal(got.kl.mean, want.kl.mean);
    assert.equal(got.kl.sameTop, want.kl.sameTop);
    assert.ok(want.kl.mean > 0.01, `RTN W3 KLD ${want.kl.mean}`);
    assert.ok(Math.abs(got.pplQuant / cell.results.ppl.tinystories.ppl - 1) < 1e-9, 'the KLD pass\'s PPL is the protocol\'s');
    const row = md.split('\n').find((l) => l.startsWith('| RTN | 3 | 128 |'))!;
    assert.ok(row.includes(`| ${want.kl.mean.toFixed(5)} | ${(100 * want.kl.sameTop).toFixed(2)} |`), row);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
