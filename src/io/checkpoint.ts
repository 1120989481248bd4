import type { TensorSource } from './source.js';
import type { Tokenizer } from './tokenizer.js';
import type { LlamaConfig } from './config.js';

/** the reader that opened it: a float format, or a quantized folder in one of io/quantized/formats.ts's layouts */
export type CheckpointFormat = 'hf' | 'gguf' | 'llama2c' | `lowbit-${string}`;

/** Activation fake-quantization a quantized model runs with (SmoothQuant's WxAy). */
export interface ActivationQuant {
  readonly bits: number;
  /** symmetric absmax per token (per row), dynamic: SmoothQuant's `quantize_activation_per_token_absmax` */
  readonly granularity: 'per-token';
  /** also quantize the q/k/v outputs per token (the inputs of the attention products) */
  readonly quantBmm: boolean;
}

/**
 * Low-rank adapters applied on top of a checkpoint's linears (a PEFT LoRA folder, io/peft.ts), as
 * trained by lowbit finetune: per block and linear, A [r, inA] and B [out, r] with
 * ΔY = scaling·B·A·x; `iec` adds IR-QLoRA's elastic scalars (h += βA·chunkmeans_r(x), ΔY += scaling·βB·repeat(h));
 * `qa` feeds A the group means of x over `groupSize` columns (QA-LoRA).
 */
export interface LoraWeights {
  readonly path: string;
  readonly form: 'lora' | 'iec' | 'qa';
  readonly rank: number;
  readonly scaling: number;
  readonly groupSize?: number;
  /** per block, by short linear name (q k v o gate up down) */
  readonly layers: ReadonlyArray<Readonly<Record<string, LoraLinearWeights | undefined>>>;
}

export interface LoraLinearWeights {
  readonly A: Float32Array;
  readonly B: Float32Array;
  readonly inA: number;
  readonly outF: number;
  readonly betaA?: number;
  readonly betaB?: number;
}

/** A model on disk, whatever its format: hyper-parameters, tokenizer and lazily read weights. */
export interface ModelCheckpoint {
  readonly path: string;
  readonly format: CheckpointFormat;
  readonly config: LlamaConfig;
  readonly tokenizer: Tokenizer;
  readonly weights: TensorSource;
  /** where the tokenizer was read from (a folder with tokenizer.json, a .gguf or a tok*.bin), for copying it */
  readonly tokenizerPath?: string;
  /** the activation quantization every evaluation of this model applies (a SmoothQuant checkpoint) */
  readonly activation?: ActivationQuant;
  /** LoRA adapters every evaluation applies (a fine-tuned folder holding the base and a PEFT adapter) */
  readonly adapter?: LoraWeights;
}
