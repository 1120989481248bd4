import type { Backend, BTensor } from '../backend/backend.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { blockForward, LINEARS, type LinearFn, type LinearName } from '../model/block.js';
import { LINEAR_INPUT, LINEAR_PART, TRUE_SEQUENTIAL, type InputName } from '../model/layout.js';
import { embedAll, ropeFor, streamBlocks, type StreamProgress } from '../model/stream.js';
import type { BlockWeights } from '../model/weights.js';
import { NAMES } from '../io/source.js';
import { Tensor } from '../tensor/tensor.js';
import { UsageError } from '../errors.js';
import type { HessianPrecision } from './core/hessian.js';
import type { QuantLinalg } from './core/linalgProvider.js';
import { BlockJob, readHostBlock, uploadHostBlock, type HostBlock } from './blockJob.js';
import type { InputStats, LayerOutput, MethodOptions, QuantMethod, StatKind } from './method.js';
import { InputStatsAccumulator } from './stats.js';

export interface LayerReport {
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  /** mean over calibration sequences of ‖WX − ŴX‖² (= tr(ΔW H ΔWᵀ)/2) for the W the quantizer was given; null without calibration */
  readonly error: number | null;
  readonly dampUsed: number | null;
  readonly notes: readonly string[];
  readonly seconds: number;
}

export interface QuantizedLinear { readonly name: string; readonly rows: number; readonly cols: number; readonly out: LayerOutput }

/** A block's norm weights as the method left them: float32 when it folded a scale in, else as read (in the stored dtype). */
export interface BlockNorms { readonly index: number; readonly inputNorm: Tensor; readonly postNorm: Tensor }

export interface PipelineOptions extends MethodOptions {
  readonly method: QuantMethod;
  /** calibration windows (token ids, equal lengths); required when the method needs them, used for errors otherwise */
  readonly calibration?: readonly Int32Array[] | undefined;
  /** GPTQ's true-sequential groups (true) or all seven linears from one forward (false); default: the method's `sequential` */
  readonly trueSequential?: boolean;
  /** per-layer reconstruction errors in the report (default true): Hessians of every input, also for methods that need none */
  readonly reportErrors?: boolean;
  /** float64 sums (default) or float32 GEMM per calibration sequence (core/hessian.ts) */
  readonly hessianPrecision?: HessianPrecision;
  /** receives each quantized layer as soon as it is done (the checkpoint writer) */
  readonly onLayer: (layer: QuantizedLinear) => void;
  /** receives each block's norms after the method's block transform, and what the method recorded */
  readonly onBlock?: ((norms: BlockNorms, record: Record<string, unknown> | undefined) => void) | undefined;
  readonly onProgress?: ((p: StreamProgress & { layer?: string }) => void) | undefined;
}

/**
 * tr(ΔW H ΔWᵀ)/2 for H = 2/n Σ XXᵀ: the mean over calibration sequences of ‖ΔW X‖². Computed as
 * Σ (ΔW·H) ∘ ΔW with `gemm` on chunks of rows (float32 products, float64 sum).
 */
export function reconstructionError(W: Float32Array, Q: Float32Array, rows: number, cols: number, H: Float64Array,
  gemm: NonNullable<QuantLinalg['gemm']>): number {
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
 * reconstructionError with the products on the backend (`linear`; the pipeline's choice where
 * Backend.acceleratedGemm): Ht is H as a float32 weight [cols, cols] there (H is symmetric, so d·Hᵀ = d·H);
 * ΔW goes up a chunk of rows (`chunkValues` weights) at a time and each chunk's d·H comes back for the float64 sum. Float32 products
 * as the host's; the sums' order is the backend GEMM's, so the figure may differ from the host's in its last bits.
 */
export async function backendReconstructionError(be: Backend, W: Float32Array, Q: Float32Array, rows: number, cols: number, Ht: BTensor,
  chunkValues = 1 << 24): Promise<number> {
  const chunk = Math.max(1, Math.min(rows, Math.floor(chunkValues / cols)));
  let total = 0;
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const m = Math.min(chunk, rows - r0), d = new Float32Array(m * cols);
    for (let i = 0; i < m * cols; i++) d[i] = W[r0 * cols + i]! - Q[r0 * cols + i]!;
    const y = be.scope(() => be.linear(be.upload(d, [m, cols]), Ht));
    const yv = await be.read(y);
    be.free(y);
    for (let i = 0; i < m * cols; i++) total += d[i]! * yv[i]!;
  }
  return total / 2;
}

type MutableBlock = { -readonly [K in keyof BlockWeights]: BlockWeights[K] };

/**
 * Quantizes every linear layer of every decoder block with `o.method`, one block at a time (GPTQ's
 * `llama_sequential`):
 * 1. block i's calibration inputs are block i−1's outputs, computed with block i−1 quantized or in
 *    floating point, as the method declares (`nextInputs`);
 * 2. the method's `transformBlock`, if any, changes the block's float weights (norms included);
 * 3. layers are quantized in groups (GPTQ's true-sequential groups when the method is sequential,
 *    else all seven at once): the group's statistics are accumulated once per distinct input from a
 *    forward pass with the layers before it already quantized, then each layer is quantized and its
 *    fake-quantized weights swapped in.
 */
export async function quantizeBlocks(ckpt: ModelCheckpoint, be: Backend, o: PipelineOptions): Promise<LayerReport[]> {
  const cfg = ckpt.config;
  const calib = o.calibration ?? [];
  const { method } = o;
  if (method.needsCalibration && calib.length === 0) throw new UsageError(`${method.name} needs calibration data (--calib)`);
  method.checkBackend?.(be, o.options); // quantizeModel checks it before calibration; this is for direct callers
  const reports: LayerReport[] = [];
  const seqlen = calib[0]?.length ?? 0;
  if (calib.some((c) => c.length !== seqlen)) throw new UsageError('calibration windows must have equal lengths');
  const { hidden } = calib.length ? embedAll(ckpt, be, calib as Int32Array[]) : { hidden: [] as BTensor[] };
  const rope = calib.length ? ropeFor(ckpt, be, 0, seqlen) : undefined;
  const groups = (o.trueSequential ?? method.sequential) ? TRUE_SEQUENTIAL : [LINEARS];
  // H whenever there is calibration data: the report's reconstruction errors need it
  const kinds = new Set<StatKind>([...method.stats, ...(calib.length && o.reportErrors !== false ? ['hessian' as const] : [])]);
  const linalg = o.linalg ?? be.hostKernels;
  // the Hessian's sums on the backend (no activations read back) when it has a Gram op and the
  // host's own linear algebra is not overridden (on the CPU backend both are the same float64 sums)
  const deviceGram = be.gram && (o.linalg === undefined || o.linalg === be.hostKernels) ? be : undefined;
  const forward = (w: BlockWeights, xs: readonly BTensor[]) => xs.map((x) => be.scope(() => blockForward(be, cfg, w, x, rope!).out));

  const perBlock = async (i: number, loaded: BlockWeights, xs: BTensor[]): Promise<BTensor[]> => {
    const w = loaded as MutableBlock;
    const swap = (k: keyof BlockWeights, t: BTensor) => { be.free(w[k]); w[k] = t; };
    // the next block's inputs from this block in floating point, before anything changes it
    const floatNext = method.nextInputs === 'float' && xs.length ? forward(w, xs) : undefined;
    let host: HostBlock | undefined;
    let record: Record<string, unknown> | undefined;
    if (method.transformBlock) {
      host = readHostBlock(ckpt, i);
      const job = new BlockJob(be, cfg, i, host, xs, rope ?? ropeFor(ckpt, be, 0, 1));
      await method.transformBlock(job, { ...o, linalg });
      const up = uploadHostBlock(be, host);
      for (const k of Object.keys(up) as (keyof BlockWeights)[]) swap(k, up[k]);
      record = { ...job.record.values, ...(job.record.notes.length ? { notes: job.record.notes } : {}) };
    }
    for (const group of groups) {
      const stats = xs.length && kinds.size ? await accumulate(group, w, xs) : new Map<InputName, InputStats>();
      // the reports' errors: with the backend's products where it is faster (one H per input there), else the host's
      const Hs = new Map<InputName, BTensor>();
      const errorOf = async (l: LinearName, W: Float32Array, Q: Float32Array, rows: number, cols: number, H: Float64Array): Promise<number> => {
        if (!be.acceleratedGemm) return reconstructionError(W, Q, rows, cols, H, be.hostKernels.gemm.bind(be.hostKernels));
        let Ht = Hs.get(LINEAR_INPUT[l]);
        if (!Ht) Hs.set(LINEAR_INPUT[l], Ht = be.uploadWeight(new Tensor('f32', [cols, cols], Float32Array.from(H))));
        return backendReconstructionError(be, W, Q, rows, cols, Ht);
      };
      try {
        for (const l of group) {
          const t0 = performance.now();
          const name = NAMES.layer(i, LINEAR_PART[l]).replace(/\.weight$/, '');
          o.onProgress?.({ phase: 'block', block: i, numBlocks: cfg.numLayers, layer: name });
          const { W, rows, cols } = host ? { W: host[l].data, rows: host[l].rows, cols: host[l].cols } : readLayer(name);
          if (o.spec.groupSize !== -1 && cols % o.spec.groupSize !== 0) {
            throw new UsageError(`group size ${o.spec.groupSize} does not divide the ${cols} input columns of ${name}`);
          }
          const s = stats.get(LINEAR_INPUT[l]);
          const out = await method.quantizeLayer({ name, linear: l, W, rows, cols, stats: s }, { ...o, linalg, backend: be });
          swap(l, be.uploadWeight(new Tensor('f32', [rows, cols], out.Q)));
          o.onLayer({ name, rows, cols, out });
          reports.push({
            name, rows, cols, error: s?.H ? await errorOf(l, W, out.Q, rows, cols, s.H) : null,
            dampUsed: out.dampUsed ?? null, notes: out.notes, seconds: (performance.now() - t0) / 1000,
          });
        }
      } finally {
        for (const t of Hs.values()) be.free(t);
      }
    }
    o.onBlock?.(host ? { index: i, inputNorm: Tensor.f32([host.inputNorm.length], host.inputNorm), postNorm: Tensor.f32([host.postNorm.length], host.postNorm) } : readNorms(i), record);
    return floatNext ?? (xs.length ? forward(w, xs) : xs);
  };

  const readLayer = (name: string): { W: Float32Array; rows: number; cols: number } => {
    const t = ckpt.weights.read(`${name}.weight`);
    const [rows, cols] = t.shape as [number, number];
    return { W: t.toF32(), rows, cols };
  };
  const readNorms = (i: number): BlockNorms => ({
    index: i,
    inputNorm: ckpt.weights.read(NAMES.layer(i, 'input_layernorm')),
    postNorm: ckpt.weights.read(NAMES.layer(i, 'post_attention_layernorm')),
  });

  /** Statistics of the group's distinct inputs, from one forward pass over every calibration sequence. */
  const accumulate = async (group: readonly LinearName[], w: BlockWeights, xs: readonly BTensor[]): Promise<Map<InputName, InputStats>> => {
    const acc = new Map<InputName, InputStatsAccumulator>();
    const pending: Promise<void>[] = [];
    const linear: LinearFn = (name, x, wt) => {
      // each distinct input once: at the first linear of the group that reads it (q for q/k/v, gate for gate/up)
      if (group.includes(name) && isFirstReader(name, group)) {
        const key = LINEAR_INPUT[name];
        let a = acc.get(key);
        if (!a) acc.set(key, a = new InputStatsAccumulator(x.shape[1]!, kinds, { linalg, precision: o.hessianPrecision ?? 'f64', deviceGram }));
        pending.push(a.addTensor(be, x));
      }
      return be.linear(x, wt);
    };
    for (const x of xs) {
      // the gram (or the read back) of each captured input is enqueued inside, before the scope frees it
      be.scope(() => be.free(blockForward(be, cfg, w, x, rope!, { linear }).out));
      await Promise.all(pending.splice(0));
    }
    const out = new Map<InputName, InputStats>();
    for (const [k, a] of acc) out.set(k, await a.finish(be));
    return out;
  };

  const last = await streamBlocks(ckpt, be, hidden, perBlock, o.onProgress);
  for (const x of last) be.free(x);
  if (rope) { be.free(rope.cos); be.free(rope.sin); }
  return reports;
}

/** Whether `name` is the first linear of `group` that reads its input (q for q/k/v, gate for gate/up). */
function isFirstReader(name: LinearName, group: readonly LinearName[]): boolean {
  return group.find((l) => LINEAR_INPUT[l] === LINEAR_INPUT[name]) === name;
}
