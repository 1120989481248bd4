/**
 * GPTQ's solve on the WebGPU device (`gptq --device-solve`, Backend.gptqSolve: float32, gptq.py's precision) per
 * layer shape: the fast kernels (the blocked Cholesky and inverse, 3n/32 dispatches, and the tiled lazy update)
 * next to the reference kernels (4n dispatches) where asked, and PyTorch running gptq.py's fasterquant on the
 * same shape in the same run (bench/gptq_torch.py --cuda: CUDA when torch sees a GPU, else the CPU, said in the
 * row). The solve is everything after the Hessian: upload, factorization, the column blocks, the read back; the
 * Hessian is a Kac–Murdock–Szegő matrix (0.5^|i−j|, positive definite, made in O(n²)), since the solve's time
 * does not depend on its values. "host" is the part outside Backend.gptqFactor and gptqSolve: W and H prepared (float32 H
 * in processing order), the outputs put back in column order. W4 g128 asymmetric (per channel where 128 does not divide the columns). The wall clock around one call, after a warm-up call on a
 * small layer (pipeline compiles). Prints; asserts nothing. Without an adapter it prints why and exits 0.
 *   node dist/bench/webgpuGptqSolve.js [--shapes 4096x4096,1024x4096,14336x4096,4096x14336] [--kernels fast,reference] [--no-torch]
 * Shapes are ROWSxCOLS (out × in); the default is LLaMA-3-8B's q_proj, k_proj, up_proj and down_proj.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { jsKernels } from '../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../src/backend/webgpu/webgpuBackend.js';
import { gptqOnDevice } from '../src/quant/methods/gptq.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { randomWeight } from './layerBench.js';
import { torchPython } from './python.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const shapes = arg('--shapes', '4096x4096,1024x4096,14336x4096,4096x14336').split(',').map((s) => {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m) throw new Error(`--shapes: '${s}' is not ROWSxCOLS`);
  return [Number(m[1]), Number(m[2])] as [number, number];
});
const kinds = arg('--kernels', 'fast').split(',');
for (const k of kinds) if (k !== 'fast' && k !== 'reference') throw new Error(`--kernels: '${k}' is not fast or reference`);
const spec = (cols: number) => ({ bits: 4, groupSize: cols % 128 === 0 ? 128 : -1, sym: false });

/** The KMS matrix 0.5^|i−j| (its eigenvalues lie in [1/3, 3]). */
function kms(n: number): Float64Array {
  const H = new Float64Array(n * n), pw = Float64Array.from({ length: n }, (_, d) => 0.5 ** d);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) H[i * n + j] = pw[Math.abs(i - j)]!;
  return H;
}

/** PyTorch's solve seconds per shape (gptq_torch.py --cuda), or why there are none. */
function torchSolve(): Map<string, string> {
  const out = new Map<string, string>();
  const why = (s: string) => { for (const [r, c] of shapes) out.set(`${r}x${c}`, s); return out; };
  if (process.argv.includes('--no-torch')) return why('not asked (--no-torch)');
  if (!torchPython()) return why("absent (python3 -c 'import torch' fails)");
  const r = spawnSync(torchPython()!, [join(PACKAGE_ROOT, 'bench', 'gptq_torch.py'), String(availableParallelism()), '2048', ...shapes.map(([a, b]) => `${a}x${b}`), '--cuda'], { encoding: 'utf8' });
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = /^(\d+x\d+) hessian_s [\d.]+ solve_s ([\d.]+) \((.*)\)/.exec(line);
    if (m) out.set(m[1]!, `${m[2]} s (${m[3]})`);
  }
  for (const [a, b] of shapes) if (!out.has(`${a}x${b}`)) out.set(`${a}x${b}`, `failed: ${(r.stderr || `exit ${r.status}`).trim().split('\n').slice(-1)[0]}`);
  return out;
}

const backends = [];
for (const k of kinds) {
  const made = await createWebGpuBackend(jsKernels, 'js', { kernels: k as 'fast' | 'reference' });
  if (!made.ok) {
    console.log(`GPTQ device solve: no WebGPU adapter (${made.reason}); nothing timed`);
    process.exit(0);
  }
  backends.push([k, made.backend] as const);
}
console.log(`GPTQ's solve on the device (float32), W4 g128 asym; ${backends[0]![1].description}`);
const torch = torchSolve();
// kernels outer, shapes inner: each row prints as it finishes, the fast kernels' first
for (const [k, be] of backends) {
  await gptqOnDevice(be, randomWeight(8, 256), 8, 256, kms(256), { spec: spec(256) }); // compiles the pipelines
  for (const [rows, cols] of shapes) {
    const W = randomWeight(rows, cols), H = kms(cols);
    const row: Record<string, unknown> = { bench: 'webgpu-gptq-solve', kernels: k, rows, cols };
    const t0 = performance.now();
    let cell: string, device = 0;
    // the host's share: everything outside Backend.gptqFactor and gptqSolve (preparing W and H, the outputs back in column order)
    const factor = be.gptqFactor.bind(be), solve = be.gptqSolve.bind(be);
    const timing = async <R>(f: () => Promise<R>): Promise<R> => { const s0 = performance.now(); try { return await f(); } finally { device += performance.now() - s0; } };
    const timed = Object.assign(Object.create(be) as typeof be, {
      gptqFactor: (...a: Parameters<typeof factor>) => timing(() => factor(...a)),
      gptqSolve: (...a: Parameters<typeof solve>) => timing(() => solve(...a)),
    });
    try {
      const r = await gptqOnDevice(timed, W, rows, cols, H, { spec: spec(cols) });
      row.seconds = +((performance.now() - t0) / 1000).toFixed(3);
      row.hostSeconds = +(row.seconds as number - device / 1000).toFixed(3);
      row.loss = r.loss;
      cell = `${(row.seconds as number).toFixed(2)} s (host ${(row.hostSeconds as number).toFixed(2)} s)`;
    } catch (e) {
      cell = row.error = (e as Error).message;
    }
    row.torch = torch.get(`${rows}x${cols}`);
    console.log(`  ${k.padEnd(9)} ${`${rows}×${cols}`.padEnd(12)} ${cell}; torch ${row.torch}`);
    console.log(JSON.stringify(row));
  }
}
process.exit(0);
