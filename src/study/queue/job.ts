import { createHash } from 'node:crypto';
import { FormatError } from '../../errors.js';
import { cellKey, checkRawCell, rawCell, type Cell } from '../grid.js';
import type { CellRecord } from '../journal.js';
import { checkStudySpec, type StudySpec } from '../spec.js';

/**
 * The queue's whole protocol: a job's data is a CellJob (plain JSON: a cell as a grid file writes it,
 * and the study's settings); its return value is the cell's CellRecord. A worker checks the data as
 * `lowbit study` checks a grid file and runs nothing else.
 */
export interface CellJob {
  readonly version: typeof JOB_VERSION;
  readonly key: string;
  readonly cell: Record<string, unknown>;
  readonly study: StudySpec;
}

export const JOB_VERSION = 1;

export function cellJob(cell: Cell, study: StudySpec): CellJob {
  return { version: JOB_VERSION, key: cellKey(cell), cell: rawCell(cell), study };
}

/**
 * The job id of a cell: its key, then a hash of everything that changes its numbers (the runner's settings:
 * model path, format and tokenizer, method options, calibration, evaluation protocol), less the backend kind,
 * which is the worker's. The same cell of the same study gets the same id, so enqueuing twice adds nothing.
 */
export function jobId(key: string, settings: Record<string, unknown>): string {
  const { backendKind: _backend, ...rest } = settings;
  return `${key}.${createHash('sha256').update(JSON.stringify({ key, settings: rest })).digest('hex').slice(0, 16)}`;
}

/** Checks a job's data (`id` names it in errors): FormatError/UsageError on anything a grid file would not allow. */
export function checkCellJob(data: unknown, id: string): { cell: Cell; study: StudySpec } {
  const where = `job ${id}`;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new FormatError(where, 'the job data is not an object');
  const j = data as Record<string, unknown>;
  if (j.version !== JOB_VERSION) throw new FormatError(where, `job format version ${JSON.stringify(j.version)}, this lowbit reads ${JOB_VERSION}`);
  const cell = checkRawCell(j.cell, `${where} cell`);
  if (cellKey(cell) !== j.key) throw new FormatError(where, `the cell is ${cellKey(cell)}, the job says ${JSON.stringify(j.key)}`);
  return { cell, study: checkStudySpec(j.study, where) };
}

/** Checks a finished job's return value before it enters the study's journal. */
export function checkReturnedRecord(v: unknown, key: string, id: string): CellRecord {
  const r = v as Partial<CellRecord> | null;
  if (typeof r !== 'object' || r === null || r.key !== key || typeof r.results !== 'object' || typeof r.settings !== 'object' || typeof r.seconds !== 'number') {
    throw new FormatError(`job ${id}`, 'its result is not a cell record of this cell');
  }
  return r as CellRecord;
}
