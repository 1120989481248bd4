/**
 * Several wasm threads in a browser tab: the evaluation worker (evalWorker.ts) is the pool's thread 0,
 * and `startThreads` starts the other threads − 1 as Web Workers (wasmThread.ts) over the same shared
 * WebAssembly.Memory, running the same loop as Node's worker_threads (backend/cpu/wasm/pool.ts). The
 * kernels cut work by shape only, so the bits do not depend on the thread count.
 *
 * A browser starts a worker only when its creator returns to the event loop, while the pool blocks in
 * Atomics.wait: so the evaluation worker awaits `ready` (every thread has received its memory) before
 * the first kernel runs. Sending a shared memory to a worker needs a cross-origin isolated page
 * (COOP/COEP headers, `self.crossOriginIsolated`); `threadsUnavailable` says why not.
 */
import type { StartThreads } from '../backend/cpu/wasm/pool.js';
import type { ThreadMessage } from './wasmThread.js';

/** How long the threads may take to start before the run falls back to one thread. */
const START_TIMEOUT_MS = 30_000;

/** Why this scope cannot run extra wasm threads, or undefined when it can. */
export function threadsUnavailable(): string | undefined {
  const g = globalThis as { crossOriginIsolated?: boolean; Worker?: unknown };
  if (g.crossOriginIsolated !== true) {
    return 'the page is not cross-origin isolated (self.crossOriginIsolated is false), which sharing the wasm memory with other Web Workers needs: serve it with COOP/COEP headers (npm run serve:web)';
  }
  if (typeof g.Worker !== 'function') return 'this browser has no Worker inside a Web Worker';
  return undefined;
}

export interface WebThreads {
  /** for selectKernels / WasmPool: starts the Web Workers */
  readonly start: StartThreads;
  /** resolves when every started thread has its memory; rejects with the reason when one fails or none came in time */
  ready(): Promise<void>;
  /** ends the Web Workers (the pool is unusable afterwards) */
  terminate(): void;
}

export function webThreads(script: URL): WebThreads {
  const workers: Worker[] = [];
  let ready: Promise<void> = Promise.reject(new Error('the wasm pool started no threads'));
  ready.catch(() => {});
  const start: StartThreads = ({ module, memory, job, workers: n }) => {
    const started = new Set<number>();
    ready = new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`${n - started.size} of ${n} wasm threads did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      for (let id = 1; id <= n; id++) {
        const w = new Worker(script, { type: 'module', name: `lowbit wasm thread ${id}` });
        workers.push(w);
        w.onerror = (e) => { clearTimeout(timer); fail(new Error(`wasm thread ${id} failed: ${e.message}`)); };
        w.onmessage = (e: MessageEvent<ThreadMessage>) => {
          if (e.data.kind === 'failed') { console.error(`lowbit: wasm thread ${id}: ${e.data.reason}`); fail(new Error(e.data.reason)); return; }
          started.add(id);
          if (started.size === n) { clearTimeout(timer); ok(); }
        };
        w.postMessage({ module, memory, job, id });
      }
    });
    ready.catch(() => {});
  };
  return { start, ready: () => ready, terminate: () => { for (const w of workers) w.terminate(); } };
}
