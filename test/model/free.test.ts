// LlamaModel.free gives every resident weight back exactly once (the tied LM head is the embedding: freed
// once, not twice), and the model refuses to run afterwards. Resident weights exist under the wasm provider.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openModel } from '../../src/io/open.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { LlamaModel, argmaxLastRow } from '../../src/model/llama.js';
import { PROVIDERS, availability, kernelsOf } from '../backend/kernelCases.js';
import { TINY656K } from '../helpers/paths.js';

const wasm = PROVIDERS.find((p) => p.name === 'wasm')!;

test('argmaxLastRow: the first largest logit of the last row', () => {
  assert.equal(argmaxLastRow(Float32Array.of(9, 0, 0, 1, 3, 3), 3), 1);
  assert.equal(argmaxLastRow(Float32Array.of(-2, -1, -3), 3), 1);
});

test('free: every resident weight once (tied head included), then use after free is refused', availability(wasm), async () => {
  const model = LlamaModel.load(openModel(TINY656K), new CpuBackend(kernelsOf(wasm), 'wasm, 1 thread'));
  const before = await model.generate([1], 4);
  model.free();
  assert.throws(() => model.forward(Int32Array.of(1)), /use after free/);
  const again = LlamaModel.load(openModel(TINY656K), new CpuBackend(kernelsOf(wasm), 'wasm, 1 thread'));
  assert.deepEqual(await again.generate([1], 4), before, 'the released memory is reused without changing results');
  again.free();
});
