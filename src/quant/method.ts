/**
 * The contract between the block-streamed pipeline (pipeline.ts) and a quantization method.
 *
 * A method is a file plus a registry row. It declares
 * - the statistics its layers need, accumulated by the pipeline once per distinct linear input (q/k/v
 *   share one Hessian, gate/up another) from the calibration data: Hessian, mean |x|, max |x|;
 * - where block i+1's calibration inputs come from: block i as quantized (GPTQ's llama_sequential)
 *   or as it was in floating point (AWQ, SmoothQuant: nothing is quantized during their search);
 * - its options (a small schema: study cells and the CLI carry them generically);
 * - the checkpoint format its layers are stored in, and any activation quantization the quantized
 *   model must run with;
 * and provides `quantizeLayer` (one linear at a time) and, optionally, `transformBlock` (the whole
 * block in floating point, norm weights included, before its layers are quantized: AWQ's scale
 * search and clipping, SmoothQuant's smoothing).
 */
import type { LinearName } from '../model/block.js';
import type { LlamaConfig } from '../io/config.js';
import type { QuantSpec } from './core/grid.js';
import type { StoredLayer } from '../tensor/packed.js';
import type { QuantLinalg } from './core/linalgProvider.js';
import type { BlockJob } from './blockJob.js';
import type { ActivationQuant, ModelCheckpoint } from '../io/checkpoint.js';
import type { Backend } from '../backend/backend.js';
import type { FormatName } from '../io/quantized/formats.js';

/** Per-channel statistics of one linear input over the calibration tokens. */
export type StatKind = 'hessian' | 'meanAbs' | 'maxAbs';

export interface InputStats {
  /** H = 2/n Σ x xᵀ (float64 [cols, cols]; n counts sequences, as gptq.py) */
  readonly H?: Float64Array;
  /** mean over tokens of |x| per channel */
  readonly meanAbs?: Float32Array;
  /** max over tokens of |x| per channel */
  readonly maxAbs?: Float32Array;
  readonly tokens: number;
}

/** One option a method accepts: its type, range and default. Values arrive checked. */
export interface OptionSpec {
  readonly kind: 'boolean' | 'number' | 'integer';
  readonly default: boolean | number;
  readonly min?: number;
  readonly max?: number;
  /** the CLI flag that sets it (e.g. --abits) and one line for help and errors */
  readonly flag: string;
  readonly help: string;
  /** how a non-default value shows in a study cell's key (`a8` for abits 8, `act` for actOrder) */
  readonly key: (v: boolean | number) => string;
}

export type OptionValues = Readonly<Record<string, boolean | number>>;

export interface MethodOptions {
  readonly spec: QuantSpec;
  /** the method's own options (its `options` schema), checked and with defaults filled in */
  readonly options: OptionValues;
  /** fast float64 linear algebra (the backend's host kernels); the pure TypeScript path when absent */
  readonly linalg?: QuantLinalg | undefined;
  /** the run's seed (`--seed`: the calibration sampler's, and any random transform a method draws) */
  readonly seed?: number;
  /** the backend the forward passes run on (a method may solve there too: GPTQ's --device-solve) */
  readonly backend?: Backend | undefined;
}

export interface LayerInput {
  /** e.g. "model.layers.3.self_attn.q_proj" */
  readonly name: string;
  readonly linear: LinearName;
  /** the layer's weight [rows = out, cols = in] as the block holds it (after transformBlock) */
  readonly W: Float32Array;
  readonly rows: number;
  readonly cols: number;
  /** what the method declared in `stats` (and H whenever calibration data exists, for the error report) */
  readonly stats: InputStats | undefined;
}

export interface LayerOutput {
  /** fake-quantized weights [rows, cols]: exactly what dequantizing the stored layer gives */
  readonly Q: Float32Array;
  /** what the checkpoint stores: uniform-grid codes and parameters, or the parts of a method-specific kind */
  readonly stored: StoredLayer;
  readonly dampUsed?: number;
  readonly notes: readonly string[];
}

/** Checkpoint layouts a method's layers can be stored in (io/quantized/formats.ts). */
export type StorageFormatName = FormatName;

export interface QuantMethod {
  readonly name: string;
  /** the name as the paper's tables write it (GPTQ, AWQ, SmoothQuant) */
  readonly label: string;
  /** one line, with the paper */
  readonly description: string;
  /** statistics quantizeLayer needs, per linear input */
  readonly stats: readonly StatKind[];
  /** whether the method cannot run without calibration data */
  readonly needsCalibration: boolean;
  /** the group size when none is given (default 128) */
  readonly defaultGroupSize?: number;
  /** a grid the method always uses: symmetric (SmoothQuant) or asymmetric (AWQ); unset: --sym decides */
  readonly symmetric?: boolean;
  /** where block i+1's calibration inputs come from */
  readonly nextInputs: 'quantized' | 'float';
  /** by default, quantize layers in GPTQ's true-sequential groups (statistics recomputed after each); false: all seven from one forward (--true-sequential overrides) */
  readonly sequential: boolean;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** the layout of the checkpoint (may depend on the settings, options and shapes: AWQ's GEMM layout is 4-bit, out_features a multiple of 8; NF4 double quantization is its own kind) */
  format(spec: QuantSpec, cfg: LlamaConfig, options: OptionValues): StorageFormatName;
  /** the bits per weight the paper's tables give this setting (PB-LLM 1.7, BiLLM 1.1); default spec.bits */
  nominalBits?(spec: QuantSpec, options: OptionValues): number;
  /** activation quantization the quantized model must run with, if any */
  activation?(options: OptionValues): ActivationQuant | undefined;
  /** checks settings the option schema cannot express (a UsageError) */
  validate?(spec: QuantSpec, options: OptionValues): void;
  /** changes the whole block in floating point before its layers are quantized (norms included) */
  transformBlock?(job: BlockJob, opts: MethodOptions): Promise<void>;
  /** checks, before any work, that the backend can run these options (a UsageError) */
  checkBackend?(be: Backend, options: OptionValues): void;
  quantizeLayer(layer: LayerInput, opts: MethodOptions): LayerOutput | Promise<LayerOutput>;
  /**
   * After every layer is quantized, trains the stored layers end to end (DB-LLM's distillation):
   * returns them changed, in the same order. Runs before the checkpoint is written.
   */
  refine?(ctx: RefineContext): Promise<RefineResult>;
}

export interface RefineLayer { readonly name: string; readonly rows: number; readonly cols: number; readonly stored: StoredLayer }

export interface TrainProgress { readonly step: number; readonly steps: number; readonly loss: number; readonly seconds: number; readonly resumedFrom: number }

export interface RefineContext {
  readonly ckpt: ModelCheckpoint;
  readonly be: Backend;
  readonly spec: QuantSpec;
  readonly options: OptionValues;
  readonly layers: readonly RefineLayer[];
  /** the calibration windows (the training text), when a source was given */
  readonly calibration: readonly Int32Array[] | undefined;
  readonly seed: number;
  /** where the training state is saved (resumable); the caller removes it once the checkpoint is written */
  readonly stateDir: string;
  readonly onTrain?: ((p: TrainProgress) => void) | undefined;
}

export interface RefineResult {
  readonly layers: RefineLayer[];
  /** what the report records (losses, settings) */
  readonly record: Record<string, unknown>;
}
