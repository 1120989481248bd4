import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import type { CellRecord } from '../journal.js';
import { columnsFor, costNote, formatValue } from './table.js';

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

/** Writes table.md, table.csv and results.json (every record with all its settings) into `out`. */
export function writeReports(out: string, records: readonly CellRecord[], header: string, meta: Record<string, unknown>): string[] {
  const files = [join(out, 'table.md'), join(out, 'table.csv'), join(out, 'results.json')];
  writeFileAtomic(files[0]!, markdownReport(records, header));
  writeFileAtomic(files[1]!, csvReport(records));
  writeFileAtomic(files[2]!, JSON.stringify({ ...meta, cells: records }, null, 2) + '\n');
  return files;
}
