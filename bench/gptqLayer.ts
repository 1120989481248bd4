/**
 * Times GPTQ on one random linear layer: Hessian accumulation (XᵀX over `tokens` calibration tokens,
 * fed in sequences of up to 2048) and the solve (damping, Cholesky, blocked quantization), with a
 * linear-algebra provider (a CpuKernels) or the TypeScript reference. benchGptqLayer prints nothing.
 *   node dist/bench/gptqLayer.js [--full] [--threads N] [--only q_proj,up_proj] [--f64-solve]
 * prints, per LLaMA-3-8B shape (q_proj 4096×4096, up_proj 14336×4096, down_proj 4096×14336), the
 * provider's ('auto': native when built) Hessian and solve times (solve with gptq.py's float32 lazy
 * update; with --f64-solve also with the float64 default, whose TypeScript update takes minutes),
 * the TypeScript reference on a small shape, and PyTorch's times for the same algorithm
 * when python3 can import torch (bench/gptq_torch.py). Without --full: 128 × 64 tokens (the Hessian's
 * cost is linear in tokens); --full: the issue's 128 × 2048.
 */
import { torchPython } from './python.js';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { selectKernels } from '../src/backend/cpu/kernels/select.js';
import { HessianAccumulator } from '../src/quant/core/hessian.js';
import type { QuantLinalg } from '../src/quant/core/linalgProvider.js';
import { gptq } from '../src/quant/methods/gptq.js';
import { PACKAGE_ROOT } from '../src/paths.js';

export interface GptqLayerShape {
  rows: number;       // out_features
  cols: number;       // in_features
  tokens: number;     // calibration tokens
  bits?: number;      // 4
  groupSize?: number; // 128 (or -1 when it does not divide cols)
  actOrder?: boolean;
  lazyUpdate?: 'f64' | 'f32';
  hessianPrecision?: 'f64' | 'f32';
}

export interface GptqLayerFigures extends Required<GptqLayerShape> {
  hessianSeconds: number;
  hessianGflops: number; // useful flops: tokens · cols² (upper triangle, multiply + add)
  solveSeconds: number;
  loss: number;
}

const SEQ = 2048;

/** Deterministic standard normals (xorshift32 + Box-Muller) so runs are comparable. */
function normals(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s + 0.5) / 4294967296; };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

export async function benchGptqLayer(shapes: GptqLayerShape[], linalg?: QuantLinalg): Promise<GptqLayerFigures[]> {
  const figures: GptqLayerFigures[] = [];
  for (const shape of shapes) {
    const { rows, cols, tokens } = shape;
    const bits = shape.bits ?? 4;
    const groupSize = shape.groupSize ?? (cols % 128 === 0 ? 128 : -1);
    const actOrder = shape.actOrder ?? false, lazyUpdate = shape.lazyUpdate ?? 'f64';
    const acc = new HessianAccumulator(cols, { ...(linalg ? { linalg } : {}), precision: shape.hessianPrecision ?? 'f64' });
    const seqTokens = Math.min(SEQ, tokens);
    const X = normals(seqTokens * cols, 1); // one sequence's activations, reused (timing does not depend on values)
    let t0 = performance.now();
    for (let done = 0; done < tokens; done += seqTokens) {
      const t = Math.min(seqTokens, tokens - done);
      acc.add(t === seqTokens ? X : X.subarray(0, t * cols), t);
      await new Promise((r) => setImmediate(r)); // stay responsive between sequences
    }
    const H = acc.finish();
    const hessianSeconds = (performance.now() - t0) / 1000;
    const W = normals(rows * cols, 2);
    for (let i = 0; i < W.length; i++) W[i]! *= 0.02;
    t0 = performance.now();
    const r = gptq(W, rows, cols, H, { spec: { bits, groupSize, sym: false, scaleDtype: 'f16' }, actOrder, consumeH: true, linalg, lazyUpdate });
    const solveSeconds = (performance.now() - t0) / 1000;
    figures.push({
      rows, cols, tokens, bits, groupSize, actOrder, lazyUpdate, hessianPrecision: shape.hessianPrecision ?? 'f64',
      hessianSeconds, hessianGflops: (tokens * cols * cols) / hessianSeconds / 1e9, solveSeconds, loss: r.loss,
    });
  }
  return figures;
}

const SHAPES: [string, number, number][] = [['q_proj', 4096, 4096], ['up_proj', 14336, 4096], ['down_proj', 4096, 14336]];

/** PyTorch's times for the same shapes and algorithm, or why there are none. */
function torchAnchor(tokens: number, threads: number, only: string[]): string[] {
  if (!torchPython()) {
    return ["PyTorch anchor: absent (python3 -c 'import torch' fails)"];
  }
  const script = join(PACKAGE_ROOT, 'bench', 'gptq_torch.py');
  const args = [script, String(threads), String(tokens), ...SHAPES.filter(([n]) => only.includes(n)).map(([, r, c]) => `${r}x${c}`)];
  const r = spawnSync(torchPython()!, args, { encoding: 'utf8' });
  return (r.stdout || r.stderr || '').trim().split('\n').map((l) => `PyTorch anchor: ${l}`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const full = argv.includes('--full');
  const ti = argv.indexOf('--threads'), threads = ti >= 0 ? Number(argv[ti + 1]) : availableParallelism();
  // Without --full, down_proj (a 14336² Hessian and Cholesky: minutes on 2 cores) only when named.
  const oi = argv.indexOf('--only');
  const only = oi >= 0 ? argv[oi + 1]!.split(',') : full ? SHAPES.map(([n]) => n) : ['q_proj', 'up_proj'];
  const tokens = 128 * (full ? 2048 : 64), withF64 = argv.includes('--f64-solve');
  const { kernels, note } = selectKernels('auto', threads);
  const log = (l: string) => console.log(l);
  log(`GPTQ on one layer, 4-bit, group 128, ${tokens} calibration tokens (128 × ${tokens / 128}); provider: ${note}`);
  log('  lowbit default = float64 Hessian sums + float64 lazy update (exact); gptq.py precision = float32 Hessian GEMM per sequence + float32 update');
  log('  layer       provider  rows×cols      Hessian s (f64 / f32)   solve s (f64 / f32 update)');
  const row = (name: string, prov: string, a: GptqLayerFigures, b?: GptqLayerFigures) => log(
    `  ${name.padEnd(11)} ${prov.padEnd(9)} ${`${a.rows}×${a.cols}`.padEnd(14)} ${a.hessianSeconds.toFixed(2).padStart(9)} / ${(b ? b.hessianSeconds.toFixed(2) : '-').padEnd(10)}`
    + `  ${a.solveSeconds.toFixed(2).padStart(9)} / ${b ? b.solveSeconds.toFixed(2) : '-'}`);
  for (const [name, rows, cols] of SHAPES) {
    if (!only.includes(name)) continue;
    const [exact] = await benchGptqLayer([{ rows, cols, tokens, lazyUpdate: 'f64', hessianPrecision: 'f64' }], kernels);
    const [fast] = await benchGptqLayer([{ rows, cols, tokens, lazyUpdate: 'f32', hessianPrecision: 'f32' }], kernels);
    row(name, kernels.name, exact!, fast);
  }
  void withF64;
  const [ts] = await benchGptqLayer([{ rows: 1024, cols: 1024, tokens: 128 * 64, lazyUpdate: 'f32' }]);
  row('small', 'ts', ts!);
  for (const l of torchAnchor(tokens, threads, only)) log(l);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
  process.exit(0);
}
