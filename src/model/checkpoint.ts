import type { TensorSource } from '../io/source.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { LlamaConfig } from './config.js';

export type CheckpointFormat = 'hf' | 'gguf' | 'llama2c' | 'lowbit-gptq';

/** A model on disk, whatever its format: hyper-parameters, tokenizer and lazily read weights. */
export interface ModelCheckpoint {
  readonly path: string;
  readonly format: CheckpointFormat;
  readonly config: LlamaConfig;
  readonly tokenizer: Tokenizer;
  readonly weights: TensorSource;
  /** where the tokenizer was read from (a folder with tokenizer.json, a .gguf or a tok*.bin), for copying it */
  readonly tokenizerPath?: string;
}
