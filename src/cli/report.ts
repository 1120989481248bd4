import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { readStudy } from '../study/report/writers.js';
import { writeHtmlReport } from '../study/report/html.js';

export function registerReport(program: Command): void {
  program.command('report')
    .description("rebuild a study folder's report.html (tables and plots, one self-contained file) from its results.json")
    .argument('<dir>', 'study folder (what `lowbit study --out` wrote)')
    .option('--out <file>', 'where to write the page (default: DIR/report.html)')
    .action((dir: string, o: { out?: string }) => {
      const { records, header } = readStudy(dir);
      const out = resolve(o.out ?? join(dir, 'report.html'));
      writeHtmlReport(out, records, header);
      console.log(`written: ${out} (${records.length} cells)`);
    });
}
