/**
 * What the one-layer benchmarks (gptqLayer, quipLayer, pbllmLayer, billmLayer) share: LLaMA-3-8B's
 * linear shapes, seeded random activations and weights, the timed Hessian over N × 2048 calibration
 * tokens, and their command-line flags ([--full] [--samples N] [--threads N] [--only a,b]).
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { HessianAccumulator, type HessianPrecision } from '../src/quant/core/hessian.js';
import type { QuantLinalg } from '../src/quant/core/linalgProvider.js';

/** tokens per calibration sequence */
export const SEQ = 2048;

/** LLaMA-3-8B's linear shapes [name, rows = out, cols = in] (k/v and o share q's input or output width). */
export const LAYER_SHAPES: readonly (readonly [string, number, number])[] = [['q_proj', 4096, 4096], ['up_proj', 14336, 4096], ['down_proj', 4096, 14336]];

/** Deterministic standard normals (xorshift32 + Box-Muller) so runs are comparable. */
export function normals(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s + 0.5) / 4294967296; };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/** A seeded random weight [rows, cols] with LLaMA-like scale (normals × 0.02). */
export function randomWeight(rows: number, cols: number): Float32Array {
  const W = normals(rows * cols, 2);
  for (let i = 0; i < W.length; i++) W[i]! *= 0.02;
  return W;
}

/**
 * The Hessian XᵀX of `tokens` calibration tokens fed in sequences of up to 2048 (one sequence's random
 * activations reused: the time does not depend on the values), and the seconds it took.
 */
export async function timedHessian(cols: number, tokens: number, linalg: QuantLinalg | undefined, precision: HessianPrecision = 'f64'): Promise<{ H: Float64Array; seconds: number }> {
  const acc = new HessianAccumulator(cols, { ...(linalg ? { linalg } : {}), precision });
  const seqTokens = Math.min(SEQ, tokens);
  const X = normals(seqTokens * cols, 1);
  const t0 = performance.now();
  for (let done = 0; done < tokens; done += seqTokens) {
    const t = Math.min(seqTokens, tokens - done);
    acc.add(t === seqTokens ? X : X.subarray(0, t * cols), t);
    await new Promise((r) => setImmediate(r)); // stay responsive between sequences
  }
  const H = acc.finish();
  return { H, seconds: (performance.now() - t0) / 1000 };
}

export interface LayerBenchArgs {
  readonly full: boolean;
  readonly threads: number;
  /** the shapes to run: all with --full, else q_proj and up_proj (down_proj's 14336² Hessian takes minutes on 2 cores) unless --only names them */
  readonly only: readonly string[];
  /** 2048-token calibration sequences: 4, or 128 with --full (the issues' 128 × 2048) */
  readonly samples: number;
  /** the value of another flag */
  opt(name: string): string | undefined;
}

export function layerBenchArgs(argv: readonly string[] = process.argv.slice(2)): LayerBenchArgs {
  const full = argv.includes('--full');
  const opt = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  return {
    full, opt,
    threads: Number(opt('--threads') ?? availableParallelism()),
    only: opt('--only')?.split(',') ?? (full ? LAYER_SHAPES.map(([n]) => n) : ['q_proj', 'up_proj']),
    samples: Number(opt('--samples') ?? (full ? 128 : 4)),
  };
}
