import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FormatError } from '../../src/errors.js';
import { parseHfConfig, readHfConfig } from '../../src/io/hfConfig.js';
import { TINY656K } from '../helpers/paths.js';

test('TinyStories-656K config.json as documented in SOURCE.md', () => {
  assert.deepEqual(readHfConfig(join(TINY656K, 'config.json')), {
    hiddenSize: 128, intermediateSize: 384, numLayers: 2, numHeads: 8, numKvHeads: 4, headDim: 16, vocabSize: 2048,
    rmsNormEps: 1e-6, ropeTheta: 10000, ropeScaling: null, maxPositionEmbeddings: 512, tieWordEmbeddings: true,
    bosTokenId: 1, eosTokenId: 2,
  });
});

const llama32 = {
  architectures: ['LlamaForCausalLM'], hidden_size: 2048, intermediate_size: 8192, num_attention_heads: 32,
  num_key_value_heads: 8, num_hidden_layers: 16, vocab_size: 128256, rms_norm_eps: 1e-5, rope_theta: 500000,
  max_position_embeddings: 131072, head_dim: 64, bos_token_id: 128000, eos_token_id: [128001, 128008, 128009],
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  tie_word_embeddings: true,
};

test('LLaMA-3.2 style config: llama3 rope scaling, head_dim, list of EOS ids', () => {
  const c = parseHfConfig('config.json', llama32);
  assert.deepEqual(c.ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  assert.equal(c.headDim, 64);
  assert.equal(c.eosTokenId, 128001);
  assert.equal(c.ropeTheta, 500000);
  const legacy = parseHfConfig('config.json', { ...llama32, rope_scaling: { ...llama32.rope_scaling, rope_type: undefined, type: 'llama3' } });
  assert.equal(legacy.ropeScaling?.factor, 32);
});

test('defaults follow HF LlamaConfig: untied, kv heads = heads, head_dim = hidden/heads', () => {
  const { tie_word_embeddings: _t, num_key_value_heads: _k, head_dim: _h, rope_scaling: _r, ...rest } = llama32;
  const c = parseHfConfig('config.json', { ...rest, architectures: undefined, model_type: 'llama' });
  assert.equal(c.tieWordEmbeddings, false);
  assert.equal(c.numKvHeads, 32);
  assert.equal(c.headDim, 64);
  assert.equal(c.ropeScaling, null);
});

test('unsupported architectures and rope types are FormatErrors naming config.json', () => {
  const bad: [object, RegExp][] = [
    [{ ...llama32, architectures: ['MistralForCausalLM'], model_type: 'mistral' }, /unsupported architecture "MistralForCausalLM"/],
    [{ ...llama32, rope_scaling: { type: 'linear', factor: 2 } }, /rope_scaling type "linear"/],
    [{ ...llama32, rope_scaling: { rope_type: 'llama3', factor: 8 } }, /rope_scaling.low_freq_factor/],
    [{ ...llama32, hidden_size: 100, head_dim: undefined, num_attention_heads: 3 }, /not a multiple/],
    [{ ...llama32, vocab_size: -1 }, /"vocab_size" must be a positive integer/],
  ];
  for (const [cfg, re] of bad) {
    assert.throws(() => parseHfConfig('/x/config.json', cfg as Record<string, unknown>), (e: unknown) => e instanceof FormatError && e.message.startsWith('/x/config.json: ') && re.test(e.message));
  }
});
