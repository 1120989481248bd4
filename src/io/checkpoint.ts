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
}
