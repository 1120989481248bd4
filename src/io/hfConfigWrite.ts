import type { LlamaConfig } from './config.js';

/** LlamaConfig → a Hugging Face `config.json` object (LlamaForCausalLM), the inverse of parseHfConfig. */
export function toHfConfigJson(c: LlamaConfig, torchDtype: string): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama',
    hidden_size: c.hiddenSize, intermediate_size: c.intermediateSize, num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads, num_key_value_heads: c.numKvHeads, head_dim: c.headDim,
    vocab_size: c.vocabSize, rms_norm_eps: c.rmsNormEps, rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling ? {
      rope_type: 'llama3', factor: c.ropeScaling.factor, low_freq_factor: c.ropeScaling.lowFreqFactor,
      high_freq_factor: c.ropeScaling.highFreqFactor, original_max_position_embeddings: c.ropeScaling.originalMaxPositionEmbeddings,
    } : null,
    max_position_embeddings: c.maxPositionEmbeddings, tie_word_embeddings: c.tieWordEmbeddings,
    ...(c.bosTokenId === undefined ? {} : { bos_token_id: c.bosTokenId }),
    ...(c.eosTokenId === undefined ? {} : { eos_token_id: c.eosTokenId }),
    hidden_act: 'silu', torch_dtype: torchDtype,
  };
}
