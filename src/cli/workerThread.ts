// The thread in which `lowbit worker` runs each cell (BullMQ's sandboxed processor, one per concurrent cell):
// it makes the backend from the worker's flags once, then runs the jobs it is handed.
import { workerData } from 'node:worker_threads';
import type { SandboxedJob } from 'bullmq';
import type { Backend } from '../backend/backend.js';
import { processCellJob, type CellRunner } from '../study/queue/worker.js';
import type { CellRecord } from '../study/journal.js';
import { createBackend } from './backendOptions.js';
import { DeviceError } from '../errors.js';

/** What `lowbit worker` hands each thread: its backend flags and the checkpoint store. */
export interface WorkerThreadData { backend?: string | undefined; cpuKernels?: string | undefined; threads: number; store?: string | undefined }

let runner: Promise<CellRunner> | undefined;

async function makeRunner(d: WorkerThreadData): Promise<CellRunner> {
  const be: Backend = await createBackend({ backend: d.backend, cpuKernels: d.cpuKernels, threads: d.threads });
  return { be, threads: d.threads, store: d.store, models: new Map() };
}

export default async function runCellJob(job: SandboxedJob): Promise<CellRecord> {
  runner ??= makeRunner(workerData as WorkerThreadData);
  try {
    return await processCellJob(job, await runner);
  } catch (e) {
    // a lost device is not used again: the retry (or the next job) makes the backend anew (acquireGpu, a new device)
    if (e instanceof DeviceError) runner = undefined;
    throw e;
  }
}
