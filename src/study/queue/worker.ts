import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnrecoverableError, Worker } from 'bullmq';
import type { Backend } from '../../backend/backend.js';
import type { ModelCheckpoint } from '../../io/checkpoint.js';
import { openModel } from '../../io/open.js';
import { DeviceError, LowbitError } from '../../errors.js';
import { cellKey } from '../grid.js';
import { runCell, settingsOf } from '../runner.js';
import type { CellRecord } from '../journal.js';
import { studyOptions } from '../spec.js';
import { QUEUE_NAME, queueTiming, type QueueUrl } from './connection.js';
import { checkCellJob, jobId } from './job.js';

/** What the thread that runs cells holds: its backend, and where checkpoints go. */
export interface CellRunner {
  readonly be: Backend;
  /** the decode-speed check's threads */
  readonly threads: number;
  /** shared folder for the cells' checkpoints (`<store>/checkpoints/<job id>`); none: each is deleted after its cell */
  readonly store?: string | undefined;
  /** models opened by earlier jobs, by path and tokenizer */
  readonly models: Map<string, ModelCheckpoint>;
}

/** The part of a BullMQ job (or a sandboxed job) that running a cell reads. */
export interface CellJobHandle {
  readonly id?: string | undefined;
  readonly data: unknown;
  updateProgress(p: object): Promise<void>;
}

/**
 * Runs one job's cell with the local runner's `runCell`. The data is checked as a grid file is
 * (checkCellJob) and must reproduce its own id from the model this worker opens. A cell that fails on
 * its input (a LowbitError: bad model path, impossible setting) throws UnrecoverableError, failed for
 * good; anything else is thrown as it is, and BullMQ retries it with backoff: a DeviceError too (the worker's
 * device was lost or full, not the cell's fault).
 */
export async function processCellJob(job: CellJobHandle, r: CellRunner): Promise<CellRecord> {
  const id = job.id ?? '(no id)';
  try {
    const { cell, study } = checkCellJob(job.data, id);
    const mk = JSON.stringify([study.model, study.tokenizer]);
    if (!r.models.has(mk)) r.models.set(mk, openModel(study.model, study.tokenizer ? { tokenizer: study.tokenizer } : {}));
    const ckpt = r.models.get(mk)!;
    const opts = studyOptions(study, r.be, r.threads);
    const mine = jobId(cellKey(cell), settingsOf(ckpt, r.be, cell, opts));
    if (mine !== id) throw new LowbitError(`job ${id}: this worker's model or lowbit gives the cell the id ${mine} (another model at ${study.model}, or another lowbit version)`);
    const dir = r.store ? join(r.store, 'checkpoints', id) : mkdtempSync(join(tmpdir(), 'lowbit-cell-'));
    try {
      return await runCell(ckpt, r.be, cell, {
        ...opts, checkpointDir: dir, keepCheckpoints: !!r.store,
        onEvent: (e) => { if (e.kind === 'cell-step') void job.updateProgress({ step: e.step, stage: e.stage }).catch(() => {}); },
      });
    } finally {
      if (!r.store) rmSync(dir, { recursive: true, force: true });
    }
  } catch (e) {
    if (e instanceof DeviceError) throw e; // the worker's device, not the cell: retried (workerThread.ts makes a new one)
    if (e instanceof LowbitError) throw new UnrecoverableError(e.message);
    throw e;
  }
}

export interface CellWorkerOptions {
  readonly url: QueueUrl;
  /** cells run at once by this process, each in its own thread */
  readonly concurrency: number;
  /** the thread's entry: a module whose default export calls processCellJob (src/cli/workerThread.ts) */
  readonly processor: URL;
  /** handed to each thread as its workerData */
  readonly workerData: unknown;
  readonly onEvent?: (e: WorkerEvent) => void;
}

export type WorkerEvent =
  | { kind: 'start'; id: string; attempt: number }
  | { kind: 'done'; id: string; seconds: number }
  | { kind: 'failed'; id: string; message: string; final: boolean }
  | { kind: 'error'; message: string };

/**
 * Pulls cells from the queue. Each cell runs in a worker thread (BullMQ's sandboxed processor), so this
 * thread stays free to renew the job's lock however long a block's kernels hold theirs; a worker killed
 * mid-cell stops renewing it, and BullMQ's stalled-job check hands the cell to another worker.
 */
export function startCellWorker(o: CellWorkerOptions): Worker {
  const worker = new Worker(QUEUE_NAME, o.processor, {
    connection: { ...o.url.redis, maxRetriesPerRequest: null }, concurrency: o.concurrency, ...queueTiming(), maxStalledCount: 3,
    useWorkerThreads: true,
    // V8 flags are the process's (a thread refuses them in execArgv); --expose-gc reaches the threads anyway
    workerThreadsOptions: { workerData: o.workerData, execArgv: process.execArgv.filter((a) => a !== '--expose-gc') },
  });
  worker.on('active', (job) => o.onEvent?.({ kind: 'start', id: job.id ?? '', attempt: job.attemptsMade + 1 }));
  worker.on('completed', (job, rec: CellRecord) => o.onEvent?.({ kind: 'done', id: job.id ?? '', seconds: rec.seconds }));
  worker.on('failed', (job, err) => {
    if (!job) return;
    const final = err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
    o.onEvent?.({ kind: 'failed', id: job.id ?? '', message: err.message, final });
  });
  worker.on('error', (err) => o.onEvent?.({ kind: 'error', message: err.message }));
  return worker;
}
