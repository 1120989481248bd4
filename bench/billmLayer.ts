/**
 * Times BiLLM on one linear layer of LLaMA-3-8B shape next to GPTQ (bench/gptqLayer.ts) on the same
 * shape and calibration tokens:
 *   node dist/bench/billmLayer.js [--full] [--samples N] [--threads N] [--only q_proj,up_proj,down_proj]
 * Per shape (q_proj 4096×4096, up_proj 14336×4096, down_proj 4096×14336): GPTQ's Hessian accumulation
 * (N × 2048 tokens, float64) and its solve at W2 g128 (the study's sub-2-bit comparison), both from
 * benchGptqLayer; then BiLLM's solve (damping, Cholesky, per block of 128 the salience, the salient-column
 * and break-point searches, the binarization, the lazy update) on an SPD Hessian of the same size. BiLLM
 * reads the same statistic as GPTQ, so the Hessian's time is shared, and its solve does no work that
 * depends on H's values beyond the Cholesky: the synthetic H (built in O(cols²)) times it fairly.
 * N = 4 by default (the Hessian grows linearly with N; neither solve depends on it); 128 with --full.
 * Without --full, down_proj (a 14336² Hessian) only when named.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { selectKernels } from '../src/backend/cpu/kernels/select.js';
import type { QuantLinalg } from '../src/quant/core/linalgProvider.js';
import { billm } from '../src/quant/methods/billm.js';
import { benchGptqLayer } from './gptqLayer.js';
import { LAYER_SHAPES, SEQ, layerBenchArgs } from './layerBench.js';

export interface BillmLayerFigures {
  rows: number;
  cols: number;
  blockSize: number;
  solveSeconds: number;
  /** the paper's bits per weight for this layer (1 + salient fraction) */
  paperBits: number;
}

/** A seeded SPD matrix [n, n]: a random symmetric part of norm < 1 on a diagonal of 1..2. */
function spd(n: number, seed: number): Float64Array {
  let s = seed >>> 0 || 1;
  const u = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
  const H = new Float64Array(n * n), scale = 1 / (2 * n);
  for (let i = 0; i < n; i++) {
    H[i * n + i] = 1 + u();
    for (let j = i + 1; j < n; j++) { const v = (u() - 0.5) * scale; H[i * n + j] = v; H[j * n + i] = v; }
  }
  return H;
}

/** Laplace-distributed weights (scale 0.02), seeded. */
function weights(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s + 0.5) / 4294967296; };
  return Float32Array.from({ length: n }, () => { const v = u() - 0.5; return -Math.sign(v) * Math.log(1 - 2 * Math.abs(v)) * 0.02; });
}

export function benchBillmLayer(rows: number, cols: number, linalg?: QuantLinalg, blockSize = 128): BillmLayerFigures {
  const H = spd(cols, 3), W = weights(rows * cols, 4);
  const t0 = performance.now();
  const r = billm(W, rows, cols, H, { blockSize, linalg });
  return { rows, cols, blockSize, solveSeconds: (performance.now() - t0) / 1000, paperBits: r.paperBits };
}


async function main(): Promise<void> {
  const { threads, only, samples } = layerBenchArgs();
  const { kernels, note } = selectKernels('auto', threads);
  const log = (l: string) => console.log(l);
  log(`BiLLM on one layer (blocks of 128) next to GPTQ W2 g128, ${samples} × ${SEQ} calibration tokens, ${threads} threads; provider: ${note}`);
  log('  the Hessian (float64 sums) is the same statistic for both; solves use the provider\'s Cholesky and float64 GEMM.');
  log('  layer      rows×cols     Hessian s   GPTQ solve s   BiLLM solve s   BiLLM / GPTQ solve   BiLLM bits (paper)');
  const f = (x: number) => x.toFixed(2);
  for (const [name, rows, cols] of LAYER_SHAPES) {
    if (!only.includes(name)) continue;
    const [g] = await benchGptqLayer([{ rows, cols, tokens: samples * SEQ, bits: 2, groupSize: 128, lazyUpdate: 'f64', hessianPrecision: 'f64' }], kernels);
    const b = benchBillmLayer(rows, cols, kernels);
    log(`  ${name.padEnd(10)} ${`${rows}×${cols}`.padEnd(13)} ${f(g!.hessianSeconds).padStart(9)}   ${f(g!.solveSeconds).padStart(12)}   `
      + `${f(b.solveSeconds).padStart(13)}   ${f(b.solveSeconds / g!.solveSeconds).padStart(18)}   ${b.paperBits.toFixed(4)}`);
    log(JSON.stringify({ bench: 'billm-layer', layer: name, rows, cols, samples, threads, gptq: g, billm: b }));
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
  process.exit(0);
}
