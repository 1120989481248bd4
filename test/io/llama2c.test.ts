import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readGgufHeader } from '../../src/io/gguf/parse.js';
import { ggufConfig } from '../../src/io/gguf/config.js';
import { GgufSource } from '../../src/io/gguf/source.js';
import { Llama2cSource } from '../../src/io/llama2c.js';
import { NAMES } from '../../src/io/source.js';
import { STORIES260K } from '../helpers/paths.js';

const bin = new Llama2cSource(join(STORIES260K, 'stories260K.bin'));

test('stories260K.bin: header and config as documented in SOURCE.md', () => {
  assert.deepEqual({ ...bin.header }, { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true });
  assert.deepEqual(bin.config(), {
    hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8, vocabSize: 512,
    rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, maxPositionEmbeddings: 512, tieWordEmbeddings: true,
    bosTokenId: 1, eosTokenId: 2,
  });
  assert.equal(bin.list().length, 47);
  assert.equal(bin.list().reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0), 260_032);
  assert.ok(!bin.has(NAMES.lmHead));
});

test('stories260K: the llama2.c .bin and the GGUF give identical tensors for every canonical name', () => {
  const p = join(STORIES260K, 'stories260K.gguf');
  const h = readGgufHeader(p);
  const gguf = new GgufSource(p, ggufConfig(h), h);
  for (const t of bin.list()) {
    const a = bin.read(t.name), b = gguf.read(t.name);
    assert.deepEqual(b.shape, a.shape, t.name);
    assert.deepEqual(b.data, a.data, t.name);
  }
  // the GGUF stores the tied classifier as output.weight, a copy of the embedding
  assert.deepEqual(gguf.read(NAMES.lmHead).data, bin.read(NAMES.embed).data);
});

test('stories260K.bin: q/k come back in rotate-half order (row h·d + t·d/2 + j = stored row h·d + 2j + t)', () => {
  const q = bin.read(NAMES.layer(0, 'self_attn.q_proj'));
  const raw = readFileSync(join(STORIES260K, 'stories260K.bin'));
  // wq of layer 0 follows the header, the embedding and 5 rms_att vectors
  const start = 28 + 4 * (512 * 64 + 5 * 64);
  const stored = new Float32Array(raw.buffer.slice(raw.byteOffset + start, raw.byteOffset + start + 4 * 64 * 64));
  const d = 8, data = q.data as Float32Array;
  for (let h = 0; h < 8; h++) for (let j = 0; j < d / 2; j++) for (let t = 0; t < 2; t++) {
    const hfRow = h * d + t * (d / 2) + j, pairRow = h * d + 2 * j + t;
    assert.deepEqual(data.subarray(hfRow * 64, hfRow * 64 + 64), stored.subarray(pairRow * 64, pairRow * 64 + 64));
  }
});
