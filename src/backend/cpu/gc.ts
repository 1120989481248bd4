/** Node-only: a full V8 garbage collection on demand (CpuBackend.reclaim). */

/**
 * A full garbage collection when the process was started with `--expose-gc` (`globalThis.gc`), else
 * nothing: V8's flags are set where the process starts, never changed at run time. Weight ArrayBuffers
 * are returned only when V8 collects them, and V8 does not see a dead 0.4 GB block as pressure until the
 * next block's allocations; a collection between blocks returns it first, so one block stays resident.
 * The processes lowbit starts carry the flag: bin/lowbit.js (its shebang; `node bin/lowbit.js` needs
 * `node --expose-gc bin/lowbit.js`), scripts/test.mjs and bench/run.ts. Memory only: nothing depends on it.
 */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc === 'function') gc();
}
