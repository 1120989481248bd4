/**
 * Picks a CPU kernel provider, once, for `--cpu-kernels` and `--threads`:
 * 'auto' = native if its addon loaded, else wasm, else js; an explicit choice that is unavailable
 * falls back the same way and says so. The note is one line for logs and result records.
 */
import type { CpuKernels } from './kernels.js';
import { jsKernels } from './js.js';
import { loadNativeKernels } from './native.js';
import { loadWasmKernels } from './wasm.js';
import type { StartThreads } from '../wasm/pool.js';
import { checked } from './provider.js';
import { withLinalg } from './jsLinalg.js';

export type KernelPreference = 'auto' | 'native' | 'wasm' | 'js';
export const KERNEL_PREFERENCES: readonly KernelPreference[] = Object.freeze(['auto', 'native', 'wasm', 'js']);

export interface Selected {
  kernels: CpuKernels;
  /** e.g. "native (OpenBLAS), 4 threads" or "wasm, 2 threads; native unavailable: libopenblas not found at build time" */
  note: string;
}

/** js runs on the calling thread only. */
function js(why: string[]): Selected {
  return { kernels: withLinalg(checked(jsKernels)), note: ['js, 1 thread', ...why].join('; ') };
}

/** `startThreads`: how the wasm pool starts its workers where Node's worker_threads are not (a browser tab). */
export function selectKernels(pref: KernelPreference, threads = 1, startThreads?: StartThreads): Selected {
  if (!KERNEL_PREFERENCES.includes(pref)) throw new RangeError(`--cpu-kernels: ${String(pref)} is not one of ${KERNEL_PREFERENCES.join(', ')}`);
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`--threads: ${threads} is not a positive integer`);
  const plural = `${threads} thread${threads === 1 ? '' : 's'}`;
  const why: string[] = [];
  if (pref === 'js') return js(why);
  if (pref === 'auto' || pref === 'native') {
    const n = loadNativeKernels(threads);
    if (n.ok) return { kernels: withLinalg(n.kernels), note: `native (OpenBLAS), ${plural}` };
    why.push(`native unavailable: ${n.reason}`);
  }
  if (pref === 'auto' || pref === 'native' || pref === 'wasm') {
    const w = loadWasmKernels(threads, startThreads);
    if (w.ok) return { kernels: withLinalg(w.kernels), note: [`wasm SIMD, ${plural}`, ...why].join('; ') };
    why.push(`wasm unavailable: ${w.reason}`);
  }
  return js(why);
}
