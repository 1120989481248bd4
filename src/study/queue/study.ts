import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, type Job } from 'bullmq';
import type { Backend } from '../../backend/backend.js';
import type { ModelCheckpoint } from '../../io/checkpoint.js';
import { UsageError } from '../../errors.js';
import { cellKey, type Grid } from '../grid.js';
import { Journal, type CellRecord } from '../journal.js';
import { settingsOf, writeStudyReports, type StudyOptions } from '../runner.js';
import type { StudySpec } from '../spec.js';
import { QUEUE_NAME, checkRedis, queueAnswerTimeout, type QueueUrl } from './connection.js';
import { cellJob, checkReturnedRecord, jobId } from './job.js';

export interface QueuedStudyOptions {
  readonly url: QueueUrl;
  /** wait for the workers and write the tables (false: enqueue and return) */
  readonly wait: boolean;
  /** enqueue nothing: the tables from what is finished now */
  readonly collect: boolean;
  readonly log: (line: string) => void;
  /** how often the queue is read while waiting (default 500 ms) */
  readonly pollMs?: number;
}

/** A transient error is tried this many times, with exponential backoff from BACKOFF_MS. */
const ATTEMPTS = 3;
const BACKOFF_MS = 5000;

/** The table row of a cell whose job failed for good: its error instead of results (not journaled, so a rerun retries it). */
function failedRecord(base: Omit<CellRecord, 'results' | 'finishedAt' | 'seconds'>, job: Job): CellRecord {
  const reason = (job.failedReason ?? 'failed').split('\n')[0]!;
  return { ...base, results: { failed: reason }, finishedAt: new Date(job.finishedOn ?? Date.now()).toISOString(), seconds: 0 };
}

/** A fine-tuning cell's data file as an absolute path: a worker's working folder is not the study's. */
function withAbsolutePaths(grid: Grid): Grid {
  return { ...grid, cells: grid.cells.map((c) => (c.finetune?.data ? { ...c, finetune: { ...c.finetune, data: resolve(c.finetune.data) } } : c)) };
}

/**
 * `lowbit study --queue`: every unfinished cell becomes a job whose id is the cell's (jobId), so enqueuing
 * twice adds nothing; a cell that failed for good earlier is retried. Then, unless `wait` is false, reads
 * the queue until every cell is finished or failed, journals each finished cell (so a local rerun or
 * `--collect` reuses it) and writes the same tables as the local runner; failed cells are rows that
 * say why. Returns the written files, or null when it did not wait.
 */
export async function queuedStudy(ckpt: ModelCheckpoint, be: Backend, given: Grid, o: StudyOptions, spec: StudySpec, q: QueuedStudyOptions): Promise<string[] | null> {
  await checkRedis(q.url);
  const timeoutMs = queueAnswerTimeout();
  const grid = withAbsolutePaths(given);
  const journal = new Journal(o.out);
  const queue = new Queue(QUEUE_NAME, { connection: { ...q.url.redis, maxRetriesPerRequest: null } });
  let lastError = '';
  queue.on('error', (e) => { if (e.message !== lastError) q.log(`lowbit: queue: ${e.message}`); lastError = e.message; });
  let write: () => string[] = () => [];
  let finished = 0;
  /** `p`, or a UsageError when Redis gives no answer within timeoutMs (the finished cells' table written first). */
  const answered = async <T>(p: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const files = write();
        reject(new UsageError(`${q.url.shown}: Redis gave no answer for ${(timeoutMs / 1000).toFixed(0)} s${lastError ? ` (${lastError})` : ''}; ` +
          `${finished} of ${grid.cells.length} cells finished${files.length ? ` (their rows are in ${o.out}/table.md)` : ''}: start Redis again and rerun the same command to go on`));
      }, timeoutMs);
    });
    try { return await Promise.race([p, late]); } finally { clearTimeout(timer); }
  };
  let gaveUp = false;
  try {
    const total = grid.cells.length;
    const rows: (CellRecord | undefined)[] = [];
    const pending = new Map<number, string>();
    for (const [i, cell] of grid.cells.entries()) {
      const settings = settingsOf(ckpt, be, cell, o);
      const done = o.force ? undefined : journal.find(cell, settings);
      if (done) rows[i] = done;
      else pending.set(i, jobId(cellKey(cell), settings));
    }
    finished = total - pending.size;
    if (!q.collect) {
      let added = 0;
      for (const [i, id] of pending) {
        const old = await answered(queue.getJob(id));
        const state = old ? await answered(old.getState()) : 'missing';
        if (old && (state === 'failed' || (o.force && state === 'completed'))) await answered(old.remove());
        else if (old && state !== 'unknown') continue; // waiting, running or finished: the same cell of the same study
        await answered(queue.add(cellKey(grid.cells[i]!), cellJob(grid.cells[i]!, spec), {
          jobId: id, attempts: ATTEMPTS, backoff: { type: 'exponential', delay: BACKOFF_MS }, removeOnComplete: false, removeOnFail: false,
        }));
        added++;
      }
      q.log(`${q.url.shown}: ${added} cell${added === 1 ? '' : 's'} enqueued, ${pending.size - added} already there, ${total - pending.size} finished earlier`);
      if (!q.wait) return null;
    }
    write = () => writeStudyReports(ckpt, be, grid, o, rows.filter((r): r is CellRecord => !!r));
    while (pending.size) {
      for (const [i, id] of pending) {
        const cell = grid.cells[i]!;
        const job = await answered(queue.getJob(id));
        const state = job ? await answered(job.getState()) : 'missing';
        if (job && state === 'completed') {
          const rec = checkReturnedRecord(job.returnvalue, cellKey(cell), id);
          journal.save(rec);
          rows[i] = rec;
          q.log(`[${++finished}/${total}] ${rec.key}: done in ${rec.seconds.toFixed(1)} s`);
        } else if (job && state === 'failed') {
          rows[i] = failedRecord({ key: cellKey(cell), cell, settings: settingsOf(ckpt, be, cell, o) }, job);
          q.log(`[${++finished}/${total}] ${cellKey(cell)}: failed: ${rows[i]!.results.failed as string}`);
        } else if (!q.collect && (state === 'missing' || state === 'unknown')) {
          throw new UsageError(`${q.url.shown}: job ${id} left the queue before it finished (was the queue emptied?); run the study again to enqueue it`);
        } else continue;
        pending.delete(i);
        write();
      }
      if (q.collect) break;
      if (pending.size) await sleep(q.pollMs ?? 500);
    }
    if (q.collect && pending.size) q.log(`${pending.size} of ${total} cells not finished yet: the table has the others`);
    const files = write();
    const failed = rows.filter((r) => r && 'failed' in r.results);
    if (failed.length) throw new UsageError(`${failed.length} of ${total} cells failed (${failed.map((r) => r!.key).join(', ')}): the Failed column of ${o.out}/table.md says why`);
    return files;
  } catch (e) {
    gaveUp = e instanceof UsageError && /gave no answer/.test(e.message);
    throw e;
  } finally {
    // a Redis that stopped answering would hold close() (and the process) forever: drop the connection instead
    if (gaveUp) void queue.disconnect().catch(() => undefined); // its promise never settles without a server
    else await queue.close();
  }
}
