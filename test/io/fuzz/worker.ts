/**
 * Runs one fuzz target in a worker thread (see harness.ts): seeded fast-check cases, each announced
 * to the parent before it runs, so that the parent can stop a case that hangs and name it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { removeScratch, scratchRoot } from '../mutate.js';
import { describe, type FuzzTarget, type Outcome } from './target.js';

export interface FuzzJob { readonly target: string; readonly seed: number; readonly numRuns: number }
export type FuzzMessage =
  | { readonly kind: 'root'; readonly path: string }
  | { readonly kind: 'case'; readonly index: number; readonly mutation: string }
  | { readonly kind: 'done'; readonly failed: boolean; readonly counterexample: string; readonly error: string; readonly tally: Record<Outcome, number> };

const job = workerData as FuzzJob;
const post = (m: FuzzMessage): void => parentPort!.postMessage(m);
post({ kind: 'root', path: scratchRoot() });
const target = (await import(`./targets/${job.target}.js`) as { default: FuzzTarget<unknown, unknown> }).default;
const base = await target.setup();
const tally: Record<Outcome, number> = { ok: 0, refused: 0 };
let index = 0;
const details = await fc.check(fc.asyncProperty(target.arbitrary(base), async (m) => {
  post({ kind: 'case', index: index++, mutation: describe(m) });
  tally[await target.run(base, m)]++;
}), { seed: job.seed, numRuns: job.numRuns, endOnFailure: true });
post({
  kind: 'done', failed: details.failed, tally,
  counterexample: details.counterexample ? describe(details.counterexample[0]) : '',
  error: details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance ?? ''),
});
removeScratch();
