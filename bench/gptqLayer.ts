/**
 * Times GPTQ on one random linear layer: Hessian accumulation (XᵀX over `tokens` calibration tokens,
 * fed in sequences of up to 2048) and the solve (damping, Cholesky, blocked quantization), with a
 * linear-algebra provider (a CpuKernels) or the TypeScript reference. benchGptqLayer prints nothing.
 *   node dist/bench/gptqLayer.js [--full] [--samples N] [--threads N] [--only q_proj,up_proj,down_proj] [--kernels auto|native|wasm|js]
 * prints, per LLaMA-3-8B shape (q_proj 4096×4096, up_proj 14336×4096, down_proj 4096×14336), the
 * provider's ('auto': native when built) Hessian and solve times in gptq.py's float32 precision and in
 * lowbit's float64 default, PyTorch's times for the same algorithm when python3 can import torch
 * (bench/gptq_torch.py), run right after on the same shape, and the ratios. Calibration: N sequences
 * of 2048 tokens; N = 4 by default (the Hessian's cost is linear in N, the solve's does not depend on
 * it), 128 with --full (the issue's 128 × 2048).
 */
import { torchPython } from './python.js';
import { LAYER_SHAPES, SEQ, layerBenchArgs, randomWeight, timedHessian } from './layerBench.js';
import { performance } from 'node:perf_hooks';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { selectKernels } from '../src/backend/cpu/kernels/select.js';
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


export async function benchGptqLayer(shapes: GptqLayerShape[], linalg?: QuantLinalg): Promise<GptqLayerFigures[]> {
  const figures: GptqLayerFigures[] = [];
  for (const shape of shapes) {
    const { rows, cols, tokens } = shape;
    const bits = shape.bits ?? 4;
    const groupSize = shape.groupSize ?? (cols % 128 === 0 ? 128 : -1);
    const actOrder = shape.actOrder ?? false, lazyUpdate = shape.lazyUpdate ?? 'f64';
    const { H, seconds: hessianSeconds } = await timedHessian(cols, tokens, linalg, shape.hessianPrecision ?? 'f64');
    const W = randomWeight(rows, cols);
    const t0 = performance.now();
    const r = gptq(W, rows, cols, H, { spec: { bits, groupSize, sym: false, scaleDtype: 'f16' }, actOrder, consumeH: true, linalg, lazyUpdate });
    const solveSeconds = (performance.now() - t0) / 1000;
    figures.push({
      rows, cols, tokens, bits, groupSize, actOrder, lazyUpdate, hessianPrecision: shape.hessianPrecision ?? 'f64',
      hessianSeconds, hessianGflops: (tokens * cols * cols) / hessianSeconds / 1e9, solveSeconds, loss: r.loss,
    });
  }
  return figures;
}


interface TorchTimes { hessianSeconds: number; solveSeconds: number; version: string }

/** PyTorch's times for one shape and the same algorithm (bench/gptq_torch.py), or why there are none. */
function torchAnchor(tokens: number, threads: number, rows: number, cols: number): TorchTimes | string {
  if (!torchPython()) return "absent (python3 -c 'import torch' fails)";
  const script = join(PACKAGE_ROOT, 'bench', 'gptq_torch.py');
  const r = spawnSync(torchPython()!, [script, String(threads), String(tokens), `${rows}x${cols}`], { encoding: 'utf8' });
  const m = /hessian_s ([\d.]+) solve_s ([\d.]+) \((.*)\)/.exec(r.stdout ?? '');
  if (!m) return `failed: ${(r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n').slice(-2).join(' | ')}`;
  return { hessianSeconds: Number(m[1]), solveSeconds: Number(m[2]), version: m[3]! };
}

async function main(): Promise<void> {
  const { threads, only, samples, opt } = layerBenchArgs();
  const tokens = samples * SEQ;
  const { kernels, note } = selectKernels((opt('--kernels') ?? 'auto') as 'auto' | 'native' | 'wasm' | 'js', threads);
  const log = (l: string) => console.log(l);
  log(`GPTQ on one layer, 4-bit, group 128, ${samples} × ${SEQ} calibration tokens, ${threads} threads; provider: ${note}`);
  log('  f32 = gptq.py\'s precision (float32 XᵀX per sequence, float32 lazy update), the algorithm PyTorch runs;');
  log('  f64 = lowbit\'s default (float64 Hessian sums and lazy update). Ratios are lowbit time / PyTorch time (target ≤ 1.25).');
  log('  layer      rows×cols     Hessian s f32 / f64 / torch   solve s f32 / f64 / torch   ratio Hessian f32 (f64)   ratio solve f32 (f64)');
  const f = (x: number) => x.toFixed(2);
  for (const [name, rows, cols] of LAYER_SHAPES) {
    if (!only.includes(name)) continue;
    const [fast] = await benchGptqLayer([{ rows, cols, tokens, lazyUpdate: 'f32', hessianPrecision: 'f32' }], kernels);
    const [exact] = await benchGptqLayer([{ rows, cols, tokens, lazyUpdate: 'f64', hessianPrecision: 'f64' }], kernels);
    const t = torchAnchor(tokens, threads, rows, cols);
    const tt = typeof t === 'string' ? undefined : t;
    const ratio = (a: number, b?: number) => (b ? `${f(a / b)}${a / b <= 1.25 ? ' met' : ' NOT met'}` : '-');
    log(`  ${name.padEnd(10)} ${`${rows}×${cols}`.padEnd(13)} ${f(fast!.hessianSeconds).padStart(8)} / ${f(exact!.hessianSeconds)} / ${tt ? f(tt.hessianSeconds) : '-'}`
      + `   ${f(fast!.solveSeconds).padStart(8)} / ${f(exact!.solveSeconds)} / ${tt ? f(tt.solveSeconds) : '-'}`
      + `   ${ratio(fast!.hessianSeconds, tt?.hessianSeconds)} (${tt ? f(exact!.hessianSeconds / tt.hessianSeconds) : '-'})`
      + `   ${ratio(fast!.solveSeconds, tt?.solveSeconds)} (${tt ? f(exact!.solveSeconds / tt.solveSeconds) : '-'})`);
    log(JSON.stringify({ bench: 'gptq-layer', layer: name, rows, cols, samples, threads, lowbitF32: fast, lowbitF64: exact, torch: t }));
  }
  const [ts] = await benchGptqLayer([{ rows: 1024, cols: 1024, tokens: 4 * SEQ, lazyUpdate: 'f32' }]);
  log(`  TypeScript reference (no provider), 1024×1024, 4 × ${SEQ} tokens: Hessian ${f(ts!.hessianSeconds)} s, solve ${f(ts!.solveSeconds)} s`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
  process.exit(0);
}
