// report.html in a real browser: Debian's headless Chromium, driven by playwright-core, offline, from file://.
// `lowbit report` rebuilds the page from the fixture study (test/fixtures/study-html); every plot must draw its
// marks with no console error and no request leaving file://. The screenshot goes to test-artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { readStudy } from '../../src/study/report/writers.js';
import { columnsFor } from '../../src/study/report/table.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';
import { runCli } from '../cli/helpers.js';

const FIXTURE = join(PACKAGE_ROOT, 'test', 'fixtures', 'study-html');
/** Debian's package (`apt-get install chromium`, .ci/apt-packages.txt); LOWBIT_CHROMIUM points elsewhere. */
const CHROMIUM = process.env.LOWBIT_CHROMIUM ?? '/usr/bin/chromium';
const NO_CHROMIUM = existsSync(CHROMIUM) ? false : `needs Chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set LOWBIT_CHROMIUM)`;
export const SCREENSHOT = join(PACKAGE_ROOT, 'test-artifacts', 'report-html.png');

/** What each plot must draw, counted from the records: points (symbols), lines, and the FP cell's dashed rules. */
function expectedMarks() {
  const { records } = readStudy(FIXTURE);
  const cols = columnsFor(records);
  const quantized = records.filter((r) => r.cell.method !== 'fp16');
  const series = new Set(quantized.map((r) => `${r.cell.method} ${r.cell.group}`)).size;
  const panels = (keep: (k: string) => boolean) => cols.filter((c) => keep(c.key)).length;
  const bits = (n: number, fpRules: boolean) => ({ symbols: quantized.length * n, lines: series * n, rules: fpRules ? n : 0 });
  const layers = quantized.reduce((s, r) => s + (r.results.quant as { layers: unknown[] }).layers.length, 0);
  return {
    records,
    marks: {
      'plot-ppl': bits(panels((k) => k.startsWith('ppl.')), true),
      'plot-accuracy': bits(panels((k) => k.startsWith('acc.') || k.startsWith('mmlu.')), true),
      'plot-kld': bits(panels((k) => k.startsWith('kld.')), false),
      'plot-layer-error': { symbols: layers, lines: quantized.length, rules: 0 },
    } as Record<string, { symbols: number; lines: number; rules: number }>,
  };
}

test('report.html in headless Chromium: tables, every plot drawn, no errors, no network', { skip: NO_CHROMIUM, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-report-'));
  copyFileSync(join(FIXTURE, 'results.json'), join(dir, 'results.json'));
  const cli = runCli(['report', dir]);
  assert.equal(cli.status, 0, cli.stderr);
  const page = join(dir, 'report.html');
  assert.equal(cli.stdout, `written: ${page} (5 cells)\n`);

  const { records, marks } = expectedMarks();
  assert.deepEqual(marks['plot-ppl'], { symbols: 8, lines: 4, rules: 2 }); // 4 quantized cells, 2 series, 2 sets
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] }); // CI runs as root
  try {
    const context = await browser.newContext({ offline: true, viewport: { width: 1400, height: 900 } });
    const tab = await context.newPage();
    const problems: string[] = [];
    tab.on('console', (m) => { if (m.type() === 'error' || /\bWARN\b/.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`); });
    tab.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    tab.on('request', (r) => { if (!r.url().startsWith('file:')) problems.push(`network request: ${r.url()}`); });
    await tab.goto(pathToFileURL(page).href);
    // vega-embed has drawn (or written its failure into) every container; what it drew is checked below
    await tab.waitForFunction(() => Array.from(document.querySelectorAll('.plot')).every((d) => d.querySelector('svg, canvas') || /failed/.test(d.textContent ?? '')), null, { timeout: 30_000 });

    const plots = await tab.$$eval('.plot', (ds) => ds.map((d) => d.id));
    assert.deepEqual(plots, Object.keys(marks));
    for (const id of plots) {
      const count = (sel: string) => tab.$$eval(`#${id} svg ${sel}`, (xs) => xs.filter((x) => (x.getAttribute('d') ?? 'line') !== '').length);
      const drawn = { symbols: await count('g.mark-symbol.role-mark > path'), lines: await count('g.mark-line.role-mark > path'), rules: await count('g.mark-rule.role-mark > line') };
      assert.deepEqual(drawn, marks[id], `${id}: marks drawn`);
      const box = await tab.$eval(`#${id} svg`, (s) => { const r = s.getBoundingClientRect(); return { w: r.width, h: r.height }; });
      assert.ok(box.w > 200 && box.h > 150, `${id}: svg ${box.w}×${box.h}`);
    }

    const rows = await tab.$$eval('#results tbody tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)));
    assert.equal(rows.length, records.length);
    assert.deepEqual(rows.map((r) => r[0]), ['FP16', 'RTN', 'RTN', 'GPTQ', 'GPTQ']);
    assert.deepEqual(rows.map((r) => r[1]), ['16', '4', '3', '4', '3']);
    const heads = await tab.$$eval('#results thead th', (ths) => ths.map((th) => th.textContent));
    assert.deepEqual(heads, columnsFor(records).map((c) => c.title));

    mkdirSync(join(PACKAGE_ROOT, 'test-artifacts'), { recursive: true });
    await tab.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(statSync(SCREENSHOT).size > 10_000);
    t.diagnostic(`screenshot: ${SCREENSHOT}`);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
