/**
 * Times PB-LLM on one random linear layer next to GPTQ (bench/gptqLayer.ts) on the same shape: the
 * Hessian (XᵀX over the calibration tokens, sequences of 2048) and the solve (damping, Cholesky, the
 * salience mask, μ and α, the blocked sweep), both in lowbit's float64 default with the native provider.
 *   node dist/bench/pbllmLayer.js [--full] [--samples N] [--threads N] [--only q_proj,up_proj,down_proj]
 *     [--low-frac F]
 * prints, per LLaMA-3-8B shape (q_proj 4096×4096, up_proj 14336×4096, down_proj 4096×14336), PB-LLM's
 * seconds (low fraction 0.9, 8-bit salient grid, groups of 128) and GPTQ's (W2 g128), and the layer's
 * total (Hessian + solve). Calibration: N sequences of 2048 tokens; N = 4 by default (the Hessian's
 * cost is linear in N, the solve's does not depend on it), 128 with --full (the issue's 128 × 2048).
 * Without --full only q_proj and up_proj run (down_proj's 14336² Hessian takes minutes on 2 cores).
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { selectKernels } from '../src/backend/cpu/kernels/select.js';
import type { QuantLinalg } from '../src/quant/core/linalgProvider.js';
import { pbllm } from '../src/quant/methods/pbllm.js';
import { benchGptqLayer, type GptqLayerFigures } from './gptqLayer.js';
import { LAYER_SHAPES, SEQ, layerBenchArgs, randomWeight, timedHessian } from './layerBench.js';

export interface PbllmLayerFigures {
  rows: number; cols: number; tokens: number; lowFrac: number; groupSize: number;
  hessianSeconds: number;
  solveSeconds: number;
  /** fraction of the weights binarized */
  binarized: number;
  loss: number;
}

export async function benchPbllmLayer(rows: number, cols: number, tokens: number, lowFrac: number, linalg?: QuantLinalg): Promise<PbllmLayerFigures> {
  const groupSize = cols % 128 === 0 ? 128 : -1;
  const { H, seconds: hessianSeconds } = await timedHessian(cols, tokens, linalg);
  const W = randomWeight(rows, cols);
  let t0 = performance.now();
  const r = pbllm(W, rows, cols, H, { lowFrac, groupSize, ...(linalg ? { linalg } : {}) });
  const solveSeconds = (performance.now() - t0) / 1000;
  let b = 0;
  for (const x of r.binarized) b += x;
  return { rows, cols, tokens, lowFrac, groupSize, hessianSeconds, solveSeconds, binarized: b / r.binarized.length, loss: r.loss };
}


async function main(): Promise<void> {
  const { threads, only, samples, opt } = layerBenchArgs();
  const lowFrac = Number(opt('--low-frac') ?? 0.9);
  const tokens = samples * SEQ;
  const { kernels, note } = selectKernels('auto', threads);
  const log = (l: string) => console.log(l);
  const f = (x: number) => x.toFixed(2);
  log(`PB-LLM (low fraction ${lowFrac}, 8-bit salient, g128) next to GPTQ (W2 g128) on one layer, ${samples} × ${SEQ} calibration tokens, ${threads} threads; provider: ${note}`);
  log('  float64 Hessian sums and lazy updates (lowbit\'s default) for both.');
  await benchPbllmLayer(512, 512, SEQ, lowFrac, kernels); // warm-up: JIT and BLAS threads, so that the first shape is not charged for them
  await benchGptqLayer([{ rows: 512, cols: 512, tokens: SEQ }], kernels);
  log('  layer      rows×cols     Hessian s PB-LLM / GPTQ   solve s PB-LLM / GPTQ   layer s PB-LLM / GPTQ   PB/GPTQ');
  for (const [name, rows, cols] of LAYER_SHAPES) {
    if (!only.includes(name)) continue;
    const pb = await benchPbllmLayer(rows, cols, tokens, lowFrac, kernels);
    const [g] = await benchGptqLayer([{ rows, cols, tokens, bits: 2, lazyUpdate: 'f64', hessianPrecision: 'f64' }], kernels) as [GptqLayerFigures];
    const pbTotal = pb.hessianSeconds + pb.solveSeconds, gTotal = g.hessianSeconds + g.solveSeconds;
    log(`  ${name.padEnd(10)} ${`${rows}×${cols}`.padEnd(13)} ${f(pb.hessianSeconds).padStart(8)} / ${f(g.hessianSeconds)}`
      + `   ${f(pb.solveSeconds).padStart(12)} / ${f(g.solveSeconds)}   ${f(pbTotal).padStart(12)} / ${f(gTotal)}   ${f(pbTotal / gTotal)}`);
    log(JSON.stringify({ bench: 'pbllm-layer', layer: name, rows, cols, samples, threads, pbllm: pb, gptq: g }));
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
  process.exit(0);
}
