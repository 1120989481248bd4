import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import { UsageError } from '../../errors.js';
import type { CellRecord } from '../journal.js';
import { columnsFor, costNote, formatValue } from './table.js';
import { writeHtmlReport } from './html.js';

function markdownReport(records: readonly CellRecord[], header: string): string {
  const cols = columnsFor(records);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    header, '',
    line(cols.map((c) => c.title)),
    line(cols.map(() => '---')),
    ...records.map((r) => line(cols.map((c) => formatValue(c, c.value(r))))),
    ...(costNote(records) ? ['', costNote(records)] : []),
    '',
  ].join('\n');
}

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvReport(records: readonly CellRecord[]): string {
  const cols = columnsFor(records);
  return [cols.map((c) => csvCell(c.title)).join(','), ...records.map((r) => cols.map((c) => csvCell(c.value(r))).join(','))].join('\n') + '\n';
}

/**
 * Writes table.md, table.csv, results.json (every record with all its settings, and the tables' header)
 * and report.html (tables and plots, html.ts) into `out`.
 */
export function writeReports(out: string, records: readonly CellRecord[], header: string, meta: Record<string, unknown>): string[] {
  const files = [join(out, 'table.md'), join(out, 'table.csv'), join(out, 'results.json'), join(out, 'report.html')];
  writeFileAtomic(files[0]!, markdownReport(records, header));
  writeFileAtomic(files[1]!, csvReport(records));
  writeFileAtomic(files[2]!, JSON.stringify({ header, ...meta, cells: records }, null, 2) + '\n');
  writeHtmlReport(files[3]!, records, header);
  return files;
}

/** A study folder's records and header, read back from its results.json; a folder that has none is a UsageError naming it. */
export function readStudy(dir: string): { records: CellRecord[]; header: string } {
  const notStudy = (why: string) => new UsageError(`${dir} is not a study folder (${why}; \`lowbit study --out DIR\` makes one)`);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw notStudy('no such folder');
  const path = join(dir, 'results.json');
  if (!existsSync(path)) throw notStudy('no results.json');
  let json: { header?: unknown; grid?: { name?: unknown }; model?: unknown; cells?: unknown };
  try { json = JSON.parse(readFileSync(path, 'utf8')) as typeof json; } catch { throw notStudy('results.json is not JSON'); }
  const cells = json?.cells;
  const isRecord = (c: unknown) => typeof c === 'object' && c !== null && typeof (c as CellRecord).key === 'string' &&
    typeof (c as CellRecord).cell === 'object' && typeof (c as CellRecord).results === 'object';
  if (!Array.isArray(cells) || !cells.every(isRecord)) throw notStudy('results.json has no list of cell records');
  // results.json files written before the header was stored get a title from their grid and model
  const header = typeof json.header === 'string' ? json.header : `# lowbit study: ${String(json.grid?.name ?? 'grid')} on ${String(json.model ?? 'model')}`;
  return { records: cells as CellRecord[], header };
}
