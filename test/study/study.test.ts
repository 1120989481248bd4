import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../../src/io/open.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { backendsOf, runStudy, type StudyEvent } from '../../src/study/runner.js';
import { FP16, GRID_EVAL, cellKey, parseGrid } from '../../src/study/grid.js';
import type { CellCost } from '../../src/study/cost.js';
import { TINY656K, DATA } from '../helpers/paths.js';

const { kernels, note } = selectKernels('auto', 2);
const be = new CpuBackend(kernels, note);

test('paper-ptq grid: FP16, RTN/GPTQ/AWQ at W8/4/3/2 (g128 and per-channel), SmoothQuant W8A8/W6A6/W4A4, QuIP W4/3/2, PB-LLM 2/1.7, BiLLM 1.1, DB-LLM W2 g128', () => {
  const g = parseGrid('paper-ptq');
  assert.equal(g.cells.length, 35);
  assert.deepEqual(g.cells.filter((c) => c.method === 'dbllm').map(cellKey), ['dbllm-w2-g128-s200']);
  assert.deepEqual(g.cells.filter((c) => c.method === 'smoothquant').map(cellKey), ['smoothquant-w8-pc', 'smoothquant-w6-pc-a6', 'smoothquant-w4-pc-a4']);
  assert.deepEqual(g.cells.filter((c) => c.method === 'pbllm').map(cellKey), ['pbllm-w1-g128-lf0.8571', 'pbllm-w1-g128']); // 2 and 1.7 bits
  assert.ok(g.cells.some((c) => cellKey(c) === 'billm-w1-g128'));
  assert.deepEqual(g.cells.filter((c) => c.method === 'quip').map(cellKey), ['quip-w4-pc', 'quip-w3-pc', 'quip-w2-pc']);
  assert.ok(g.cells.some((c) => cellKey(c) === 'awq-w3-g128'));
  assert.deepEqual(g.cells.slice(0, 3).map(cellKey), ['fp16', 'rtn-w8-g128', 'rtn-w8-pc']);
  assert.ok(g.cells.some((c) => cellKey(c) === 'gptq-w2-pc'));
});

function writeGrid(cells: unknown[]): string {
  const f = join(mkdtempSync(join(tmpdir(), 'lowbit-grid-')), 'grid.json');
  writeFileSync(f, JSON.stringify({ cells }));
  return f;
}

test('paper-loraft grid: FP16, NF4 and ICQ (double-quantized), QLoRA, IR-QLoRA, QA-LoRA with --ft-steps; scored on MMLU and the five tasks', () => {
  const g = parseGrid('paper-loraft', { ftSteps: 7 });
  assert.deepEqual(g.cells.map(cellKey), ['fp16', 'nf4-w4-g64-dq', 'icq-w4-g64-dq', 'qlora-s7', 'irqlora-s7', 'qalora-s7']);
  assert.deepEqual(g.cells.filter((c) => c.finetune).map((c) => [c.wbits, c.group]), [[4, 64], [4, 64], [4, 32]]);
  assert.deepEqual(GRID_EVAL['paper-loraft'], { ppl: [], tasks: ['mmlu', 'piqa', 'arc_easy', 'arc_challenge', 'hellaswag', 'winogrande'] });
  assert.throws(() => parseGrid(writeGrid([{ method: 'qlora', wbits: 3 }])), /a qlora cell takes "steps" and "data" only/);
});

test('study: tables written, finished cells skipped on rerun, --force recomputes', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lowbit-study-'));
  const gridFile = join(out, 'grid.json');
  writeFileSync(gridFile, JSON.stringify({ cells: [{ method: 'fp16' }, { method: 'rtn', wbits: 4, group: 32 }, { method: 'gptq', wbits: 4, group: 32 }] }));
  const grid = parseGrid(gridFile);
  const ck = openModel(TINY656K);
  const opts = { out, ppl: ['tinystories'], seqlen: 512, limit: 2, calib: 'c4', nsamples: 4, seed: 0, dataDir: DATA };
  const events: StudyEvent[] = [];
  const first = await runStudy(ck, be, grid, { ...opts, onEvent: (e) => events.push(e) });
  assert.equal(events.filter((e) => e.kind === 'cell-done').length, 3);
  const md = readFileSync(join(out, 'table.md'), 'utf8');
  assert.match(md, /\| Method \| #W \| #G \| TinyStories \|/);
  assert.match(md, /\| GPTQ \| 4 \| 32 \|/);
  // what each cell costs: size of the weight files, stored bits per linear-layer weight, decode speed (FP16 too)
  assert.match(md, /\| TinyStories \| Size \(MiB\) \| Bits\/W \| Decode tok\/s \|/);
  assert.match(md, /\| FP16 \| 16 \| - \| [\d.]+ \| 1\.25 \| 16\.00 \| [\d,.]+ \|/);
  assert.match(md, /\| RTN \| 4 \| 32 \| [\d.]+ \| 0\.76 \| 5\.31 \| [\d,.]+ \|/);
  assert.match(md, /Decode tok\/s: median of 3 runs of 16 greedy tokens after a 32-token prompt/);
  const csv = readFileSync(join(out, 'table.csv'), 'utf8').trim().split('\n');
  assert.equal(csv.length, 4);
  const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.equal(json.cells[2].settings.calib, 'c4');
  assert.ok(json.cells[2].results.ppl.tinystories.ppl > 1);
  assert.equal(csv[0], 'Method,#W,#G,TinyStories,Size (MiB),Bits/W,Decode tok/s,Σ layer error');
  const [fp, rtn] = json.cells.map((c: { results: { cost: CellCost } }) => c.results.cost) as CellCost[];
  assert.equal(fp!.weightBytes, 1_314_128);
  assert.equal(fp!.bitsPerWeight.storedLinear, 16);
  assert.equal(rtn!.bitsPerWeight.storedLinear, 5.3125); // float32 scales: 4 + (32 + 4) / 32 + g_idx
  assert.equal(rtn!.bitsPerWeight.nominal, 4);
  for (const c of [fp!, rtn!]) {
    const d = c.speed!.decode.tokensPerSecond;
    assert.equal(d.runs.length, 3);
    assert.ok(d.runs.every((v) => Number.isFinite(v) && v > 0) && d.min <= d.median && d.median <= d.max);
  }

  const again: StudyEvent[] = [];
  const second = await runStudy(ck, be, grid, { ...opts, onEvent: (e) => again.push(e) });
  assert.equal(again.filter((e) => e.kind === 'cell-skip').length, 3);
  assert.deepEqual(second.records.map((r) => r.results), first.records.map((r) => r.results));

  // changed settings (a different limit) are not mistaken for finished cells
  const changed: StudyEvent[] = [];
  await runStudy(ck, be, { name: 'x', cells: grid.cells.slice(0, 1) }, { ...opts, limit: 1, onEvent: (e) => changed.push(e) });
  assert.equal(changed.filter((e) => e.kind === 'cell-done').length, 1);

  const forced: StudyEvent[] = [];
  await runStudy(ck, be, { name: 'x', cells: grid.cells.slice(1, 2) }, { ...opts, force: true, onEvent: (e) => forced.push(e) });
  assert.equal(forced.filter((e) => e.kind === 'cell-done').length, 1);
});

test('study without the speed check: size and bits recorded, decode speed a dash', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lowbit-study-'));
  const { records } = await runStudy(openModel(TINY656K), be, { name: 'fp16', cells: [FP16] }, {
    out, ppl: ['tinystories'], seqlen: 512, limit: 1, calib: 'c4', nsamples: 4, seed: 0, dataDir: DATA, speed: false,
  });
  assert.equal((records[0]!.results.cost as CellCost).speed, null);
  const md = readFileSync(join(out, 'table.md'), 'utf8');
  assert.match(md, /\| FP16 \| 16 \| - \| [\d.]+ \| 1\.25 \| 16\.00 \| – \|/);
  assert.match(md, /Decode tok\/s: not measured \(--no-speed\)/);
  // report.html is rewritten with the tables after every cell, and results.json keeps the header it is rebuilt with
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /<tr data-cell="fp16"><td>FP16<\/td><td class="num">16<\/td>/);
  assert.equal(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).header, md.split('\n\n| Method')[0]);
});

test('grid files: bad cells are rejected with the file and cell named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-grid-'));
  const f = join(dir, 'g.json');
  writeFileSync(f, JSON.stringify({ cells: [{ method: 'rtn', wbits: 12, group: 128 }] }));
  assert.throws(() => parseGrid(f), /g\.json cell 0: wbits must be 1–8/);
  writeFileSync(f, '{not json');
  assert.throws(() => parseGrid(f), /g\.json: not a valid grid JSON file/);
  assert.throws(() => parseGrid(join(dir, 'missing.json')), /neither a built-in grid/);
});

test('the table header names the backends the cells\' perplexities ran on (a queue\'s workers may differ from this process)', () => {
  const be = new CpuBackend(selectKernels('js', 1).kernels, 'js, 1 thread');
  const rec = (...backends: string[]) => ({
    key: 'k', cell: FP16, settings: {}, finishedAt: '', seconds: 0,
    results: { ppl: Object.fromEntries(backends.map((b, i) => [`set${i}`, { ppl: 1, backend: b }])) },
  });
  assert.deepEqual(backendsOf([], be), [be.description]);
  assert.deepEqual(backendsOf([rec()], be), [be.description]);
  assert.deepEqual(backendsOf([rec('webgpu: a; b'), rec('webgpu: a; b', 'cpu: x')], be), ['webgpu: a; b', 'cpu: x']);
});
