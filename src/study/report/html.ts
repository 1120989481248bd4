import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import { LowbitError } from '../../errors.js';
import type { CellRecord } from '../journal.js';
import { columnsFor, costNote, formatValue } from './table.js';
import { studyPlots } from './plots.js';

/**
 * report.html: one self-contained page (no network when it is viewed, file:// works) with the study's
 * tables, the same columns as table.md, and its plots. Vega, Vega-Lite and vega-embed are read from
 * node_modules when the report is written and inlined as <script> elements; the plot specs and their
 * data are inlined as JSON.
 */

/** The UMD builds that a browser <script> loads, in load order (vega-lite needs vega, vega-embed both). */
export const PLOT_LIBRARIES = ['vega', 'vega-lite', 'vega-embed'] as const;

const requireHere = createRequire(import.meta.url);

/** A library's browser build: the file its package.json names under `unpkg` (the UMD bundle), and its version. */
export function libraryScript(name: (typeof PLOT_LIBRARIES)[number]): { version: string; file: string; code: string } {
  // the packages export only their entry points, so walk up from the entry to the package's own package.json
  let dir = dirname(requireHere.resolve(name));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version: string; unpkg?: string };
  if (pkg.name !== name || !pkg.unpkg) throw new LowbitError(`cannot find the browser build of ${name} (looked in ${dir}); reinstall lowbit's dependencies`);
  const file = join(dir, pkg.unpkg);
  return { version: pkg.version, file, code: readFileSync(file, 'utf8') };
}

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Text inside a <script> element must not close it early. */
const scriptText = (s: string) => s.replace(/<\/(script)/gi, '<\\/$1');

/** JSON for a <script type="application/json">: `<` escaped so no markup can end the element. */
const jsonText = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

/** The Markdown header the runner writes (`# title`, then paragraphs, `code` spans) as HTML. */
function headerHtml(header: string): { title: string; html: string } {
  const inline = (s: string) => escapeHtml(s).replace(/`([^`]+)`/g, '<code>$1</code>');
  const blocks = header.split(/\n{2,}/).map((b) => b.trim()).filter(Boolean);
  const title = blocks[0]?.startsWith('# ') ? blocks.shift()!.slice(2) : 'lowbit study';
  return { title, html: [`<h1>${inline(title)}</h1>`, ...blocks.map((b) => `<p>${inline(b)}</p>`)].join('\n') };
}

function tableHtml(records: readonly CellRecord[]): string {
  const cols = columnsFor(records);
  const row = (r: CellRecord) => `<tr data-cell="${escapeHtml(r.key)}">${cols.map((c) => {
    const v = c.value(r);
    return `<td${typeof v === 'number' ? ' class="num"' : ''}>${escapeHtml(formatValue(c, v))}</td>`;
  }).join('')}</tr>`;
  return [
    '<table id="results">',
    `<thead><tr>${cols.map((c) => `<th data-col="${escapeHtml(c.key)}">${escapeHtml(c.title)}</th>`).join('')}</tr></thead>`,
    `<tbody>\n${records.map(row).join('\n')}\n</tbody>`,
    '</table>',
  ].join('\n');
}

/** Renders every plot into its container; a failure is written into the page and to the console. */
const BOOTSTRAP = `
const plots = JSON.parse(document.getElementById('lowbit-plots').textContent);
for (const p of plots) {
  vegaEmbed('#plot-' + p.id, p.spec, { actions: false, renderer: 'svg' }).catch((e) => {
    document.getElementById('plot-' + p.id).textContent = 'plot failed: ' + e.message;
    console.error('plot ' + p.id + ' failed:', e);
  });
}`;

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; }
.plot { margin: 0.5em 0 2em; }
footer { color: #777; font-size: 12px; margin-top: 3em; }`;

/** The whole page as a string. */
export function htmlReport(records: readonly CellRecord[], header: string): string {
  const { title, html } = headerHtml(header);
  const plots = studyPlots(records, columnsFor(records));
  const libs = PLOT_LIBRARIES.map((name) => ({ name, ...libraryScript(name) }));
  const note = costNote(records);
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${STYLE}</style>`,
    ...libs.map((l) => `<script data-library="${l.name}@${l.version}">${scriptText(l.code)}</script>`),
    '</head><body>',
    html,
    '<h2>Results</h2>',
    tableHtml(records),
    ...(note ? [`<p class="note">${escapeHtml(note)}</p>`] : []),
    ...plots.flatMap((p) => [`<h2>${escapeHtml(p.title)}</h2>`, `<p class="note">${escapeHtml(p.note)}</p>`, `<div class="plot" id="plot-${p.id}"></div>`]),
    `<script type="application/json" id="lowbit-plots">${jsonText(plots.map((p) => ({ id: p.id, spec: p.spec })))}</script>`,
    `<script type="application/json" id="lowbit-results">${jsonText(records)}</script>`,
    `<script>${BOOTSTRAP}</script>`,
    `<footer>Written by lowbit; plots drawn with ${libs.map((l) => `${l.name} ${l.version}`).join(', ')} (inlined; the page needs no network). ` +
      'Every cell record is embedded in the element #lowbit-results.</footer>',
    '</body></html>',
    '',
  ].join('\n');
}

/** Writes report.html (atomically) to `path`. */
export function writeHtmlReport(path: string, records: readonly CellRecord[], header: string): void {
  writeFileAtomic(path, htmlReport(records, header));
}
