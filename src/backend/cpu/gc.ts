/** Node-only: a full V8 garbage collection on demand (CpuBackend.reclaim). */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gcFn: (() => void) | null | undefined;
/**
 * A full garbage collection, when one can be had: `global.gc` under --expose-gc, else V8's gc
 * function obtained the way jest's leak detector does (the flag set just long enough to create a
 * context that has it). Weight ArrayBuffers are returned only when V8 collects them, and V8 does
 * not see a dead 0.4 GB block as pressure until the next block's allocations; a collection between
 * blocks returns it first. Memory only: nothing depends on it (a no-op where unavailable).
 */
export function collectGarbage(): void {
  if (gcFn === undefined) {
    gcFn = null;
    const g = (globalThis as { gc?: () => void }).gc;
    if (typeof g === 'function') gcFn = g;
    else {
      try {
        setFlagsFromString('--expose-gc');
        const f: unknown = runInNewContext('gc');
        if (typeof f === 'function') gcFn = f as () => void;
      } catch { /* stays null */ } finally {
        try { setFlagsFromString('--no-expose-gc'); } catch { /* ignore */ }
      }
    }
  }
  gcFn?.();
}
