/**
 * f32 GEMM throughput per CPU kernel provider (and PyTorch's, as an anchor, when importable).
 * Prints; asserts nothing (timing lives here, not in test/). Each figure is the best of a few runs
 * after one warm-up, y[M,N] = x[M,K]·w[N,K]ᵀ at 2·M·N·K flops. Then the wasm provider's decode-like
 * gemm (M = 1) with its weight copied in per call vs resident in the wasm memory.
 *   node dist/bench/kernels.js [--threads N] [--sizes 1024,2048,4096]
 */
import { torchPython } from './python.js';
import { availableParallelism } from 'node:os';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CpuKernels } from '../src/backend/cpu/kernels/kernels.js';
import { jsKernels } from '../src/backend/cpu/kernels/js.js';
import { loadNativeKernels } from '../src/backend/cpu/kernels/native.js';
import { loadWasmKernels } from '../src/backend/cpu/kernels/wasm.js';
import { PACKAGE_ROOT } from '../src/paths.js';

export interface KernelBenchOptions { threads?: number; sizes?: number[]; log?: (line: string) => void }

function gflops(k: CpuKernels, n: number, budgetMs: number): number {
  const x = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const w = x.slice().reverse(), y = new Float32Array(n * n);
  k.gemm(x, w, y, n, n, n); // warm-up (and pool start)
  let best = Infinity, spent = 0;
  for (let r = 0; r < 5 && (r < 2 || spent < budgetMs); r++) {
    const t0 = performance.now();
    k.gemm(x, w, y, n, n, n);
    const dt = performance.now() - t0;
    best = Math.min(best, dt);
    spent += dt;
  }
  return (2 * n ** 3) / (best * 1e6);
}

function torchAnchor(sizes: number[], threads: number, log: (l: string) => void): void {
  const script = join(PACKAGE_ROOT, 'bench', 'anchor_torch.py');
  if (!torchPython() || !existsSync(script)) {
    log('  pytorch      absent (python3 cannot import torch; Debian python3-torch provides it)');
    return;
  }
  const r = spawnSync(torchPython()!, [script, String(threads), ...sizes.map(String)], { encoding: 'utf8' });
  for (const line of (r.stdout || r.stderr || '').trim().split('\n')) log(`  pytorch      ${line}`);
}

export async function benchKernels(opts: KernelBenchOptions = {}): Promise<void> {
  const threads = opts.threads ?? availableParallelism();
  const sizes = opts.sizes ?? [1024, 2048];
  const log = opts.log ?? ((l: string) => console.log(l));
  log(`f32 GEMM, GFLOP/s (${threads} thread${threads === 1 ? '' : 's'}; M = N = K)`);
  log(`  provider     ${sizes.map((n) => `${n}³`.padStart(9)).join('')}`);
  const rows: [string, CpuKernels | string][] = [];
  const native = loadNativeKernels(threads), wasm = loadWasmKernels(threads);
  rows.push(['native', native.ok ? native.kernels : native.reason]);
  rows.push(['wasm', wasm.ok ? wasm.kernels : wasm.reason]);
  rows.push(['js', jsKernels]);
  for (const [name, k] of rows) {
    if (typeof k === 'string') { log(`  ${name.padEnd(12)} unavailable: ${k}`); continue; }
    const cells = sizes.map((n) => {
      if (name === 'js' && n > 1024) return '(slow)'.padStart(9); // single-threaded reference
      return gflops(k, n, 3000).toFixed(1).padStart(9);
    });
    log(`  ${name.padEnd(12)} ${cells.join('')}${name === 'js' ? '   (1 thread)' : ''}`);
    await new Promise((r) => setImmediate(r));
  }
  torchAnchor(sizes, threads, log);
  if (wasm.ok) benchWasmResident(wasm.kernels, threads, log);
}

/**
 * Decode-like wasm gemm (M = 1, one 4096×4096 weight): the weight copied into the wasm memory on
 * every call (an ordinary array) against a resident one (CpuBackend.uploadWeight puts weights there).
 * Median of 25 calls after 3 warm-ups.
 */
function benchWasmResident(k: CpuKernels, threads: number, log: (l: string) => void): void {
  const mem = k.resident;
  if (!mem) return;
  const N = 4096, K = 4096, x = new Float32Array(K).map((_, i) => Math.sin(i)), y = new Float32Array(N);
  const median = (call: () => void): number => {
    for (let r = 0; r < 3; r++) call();
    const t: number[] = [];
    for (let r = 0; r < 25; r++) { const t0 = performance.now(); call(); t.push(performance.now() - t0); }
    return t.sort((a, b) => a - b)[12]!;
  };
  log(`wasm gemm M = 1, ${N}×${K} weight, ms per call (${threads} thread${threads === 1 ? '' : 's'}; median of 25)`);
  log('  weight          copied  resident');
  for (const dtype of ['f32', 'bf16'] as const) {
    const w = dtype === 'f32' ? new Float32Array(N * K).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5)
      : new Uint16Array(N * K).map((_, i) => 0x3f80 ^ ((i * 7919) & 0x807f));
    const run = (wa: Float32Array | Uint16Array) => (): void => {
      if (wa instanceof Float32Array) k.gemm(x, wa, y, 1, N, K); else k.gemmHalf(x, wa, 'bf16', y, 1, N, K);
    };
    const copied = median(run(w));
    const r = w instanceof Float32Array ? mem.alloc('f32', w.length) : mem.alloc('u16', w.length);
    r.set(w);
    const resident = median(run(r));
    mem.release(r);
    log(`  ${dtype.padEnd(12)} ${copied.toFixed(2).padStart(9)} ${resident.toFixed(2).padStart(9)}`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name: string): string | undefined => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
  const t = arg('--threads'), s = arg('--sizes');
  await benchKernels({ threads: t ? Number(t) : undefined, sizes: s ? s.split(',').map(Number) : undefined });
  process.exit(0);
}
