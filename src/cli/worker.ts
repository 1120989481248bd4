import type { Command } from 'commander';
import { resolve } from 'node:path';
import { QUANTIZE_BACKEND_NOTE, backendOptions, createBackend, threadCount, type BackendCliOptions } from './backendOptions.js';
import { parseIntOption } from './common.js';
import type { WorkerThreadData } from './workerThread.js';

interface WorkerCliOptions extends BackendCliOptions { queue: string; concurrency: string; store?: string }

/** `lowbit worker`: runs the cells that `lowbit study --queue` enqueued, until SIGINT or SIGTERM. */
export function registerWorker(program: Command): void {
  const cmd = program.command('worker')
    .description('run study cells from a Redis queue (`lowbit study --queue`); the model and data paths in the jobs must be readable here')
    .requiredOption('--queue <url>', 'redis://[user:password@]host:port/db (rediss:// for TLS)')
    .option('--concurrency <n>', 'cells run at once by this process', '1')
    .option('--store <dir>', "shared folder for the cells' checkpoints (default: none kept)");
  backendOptions(cmd, QUANTIZE_BACKEND_NOTE);
  cmd.action(async (o: WorkerCliOptions) => {
    // BullMQ and its Redis client load only for this command
    const [{ checkRedis, parseQueueUrl }, { startCellWorker }] = await Promise.all([import('../study/queue/connection.js'), import('../study/queue/worker.js')]);
    const url = parseQueueUrl(o.queue);
    const concurrency = parseIntOption('--concurrency', o.concurrency)!;
    await checkRedis(url);
    const threads = threadCount(o);
    await createBackend(o); // checks the backend flags here, before any job; each cell thread makes its own
    const thread: WorkerThreadData = { backend: o.backend, cpuKernels: o.cpuKernels, threads, store: o.store ? resolve(o.store) : undefined };
    const log = (s: string) => process.stderr.write(`${s}\n`);
    const worker = startCellWorker({
      url, concurrency, processor: new URL('./workerThread.js', import.meta.url), workerData: thread,
      onEvent: (e) => {
        if (e.kind === 'start') log(`${e.id}: started${e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}`);
        else if (e.kind === 'done') log(`${e.id}: done in ${e.seconds.toFixed(1)} s`);
        else if (e.kind === 'failed') log(`lowbit: ${e.id}: ${e.final ? 'failed' : 'will retry'}: ${e.message.split('\n')[0]}`);
        else log(`lowbit: queue: ${e.message}`);
      },
    });
    log(`lowbit worker: waiting for cells on ${url.shown} (concurrency ${concurrency})`);
    await new Promise<void>((done) => {
      const stop = () => { log('lowbit worker: finishing the running cells, then stopping'); void worker.close().then(done); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  });
}
