// report.html without a browser: the tables, the embedded data and plot specs, the inlined libraries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { htmlReport, libraryScript, PLOT_LIBRARIES } from '../../src/study/report/html.js';
import { readStudy } from '../../src/study/report/writers.js';
import { columnsFor, formatValue } from '../../src/study/report/table.js';
import type { CellRecord } from '../../src/study/journal.js';
import { UsageError } from '../../src/errors.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';

const FIXTURE = join(PACKAGE_ROOT, 'test', 'fixtures', 'study-html');
const { records, header } = readStudy(FIXTURE);

/** The text of `<script ...attrs>...</script>` elements whose opening tag matches `open`. */
function scripts(html: string, open: RegExp): string[] {
  return [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)].filter((m) => open.test(m[1]!)).map((m) => m[2]!);
}
function embedded(html: string, id: string): unknown {
  const [text] = scripts(html, new RegExp(`type="application/json" id="${id}"`));
  assert.ok(text !== undefined, `no #${id} in the page`);
  return JSON.parse(text);
}

test('report.html: the table has table.md\'s columns and one row per cell, values formatted as table.md does', () => {
  const html = htmlReport(records, header);
  const cols = columnsFor(records);
  const heads = [...html.matchAll(/<th data-col="([^"]+)">([^<]*)<\/th>/g)];
  assert.deepEqual(heads.map((m) => m[1]), cols.map((c) => c.key));
  assert.ok(cols.some((c) => c.key === 'kld.wikitext2') && cols.some((c) => c.key === 'mmlu.avg') && cols.some((c) => c.key === 'acc.piqa'));
  const rows = [...html.matchAll(/<tr data-cell="([^"]+)">([\s\S]*?)<\/tr>/g)];
  assert.deepEqual(rows.map((m) => m[1]), ['fp16', 'rtn-w4-g32', 'rtn-w3-g32', 'gptq-w4-g32', 'gptq-w3-g32']);
  for (const [i, r] of records.entries()) {
    const cells = [...rows[i]![2]!.matchAll(/<td[^>]*>([^<]*)<\/td>/g)].map((m) => m[1]);
    assert.deepEqual(cells, cols.map((c) => formatValue(c, c.value(r)).replace(/&/g, '&amp;')));
  }
  assert.match(html, /<h1>lowbit study: html-fixture on [^<]*TinyStories-656K<\/h1>/);
  assert.match(html, /<td class="num">624\.53<\/td>/); // RTN W4 WikiText2 perplexity, as in table.md
});

test('report.html: records and plot specs embedded; plots only for what the records have', () => {
  const html = htmlReport(records, header);
  assert.deepEqual(embedded(html, 'lowbit-results'), JSON.parse(JSON.stringify(records)));
  const plots = embedded(html, 'lowbit-plots') as { id: string; spec: { data: { values: Record<string, unknown>[] } } }[];
  assert.deepEqual(plots.map((p) => p.id), ['ppl', 'accuracy', 'kld', 'layer-error']);
  for (const p of plots) assert.match(html, new RegExp(`<div class="plot" id="plot-${p.id}"></div>`));

  // perplexity: each quantized cell on each set, at its bits; the FP cell as the baseline of each set
  const ppl = plots[0]!.spec.data.values;
  const quantized = records.filter((r) => r.cell.method !== 'fp16');
  const res = (r: CellRecord) => r.results as { ppl: Record<string, { ppl: number }> };
  assert.equal(ppl.filter((v) => v.kind === 'cell').length, quantized.length * 2);
  const gptq3 = ppl.find((v) => v.cell === 'gptq-w3-g32' && v.panel === 'TinyStories')!;
  assert.equal(gptq3.value, res(records[4]!).ppl.tinystories!.ppl);
  assert.equal(gptq3.bits, 3);
  assert.equal(gptq3.series, 'GPTQ g32');
  assert.deepEqual(ppl.filter((v) => v.kind === 'fp').map((v) => v.value), [res(records[0]!).ppl.wikitext2!.ppl, res(records[0]!).ppl.tinystories!.ppl]);
  // KL-divergence: the FP cell's 0 cannot sit on a log axis, so no baseline
  assert.equal(plots[2]!.spec.data.values.filter((v) => v.kind === 'fp').length, 0);
  // per-layer errors: every layer of every quantized cell, in order
  const layers = plots[3]!.spec.data.values;
  const expected = quantized.flatMap((r) => (r.results.quant as { layers: { name: string; error: number }[] }).layers.map((l, index) => ({ cell: r.key, index, layer: l.name, error: l.error })));
  assert.equal(expected.length, 4 * 14);
  assert.deepEqual(layers.map((v) => ({ cell: v.cell, index: v.index, layer: v.layer, error: v.error })), expected);

  // a study of perplexity only (no KLD, tasks, MMLU) and an FP cell alone
  const pplOnly = records.map((r) => ({ ...r, results: { ppl: r.results.ppl, quant: r.results.quant } }));
  const ids = (rs: readonly CellRecord[]) => (embedded(htmlReport(rs, header), 'lowbit-plots') as { id: string }[]).map((p) => p.id);
  assert.deepEqual(ids(pplOnly), ['ppl', 'layer-error']);
  assert.deepEqual(ids(records.slice(0, 1)), []);
});

test('report.html: vega, vega-lite and vega-embed inlined whole, no script or stylesheet from the network', () => {
  const html = htmlReport(records, header);
  for (const name of PLOT_LIBRARIES) {
    const lib = libraryScript(name);
    const [code] = scripts(html, new RegExp(`data-library="${name}@${lib.version.replace(/\./g, '\\.')}"`));
    assert.ok(code !== undefined, `${name} is not inlined`);
    assert.equal(code.length, lib.code.length);
    assert.ok(code.length > 50_000, `${name}: ${lib.file} is not a browser bundle`);
  }
  assert.doesNotMatch(html, /<script[^>]*\ssrc=/i);
  assert.doesNotMatch(html, /<link\b/i);
  assert.doesNotMatch(html, /\b(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i);
  assert.doesNotMatch(html, /@import/);
  assert.match(html, /vegaEmbed\('#plot-' \+ p\.id, p\.spec, \{ actions: false/);
});

test('report.html: markup in a record cannot end an embedded script or inject elements', () => {
  const evil = '</script><script>alert(1)</script><b>';
  const rs = records.map((r, i) => (i === 1 ? { ...r, key: evil, cell: { ...r.cell, method: evil } } : r));
  const html = htmlReport(rs, `# a <i>study</i>\n\n${evil}`);
  assert.equal(scripts(html, /^$/).length, 1); // the bootstrap only: no injected script element
  assert.doesNotMatch(html.replace(/<script[^>]*>[\s\S]*?<\/script>/g, ''), /<b>|<i>/);
  assert.equal((embedded(html, 'lowbit-results') as CellRecord[])[1]!.key, evil);
});

test('readStudy: a folder without a study is an error naming it', () => {
  const empty = mkdtempSync(join(tmpdir(), 'lowbit-notstudy-'));
  assert.throws(() => readStudy(empty), (e: unknown) => e instanceof UsageError && e.message.includes(empty) && /no results\.json/.test(e.message));
  assert.throws(() => readStudy(join(empty, 'missing')), /no such folder/);
  writeFileSync(join(empty, 'results.json'), '{"cells": [');
  assert.throws(() => readStudy(empty), /results\.json is not JSON/);
  writeFileSync(join(empty, 'results.json'), JSON.stringify({ grid: { name: 'x' }, cells: [{ key: 'fp16' }] }));
  assert.throws(() => readStudy(empty), /no list of cell records/);
  // a results.json from before the header was stored: a title from its grid and model
  const { header: _h, ...old } = JSON.parse(readFileSync(join(FIXTURE, 'results.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(empty, 'results.json'), JSON.stringify(old));
  assert.equal(readStudy(empty).header, `# lowbit study: html-fixture on ${String(old.model)}`);
  assert.equal(readStudy(empty).records.length, 5);
});
