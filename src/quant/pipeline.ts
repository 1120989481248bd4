import type { Backend, BTensor } from '../backend/backend.js';
import type { ModelCheckpoint } from '../model/checkpoint.js';
import { blockForward, type LinearInputHook } from '../model/block.js';
import { embedAll, ropeFor, streamBlocks, type StreamProgress } from '../model/stream.js';
import type { BlockWeights } from '../model/weights.js';
import { NAMES, type LayerPart } from '../io/source.js';
import { Tensor } from '../tensor/tensor.js';
import { HessianAccumulator, type HessianPrecision } from "./core/hessian.js";
import { UsageError } from '../errors.js';
import type { LayerOutput, MethodOptions, QuantMethod } from './method.js';
import type { CpuKernels } from '../backend/cpu/kernels/kernels.js';

type Short = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';
const PART: Record<Short, LayerPart> = {
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
};
/** GPTQ's true-sequential order: each group sees inputs recomputed with the groups before it quantized. */
export const TRUE_SEQUENTIAL: readonly (readonly Short[])[] = [['q', 'k', 'v'], ['o'], ['gate', 'up'], ['down']];
const ALL_AT_ONCE: readonly (readonly Short[])[] = [['q', 'k', 'v', 'o', 'gate', 'up', 'down']];

export interface LayerReport {
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  /** mean over calibration sequences of ‖WX − ŴX‖² (= tr(ΔW H ΔWᵀ)/2), null without calibration */
  readonly error: number | null;
  readonly dampUsed: number | null;
  readonly notes: readonly string[];
  readonly seconds: number;
}

export interface QuantizedLinear { readonly name: string; readonly rows: number; readonly cols: number; readonly out: LayerOutput }

export interface PipelineOptions extends MethodOptions {
  readonly method: QuantMethod;
  /** calibration windows (token ids); required when the method needs H or errors are wanted */
  readonly calibration?: readonly Int32Array[] | undefined;
  readonly trueSequential: boolean;
  /** float64 sums (default) or float32 GEMM per calibration sequence (hessian.ts) */
  readonly hessianPrecision?: HessianPrecision;
  /** receives each quantized layer as soon as it is done (the checkpoint writer) */
  readonly onLayer: (layer: QuantizedLinear) => void;
  readonly onProgress?: ((p: StreamProgress & { layer?: string }) => void) | undefined;
}

/**
 * tr(ΔW H ΔWᵀ)/2 for H = 2/n Σ XXᵀ: the mean over calibration sequences of ‖ΔW X‖². Computed as
 * Σ (ΔW·H) ∘ ΔW with `gemm` on chunks of rows (float32 products, float64 sum).
 */
export function reconstructionError(W: Float32Array, Q: Float32Array, rows: number, cols: number, H: Float64Array,
  gemm: CpuKernels['gemm']): number {
  const Hf = Float32Array.from(H);
  const chunk = Math.max(1, Math.min(rows, Math.floor((1 << 24) / cols)));
  const d = new Float32Array(chunk * cols), y = new Float32Array(chunk * cols);
  let total = 0;
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const m = Math.min(chunk, rows - r0);
    for (let i = 0; i < m * cols; i++) d[i] = W[r0 * cols + i]! - Q[r0 * cols + i]!;
    gemm(d.subarray(0, m * cols), Hf, y.subarray(0, m * cols), m, cols, cols); // H is symmetric: d·Hᵀ = d·H
    for (let i = 0; i < m * cols; i++) total += d[i]! * y[i]!;
  }
  return total / 2;
}

/**
 * Quantizes every linear layer of every decoder block, one block at a time (GPTQ's
 * `llama_sequential`): block i's calibration inputs are block i−1's outputs computed with the
 * already-quantized weights; inside a block, layers go in true-sequential groups.
 */
export async function quantizeBlocks(ckpt: ModelCheckpoint, be: Backend, o: PipelineOptions): Promise<LayerReport[]> {
  const cfg = ckpt.config;
  const calib = o.calibration ?? [];
  if (o.method.needsHessian && calib.length === 0) throw new UsageError(`${o.method.name} needs calibration data (--calib)`);
  const reports: LayerReport[] = [];
  const seqlen = calib[0]?.length ?? 0;
  const { hidden } = calib.length ? embedAll(ckpt, be, calib as Int32Array[]) : { hidden: [] as BTensor[] };
  const rope = calib.length ? ropeFor(ckpt, be, 0, seqlen) : undefined;
  const groups = o.trueSequential ? TRUE_SEQUENTIAL : ALL_AT_ONCE;

  const perBlock = async (i: number, w: BlockWeights, xs: BTensor[]): Promise<BTensor[]> => {
    const weights = w as { -readonly [K in keyof BlockWeights]: BlockWeights[K] };
    for (const group of groups) {
      // 1. statistics of this group's inputs, with everything before it already quantized
      const acc = new Map<Short, HessianAccumulator>();
      if (xs.length) {
        for (const s of group) acc.set(s, new HessianAccumulator(s === 'down' ? cfg.intermediateSize : s === 'o' ? cfg.numHeads * cfg.headDim : cfg.hiddenSize, { linalg: be.hostKernels, precision: o.hessianPrecision ?? 'f64' }));
        const pending: Promise<void>[] = [];
        const hook: LinearInputHook = (layer, x) => {
          const a = acc.get(layer);
          if (a) pending.push(be.read(x).then((data) => a.add(data, x.shape[0]!)));
        };
        for (const x of xs) {
          const r = blockForward(be, cfg, weights, x, rope!, 0, undefined, hook);
          be.free(r.out);
          await Promise.all(pending.splice(0));
        }
      }
      // 2. quantize each layer of the group and swap its weights
      for (const s of group) {
        const t0 = performance.now();
        const name = NAMES.layer(i, PART[s]).replace(/\.weight$/, '');
        o.onProgress?.({ phase: 'block', block: i, numBlocks: cfg.numLayers, layer: name });
        const t = ckpt.weights.read(`${name}.weight`);
        const [rows, cols] = t.shape as [number, number];
        const W = t.toF32();
        if (o.spec.groupSize !== -1 && cols % o.spec.groupSize !== 0) {
          throw new UsageError(`group size ${o.spec.groupSize} does not divide the ${cols} input columns of ${name}`);
        }
        const H = acc.get(s)?.finish();
        const out = o.method.quantizeLayer({ name, W, rows, cols, H }, { ...o, linalg: o.linalg ?? be.hostKernels });
        weights[s] = be.uploadWeight(new Tensor('f32', [rows, cols], out.Q));
        o.onLayer({ name, rows, cols, out });
        reports.push({
          name, rows, cols, error: H ? reconstructionError(W, out.Q, rows, cols, H, be.hostKernels.gemm.bind(be.hostKernels)) : null,
          dampUsed: out.dampUsed ?? null, notes: out.notes, seconds: (performance.now() - t0) / 1000,
        });
      }
    }
    // 3. this block's outputs with all its layers quantized: the next block's inputs
    return xs.map((x) => blockForward(be, cfg, weights, x, rope!).out);
  };
  await streamBlocks(ckpt, be, hidden, perBlock, o.onProgress);
  return reports;
}
