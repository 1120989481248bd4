/**
 * Checks every reader applies to the LlamaConfig it built, whatever the format: what the engine
 * needs to run the model at all, refused at open with a FormatError naming the file the values
 * came from (config.json, the .gguf, the llama2.c .bin), never later from deep inside a forward pass.
 */
import { FormatError } from '../errors.js';
import type { LlamaConfig } from './config.js';

/** The shortest context a language model can be evaluated on: one token predicting the next. */
const MIN_CONTEXT = 2;

export function checkLlamaConfig(file: string, c: LlamaConfig): LlamaConfig {
  if (c.headDim % 2 !== 0) throw new FormatError(file, `head dimension ${c.headDim} is odd; RoPE rotates pairs of dimensions`);
  if (c.maxPositionEmbeddings < MIN_CONTEXT) {
    throw new FormatError(file, `the model's context (max_position_embeddings / context length) is ${c.maxPositionEmbeddings}; it must be at least ${MIN_CONTEXT}`);
  }
  for (const [what, id] of [['BOS', c.bosTokenId], ['EOS', c.eosTokenId]] as const) {
    if (id !== undefined && !(Number.isSafeInteger(id) && id >= 0 && id < c.vocabSize)) {
      throw new FormatError(file, `${what} token id ${id} is outside the vocabulary of ${c.vocabSize} tokens`);
    }
  }
  return c;
}
