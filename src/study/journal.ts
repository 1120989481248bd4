import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirs, writeJsonAtomic } from '../io/atomic.js';
import type { Cell } from './grid.js';
import { cellKey } from './grid.js';

/** What a finished cell stores: its settings and results. One JSON file per cell, written atomically. */
export interface CellRecord {
  readonly key: string;
  readonly cell: Cell;
  /** everything that changes the numbers: model, seqlen, limit, calibration, datasets, tasks... */
  readonly settings: Record<string, unknown>;
  readonly results: Record<string, unknown>;
  readonly finishedAt: string;
  readonly seconds: number;
}

/**
 * The study's journal: `<out>/cells/<key>.json` for every finished cell. A rerun skips a cell whose
 * record exists with the same settings, so a study killed half-way resumes where it stopped.
 */
export class Journal {
  readonly dir: string;
  constructor(out: string) {
    this.dir = join(out, 'cells');
    makeDirs(this.dir);
  }
  path(cell: Cell): string { return join(this.dir, `${cellKey(cell)}.json`); }
  /** the finished record for `cell` if its settings equal `settings` */
  find(cell: Cell, settings: Record<string, unknown>): CellRecord | undefined {
    const p = this.path(cell);
    if (!existsSync(p)) return undefined;
    try {
      const rec = JSON.parse(readFileSync(p, 'utf8')) as CellRecord;
      return JSON.stringify(rec.settings) === JSON.stringify(settings) ? rec : undefined;
    } catch { return undefined; } // a damaged record is recomputed
  }
  save(rec: CellRecord): void { writeJsonAtomic(join(this.dir, `${rec.key}.json`), rec); }
}
