/**
 * One extra wasm thread in a browser tab (bundled as wasmThread.js): a Web Worker started by the
 * evaluation worker (wasmThreads.ts) with the pool's compiled kernels, shared memory and job block. It
 * says it started, then runs `runWasmThread` (backend/cpu/wasm/pool.ts), the loop Node's worker_threads
 * run, until the pool stops or the evaluation worker ends. If it fails, it marks the pool broken (the
 * evaluation worker, blocked in Atomics.wait, wakes and throws) and posts the reason.
 */
import { poisonPool, runWasmThread, type ThreadInit } from '../backend/cpu/wasm/pool.js';

export type ThreadMessage = { kind: 'started'; id: number } | { kind: 'failed'; id: number; reason: string };

const scope = globalThis as unknown as { postMessage(m: ThreadMessage): void; onmessage: ((e: MessageEvent<ThreadInit & { id: number }>) => void) | null };

scope.onmessage = (e) => {
  scope.onmessage = null;
  const init = e.data;
  scope.postMessage({ kind: 'started', id: init.id });
  try {
    runWasmThread(init);
  } catch (err) {
    poisonPool(init, init.id);
    scope.postMessage({ kind: 'failed', id: init.id, reason: (err as Error)?.message ?? String(err) });
  }
};
