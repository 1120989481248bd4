import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { Command } from 'commander';
import type { Backend } from '../backend/backend.js';
import { CpuBackend } from '../backend/cpu/cpuBackend.js';
import { KERNEL_PREFERENCES, selectKernels, type KernelPreference } from '../backend/cpu/kernels/select.js';
import { UsageError } from '../errors.js';
import { createWebGpuBackend } from '../backend/webgpu/webgpuBackend.js';
import { autoPicksWebGpu, findAdapter } from '../backend/webgpu/capabilities.js';

/**
 * --backend values: auto = WebGPU on a hardware adapter, else the CPU (a one-line note says which ran and why;
 * a software adapter such as lavapipe is slower than the CPU backend, so auto leaves it: autoPicksWebGpu).
 */
export const BACKENDS = ['cpu', 'webgpu', 'auto'] as const;
export type BackendChoice = typeof BACKENDS[number];

export const QUANTIZE_BACKEND_NOTE = 'quantizing, the forward passes and the float64 Hessian sums run on it, the solvers (Cholesky, GPTQ/QuIP/BiLLM updates, AWQ/SmoothQuant searches) on the CPU kernels';

export interface BackendCliOptions { backend?: string; cpuKernels?: string; threads?: string | number }

/** The CLI's backend flags; `note` adds what the backend does for this command to --backend's help. */
export function backendOptions(cmd: Command, note?: string): Command {
  return cmd
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')} (auto = webgpu on a hardware adapter, else cpu)${note ? `; ${note}` : ''}`, 'cpu')
    .option('--cpu-kernels <provider>', `CPU kernel provider: ${KERNEL_PREFERENCES.join(', ')} (auto = native, else wasm, else js)`, 'auto')
    .option('--threads <n>', 'worker threads for the CPU kernels (default: the number of cores)');
}

/** --threads, checked; all cores when not given. */
export function threadCount(o: BackendCliOptions): number {
  const threads = o.threads === undefined ? availableParallelism() : Number(o.threads);
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024) throw new UsageError(`--threads must be a positive integer (got '${o.threads}')`);
  return threads;
}

/**
 * The backend a command runs on, chosen once from the CLI options. The CPU kernels (--cpu-kernels,
 * --threads) also serve the WebGPU backend as its host kernels (the quantizers' float64 linear
 * algebra: GPTQ's Cholesky and solve run there while the forward passes run on the device).
 */
export async function createBackend(o: BackendCliOptions): Promise<Backend> {
  const choice = (o.backend ?? 'cpu') as BackendChoice;
  if (!BACKENDS.includes(choice)) throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')} (got '${o.backend}')`);
  const pref = (o.cpuKernels ?? 'auto') as KernelPreference;
  if (!KERNEL_PREFERENCES.includes(pref)) throw new UsageError(`--cpu-kernels must be one of ${KERNEL_PREFERENCES.join(', ')} (got '${o.cpuKernels}')`);
  const { kernels, note } = selectKernels(pref, threadCount(o));
  let cpuWhy: string | undefined; // why `auto` runs on the CPU
  if (choice === 'auto') { // a software adapter is left before a device is made (autoPicksWebGpu)
    const found = await findAdapter();
    const pick = found.ok ? autoPicksWebGpu(found) : undefined;
    if (pick && !pick.ok) cpuWhy = `${pick.reason}; --backend webgpu runs on it`;
  }
  if (choice !== 'cpu' && cpuWhy === undefined) {
    const gpu = await createWebGpuBackend(kernels, note);
    if (gpu.ok) {
      if (choice === 'auto') process.stderr.write(`lowbit: --backend auto: running on WebGPU (${gpu.backend.caps.adapterName})\n`);
      return gpu.backend;
    }
    if (choice === 'webgpu') throw new UsageError(`--backend webgpu: ${gpu.reason}`);
    cpuWhy = gpu.reason;
  }
  if (cpuWhy !== undefined) process.stderr.write(`lowbit: --backend auto: running on the CPU: ${cpuWhy}\n`);
  if (pref === 'auto' && kernels.name !== 'native') providerNotice(note);
  return new CpuBackend(kernels, note);
}

/**
 * Once per install (and again if the reason changes), when the automatic choice is not the native
 * provider: which kernels run, why, and what installing OpenBLAS would gain. Every result records
 * the provider anyway; this is the first-use explanation.
 */
function providerNotice(note: string): void {
  const marker = join(PACKAGE_ROOT, 'build', 'provider-notice.txt');
  try { if (existsSync(marker) && readFileSync(marker, 'utf8') === note) return; } catch { /* show it */ }
  process.stderr.write(`lowbit: CPU kernels: ${note}.\n` +
    'lowbit: installing OpenBLAS makes matrix products about 3× faster than the WebAssembly kernels and gives GPTQ LAPACK\'s Cholesky ' +
    '(Debian: apt-get install libopenblas-dev g++ make, then npm run build:native in lowbit\'s folder). This note is shown once.\n');
  try { writeFileAtomic(marker, note); } catch { /* a read-only install: the note shows again next time */ }
}
