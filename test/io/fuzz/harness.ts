/**
 * Runs a fuzz target (targets/<name>.ts) in a worker thread with a watchdog: a case that runs longer
 * than `caseTimeoutMs` (a hang) or a worker that dies (out of memory: the heap is capped, so an
 * allocation sized by a header field fails the run) ends the run with the case that caused it.
 */
import { rmSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { Outcome } from './target.js';
import type { FuzzJob, FuzzMessage } from './worker.js';

export interface FuzzOptions {
  readonly seed: number;
  readonly numRuns: number;
  /** longest a single case may run (default 10 s; the slowest real case takes well under 1 s) */
  readonly caseTimeoutMs?: number;
  /** longest the target's setup may take before the first case (default 60 s) */
  readonly setupTimeoutMs?: number;
}

/** Heap cap of the worker: the bundled models need a few tens of MB. */
const HEAP_MB = 512;

/** Resolves with the tally of outcomes; rejects naming the failing case, the hang or the crash. */
export function runFuzz(target: string, o: FuzzOptions): Promise<Record<Outcome, number>> {
  const job: FuzzJob = { target, seed: o.seed, numRuns: o.numRuns };
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: job, resourceLimits: { maxOldGenerationSizeMb: HEAP_MB } });
  let root: string | undefined;
  let last = 'setup';
  let timer: NodeJS.Timeout | undefined;
  return new Promise<Record<Outcome, number>>((resolve, reject) => {
    const fail = (why: string) => reject(new Error(`fuzz ${target} (seed ${o.seed}): ${why}; last case: ${last}`));
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => { void worker.terminate(); fail(`no progress for ${ms} ms (a hang?)`); }, ms);
    };
    arm(o.setupTimeoutMs ?? 60_000);
    worker.on('message', (m: FuzzMessage) => {
      if (m.kind === 'root') root = m.path;
      else if (m.kind === 'case') { last = `#${m.index} ${m.mutation}`; arm(o.caseTimeoutMs ?? 10_000); }
      else if (m.failed) fail(`counterexample ${m.counterexample}: ${m.error}`);
      else resolve(m.tally);
    });
    worker.on('error', (e) => fail(`the worker died: ${e.message}`));
    worker.on('exit', (code) => { if (code !== 0) fail(`the worker exited with code ${code}`); });
  }).finally(() => {
    clearTimeout(timer);
    void worker.terminate();
    if (root) rmSync(root, { recursive: true, force: true });
  });
}
