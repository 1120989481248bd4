import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openModel } from '../../src/io/open.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { LlamaModel } from '../../src/model/llama.js';
import { referenceLogits } from '../helpers/referenceForward.js';
import { STORIES260K, TINY656K } from '../helpers/paths.js';

const be = new CpuBackend();
const tinyRef = JSON.parse(readFileSync(join(TINY656K, 'reference_greedy.json'), 'utf8'));
const storiesRef = JSON.parse(readFileSync(join(STORIES260K, 'reference_greedy_bos_255.json'), 'utf8'));

const TINY_FORMATS = {
  'bf16 safetensors': TINY656K,
  'f32 safetensors': join(TINY656K, 'f32'),
  'F16 GGUF': join(TINY656K, 'gguf', 'TinyStories-656K-GGUF', 'TinyStories-656K.f16.gguf'),
};
const STORIES_FORMATS = {
  'llama2.c .bin': join(STORIES260K, 'stories260K.bin'),
  GGUF: join(STORIES260K, 'stories260K.gguf'),
};

for (const [label, path] of Object.entries(TINY_FORMATS)) {
  test(`TinyStories-656K (${label}): greedy decoding reproduces reference_greedy.json`, async () => {
    const ck = openModel(path, { tokenizer: TINY656K });
    const prompt: number[] = tinyRef.greedy.prompt_ids;
    if (label !== 'F16 GGUF') assert.deepEqual(ck.tokenizer.encode(tinyRef.greedy.prompt, { bos: true }), prompt);
    const want: number[] = tinyRef.greedy.output_ids.slice(prompt.length);
    // the F16 GGUF holds f16-rounded weights, yet the argmax margins are wide enough for all 100 tokens
    const got = await LlamaModel.load(ck, be).generate(prompt, want.length);
    assert.deepEqual(got, want);
  });
}

for (const [label, path] of Object.entries(STORIES_FORMATS)) {
  test(`stories260K (${label}): greedy decoding from BOS reproduces the 255 reference ids and Karpathy's text`, async () => {
    const ck = openModel(path);
    const got = await LlamaModel.load(ck, be).generate([1], 255);
    assert.deepEqual(got, storiesRef.generated_ids);
    assert.ok(ck.tokenizer.decode(got).trim().startsWith('Once upon a time, there was a little girl named Lily. She loved to play outside in the park.'));
  });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('bundled models: engine logits agree with the float64 reference forward', async () => {
  for (const [path, ids, tol] of [
    [TINY656K, tinyRef.nll.ids as number[], 2e-3],
    [join(STORIES260K, 'stories260K.bin'), storiesRef.generated_ids.slice(0, 48) as number[], 2e-3],
  ] as const) {
    const ck = openModel(path);
    const ref = referenceLogits(ck, [...ids]);
    const got = await be.read(LlamaModel.load(ck, be).forward(Int32Array.from(ids)).logits);
    const d = maxAbsDiff(got, ref);
    assert.ok(d < tol, `${path}: max |engine − reference| = ${d}`);
  }
});

test('TinyStories-656K: mean NLL of the model card sentence matches the NumPy reference (2.377089598994201)', async () => {
  const ck = openModel(TINY656K);
  const ids: number[] = tinyRef.nll.ids;
  const logits = LlamaModel.load(ck, be).forward(Int32Array.from(ids)).logits;
  const nll = await be.nll(be.rows(logits, 0, ids.length - 1), Int32Array.from(ids.slice(1)));
  const mean = nll.reduce((a, b) => a + b, 0) / nll.length;
  assert.ok(Math.abs(mean - tinyRef.nll.mean_nll_nats_per_predicted_token) < 1e-4, `mean NLL ${mean}`);
});
