/**
 * Times GPTQ on one random linear layer: Hessian accumulation (XᵀX over `tokens` calibration tokens,
 * fed in sequences of up to 2048) and the solve (damping, Cholesky, blocked quantization).
 * Prints nothing; returns figures for bench/run.ts (or a caller) to print.
 * The LLaMA-3-8B shapes (4096×4096, 14336×4096, 4096×14336 at 128 × 2048 tokens) take a long time in
 * plain TypeScript: start with small ones.
 */
import { performance } from 'node:perf_hooks';
import { HessianAccumulator } from '../src/quant/core/hessian.js';
import { gptq } from '../src/quant/methods/gptq.js';

export interface GptqLayerShape {
  rows: number;       // out_features
  cols: number;       // in_features
  tokens: number;     // calibration tokens
  bits?: number;      // 4
  groupSize?: number; // 128 (or -1 when it does not divide cols)
  actOrder?: boolean;
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

export async function benchGptqLayer(shapes: GptqLayerShape[]): Promise<GptqLayerFigures[]> {
  const figures: GptqLayerFigures[] = [];
  for (const shape of shapes) {
    const { rows, cols, tokens } = shape;
    const bits = shape.bits ?? 4;
    const groupSize = shape.groupSize ?? (cols % 128 === 0 ? 128 : -1);
    const actOrder = shape.actOrder ?? false;
    const acc = new HessianAccumulator(cols);
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
    const r = gptq(W, rows, cols, H, { spec: { bits, groupSize, sym: false, scaleDtype: 'f16' }, actOrder, consumeH: true });
    const solveSeconds = (performance.now() - t0) / 1000;
    figures.push({
      rows, cols, tokens, bits, groupSize, actOrder,
      hessianSeconds, hessianGflops: (tokens * cols * cols) / hessianSeconds / 1e9, solveSeconds, loss: r.loss,
    });
  }
  return figures;
}
