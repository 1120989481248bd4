/**
 * Times QuIP on one random linear layer of each LLaMA-3-8B shape, next to GPTQ on the same layer and
 * the same Hessian:
 *   node dist/bench/quipLayer.js [--full] [--samples N] [--bits B] [--threads N] [--only q_proj,up_proj,down_proj]
 * Per shape (q_proj 4096×4096, up_proj 14336×4096, down_proj 4096×14336): the Hessian over N × 2048
 * calibration tokens (float64 sums, the provider's gram, as lowbit's default), GPTQ's solve (per channel,
 * B bits, lowbit's float64 default), and QuIP's solve (quant/methods/quip.ts: drawing U and V, the
 * pre-processing, LDLQ, the rebuild with fp16 casts) with its stages. N = 4 by default (the Hessian's
 * cost is linear in N; neither solve depends on it), 128 with --full (the issue's 128 × 2048); without
 * --full, down_proj (a 14336² Hessian: minutes on 2 cores, ~6 GiB for QuIP) only when named.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { selectKernels } from '../src/backend/cpu/kernels/select.js';
import type { QuantLinalg } from '../src/quant/core/linalgProvider.js';
import { gptq } from '../src/quant/methods/gptq.js';
import { quip } from '../src/quant/methods/quip.js';
import { LAYER_SHAPES, SEQ, layerBenchArgs, randomWeight, timedHessian } from './layerBench.js';

export interface QuipLayerFigures {
  rows: number;
  cols: number;
  tokens: number;
  bits: number;
  hessianSeconds: number;
  gptqSeconds: number;
  quipSeconds: number;
  quipStages: { transforms: number; preprocess: number; ldlq: number; rebuild: number };
  /** tr(ΔW H ΔWᵀ) of each, on the layer's own Hessian */
  gptqLoss: number;
  quipLoss: number;
}

/** tr(ΔW H ΔWᵀ) with the provider's float64 GEMM, a block of rows at a time. */
function proxyLoss(W: Float32Array, Q: Float32Array, rows: number, cols: number, H: Float64Array, linalg: QuantLinalg): number {
  const chunk = Math.max(1, Math.floor((1 << 22) / cols));
  const d = new Float64Array(chunk * cols), y = new Float64Array(chunk * cols);
  let total = 0;
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const m = Math.min(chunk, rows - r0);
    for (let i = 0; i < m * cols; i++) d[i] = W[r0 * cols + i]! - Q[r0 * cols + i]!;
    linalg.gemmF64!(d.subarray(0, m * cols), H, y.subarray(0, m * cols), m, cols, cols);
    for (let i = 0; i < m * cols; i++) total += d[i]! * y[i]!;
  }
  return total;
}

export async function benchQuipLayer(rows: number, cols: number, tokens: number, bits: number, linalg: QuantLinalg): Promise<QuipLayerFigures> {
  const { H, seconds: hessianSeconds } = await timedHessian(cols, tokens, linalg);
  const W = randomWeight(rows, cols);
  let t0 = performance.now();
  const g = gptq(W, rows, cols, H, { spec: { bits, groupSize: -1, sym: false }, consumeH: false, linalg });
  const gptqSeconds = (performance.now() - t0) / 1000;
  const gptqLoss = proxyLoss(W, g.Q, rows, cols, H, linalg);
  t0 = performance.now();
  const q = quip(W, rows, cols, H, { bits, seed: 0, linalg });
  const quipSeconds = (performance.now() - t0) / 1000;
  return { rows, cols, tokens, bits, hessianSeconds, gptqSeconds, quipSeconds, quipStages: q.seconds, gptqLoss, quipLoss: proxyLoss(W, q.Q, rows, cols, H, linalg) };
}


async function main(): Promise<void> {
  const { threads, only, samples, opt } = layerBenchArgs();
  const bits = Number(opt('--bits') ?? 2);
  const { kernels, note } = selectKernels('auto', threads);
  const log = (l: string) => console.log(l);
  const f = (x: number) => x.toFixed(2);
  log(`QuIP vs GPTQ on one layer, ${bits}-bit per channel, ${samples} × ${SEQ} calibration tokens, ${threads} threads; provider: ${note}`);
  log('  QuIP stages: drawing U and V / pre-processing (rescale, U·W·Vᵀ, V·H·Vᵀ, damping, targets) / LDLQ / rebuild (Uᵀ·Ŵ·V, fp16 casts)');
  log('  layer      rows×cols     Hessian s   GPTQ s   QuIP s (transforms / pre / LDLQ / rebuild)   QuIP/GPTQ   proxy loss QuIP/GPTQ');
  for (const [name, rows, cols] of LAYER_SHAPES) {
    if (!only.includes(name)) continue;
    const r = await benchQuipLayer(rows, cols, samples * SEQ, bits, kernels);
    const s = r.quipStages;
    log(`  ${name.padEnd(10)} ${`${rows}×${cols}`.padEnd(13)} ${f(r.hessianSeconds).padStart(9)}   ${f(r.gptqSeconds).padStart(6)}   ${f(r.quipSeconds).padStart(6)} `
      + `(${f(s.transforms)} / ${f(s.preprocess)} / ${f(s.ldlq)} / ${f(s.rebuild)})   ${f(r.quipSeconds / r.gptqSeconds).padStart(9)}   ${(r.quipLoss / r.gptqLoss).toFixed(3)}`);
    log(JSON.stringify({ bench: 'quip-layer', layer: name, samples, threads, ...r }));
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
  process.exit(0);
}
