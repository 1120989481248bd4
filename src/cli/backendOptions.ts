import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import type { Backend } from '../backend/backend.js';
import { CpuBackend } from '../backend/cpu/cpuBackend.js';
import { KERNEL_PREFERENCES, selectKernels, type KernelPreference } from '../backend/cpu/kernels/select.js';
import { UsageError } from '../errors.js';

export interface BackendCliOptions { backend?: string; cpuKernels?: string; threads?: string | number }

export function backendOptions(cmd: Command): Command {
  return cmd
    .option('--backend <name>', 'compute backend: cpu', 'cpu')
    .option('--cpu-kernels <provider>', `CPU kernel provider: ${KERNEL_PREFERENCES.join(', ')} (auto = native, else wasm, else js)`, 'auto')
    .option('--threads <n>', 'worker threads for the CPU kernels (default: the number of cores)');
}

/** --threads, checked; all cores when not given. */
export function threadCount(o: BackendCliOptions): number {
  const threads = o.threads === undefined ? availableParallelism() : Number(o.threads);
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024) throw new UsageError(`--threads must be a positive integer (got '${o.threads}')`);
  return threads;
}

/** The backend a command runs on, chosen once from the CLI options. */
export async function createBackend(o: BackendCliOptions): Promise<Backend> {
  if (o.backend && o.backend !== 'cpu') throw new UsageError(`unknown backend '${o.backend}' (known: cpu)`);
  const pref = (o.cpuKernels ?? 'auto') as KernelPreference;
  if (!KERNEL_PREFERENCES.includes(pref)) throw new UsageError(`--cpu-kernels must be one of ${KERNEL_PREFERENCES.join(', ')} (got '${o.cpuKernels}')`);
  const { kernels, note } = selectKernels(pref, threadCount(o));
  return new CpuBackend(kernels, note);
}
