import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormatError, LowbitError, UsageError } from '../../src/errors.js';
import { describeCheckpoint, openModel } from '../../src/io/open.js';
import { NAMES } from '../../src/io/source.js';
import { STORIES260K, TINY656K } from '../helpers/paths.js';

const made: string[] = [];
after(() => { for (const d of made) rmSync(d, { recursive: true, force: true }); });
const GGUF_F16 = join(TINY656K, 'gguf/TinyStories-656K-GGUF/TinyStories-656K.f16.gguf');

test('HF folder: BF16 weights, tokenizer.json, 656,000 parameters', () => {
  const ck = openModel(TINY656K);
  assert.equal(ck.format, 'hf');
  assert.equal(ck.config.hiddenSize, 128);
  assert.equal(ck.tokenizer.bosId, 1);
  const d = describeCheckpoint(ck);
  assert.equal(d.parameters, 656_000);
  assert.deepEqual(d.storedDtypes, { BF16: 656_000 });
  assert.equal(d.tensors, 20);
});

test('HF f32 folder: the tied head stored as lm_head.weight is presented as model.embed_tokens.weight', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-open-'));
  made.push(dir);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(TINY656K, 'f32', f), join(dir, f));
  copyFileSync(join(TINY656K, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  copyFileSync(join(TINY656K, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  const ck = openModel(dir);
  assert.ok(ck.weights.has(NAMES.embed));
  assert.ok(!ck.weights.has(NAMES.lmHead));
  assert.deepEqual(describeCheckpoint(ck).storedDtypes, { F32: 656_000 });
  const bf = openModel(TINY656K).weights.read(NAMES.embed).toF32();
  assert.deepEqual(ck.weights.read(NAMES.embed).data, bf);
});

test('GGUF file and a folder holding only it; llama2.c .bin with its tok512.bin', () => {
  const g = openModel(GGUF_F16);
  assert.equal(g.format, 'gguf');
  assert.equal(g.tokenizer.vocabSize, 2048);
  assert.deepEqual(describeCheckpoint(g).storedDtypes, { F16: 655_360, F32: 640 });
  assert.equal(openModel(join(TINY656K, 'gguf/TinyStories-656K-GGUF')).format, 'gguf');
  const b = openModel(join(STORIES260K, 'stories260K.bin'));
  assert.equal(b.format, 'llama2c');
  assert.equal(b.tokenizer.vocabSize, 512);
  assert.equal(describeCheckpoint(b).parameters, 260_032);
  const b2 = openModel(join(STORIES260K, 'stories260K.bin'), { tokenizer: join(STORIES260K, 'tok512.bin') });
  assert.equal(b2.tokenizer.vocabSize, 512);
});

test('clear errors for what is not a checkpoint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-open-'));
  made.push(dir);
  assert.throws(() => openModel(join(dir, 'missing')), UsageError);
  assert.throws(() => openModel(dir), UsageError);
  writeFileSync(join(dir, 'notes.txt'), 'hi');
  assert.throws(() => openModel(join(dir, 'notes.txt')), UsageError);
  const hf = join(dir, 'hf');
  mkdirSync(hf);
  copyFileSync(join(TINY656K, 'config.json'), join(hf, 'config.json'));
  copyFileSync(join(TINY656K, 'model.safetensors'), join(hf, 'model.safetensors'));
  assert.throws(() => openModel(hf), (e: unknown) => e instanceof FormatError && /no tokenizer\.json/.test(e.message));
  const lonely = join(dir, 'lonely');
  mkdirSync(lonely);
  copyFileSync(join(STORIES260K, 'stories260K.bin'), join(lonely, 'model.bin'));
  assert.throws(() => openModel(join(lonely, 'model.bin')), (e: unknown) => e instanceof LowbitError && /tok\*\.bin/.test(e.message));
});
