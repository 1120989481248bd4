// Size on disk and bits per weight, exact: golden numbers worked out by hand from the bundled models'
// shapes (TinyStories-656K: 2 blocks, hidden 128, intermediate 384, 4 KV heads of 16, vocab 2048, tied head)
// and from the GPTQ layout of a checkpoint quantized here.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../../src/io/open.js';
import { openSafetensorsDir, writeSafetensors } from '../../src/io/safetensors.js';
import { bitsPerWeight, checkpointFiles, isLinearWeight, storedTensors } from '../../src/io/storage.js';
import { residentWeightBytes } from '../../src/eval/bench.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { STORIES260K, TINY656K } from '../helpers/paths.js';

// TinyStories-656K's tensors, by hand:
//   linear weights per block: q 128×128 + k 64×128 + v 64×128 + o 128×128 + gate/up 384×128 + down 128×384
//     = 16,384 + 8,192 + 8,192 + 16,384 + 3 × 49,152 = 196,608; two blocks: 393,216
//   embedding 2048×128 = 262,144 (tied: also the LM head); norms 5 × 128 = 640; all parameters 656,000
const LINEAR = 393_216, PARAMS = 656_000, NORMS = 640, EMBED = 262_144;
const Q8_0 = join(TINY656K, 'gguf', 'TinyStories-656K-Q8_0-GGUF', 'tinystories-656k-q8_0.gguf');
const F16_GGUF = join(TINY656K, 'gguf', 'TinyStories-656K-GGUF', 'TinyStories-656K.f16.gguf');

let tmp = '';
before(() => { tmp = mkdtempSync(join(tmpdir(), 'lowbit-storage-')); });
after(() => rmSync(tmp, { recursive: true, force: true }));

test('linear layers are the decoder blocks\' seven projections', () => {
  assert.ok(isLinearWeight('model.layers.0.self_attn.q_proj.weight'));
  assert.ok(isLinearWeight('model.layers.11.mlp.down_proj.weight'));
  assert.ok(!isLinearWeight('model.layers.0.input_layernorm.weight'));
  assert.ok(!isLinearWeight('model.embed_tokens.weight'));
  assert.ok(!isLinearWeight('lm_head.weight'));
  assert.ok(!isLinearWeight('model.layers.0.self_attn.q_proj.qweight'));
});

test('TinyStories-656K (bf16): 16 bits everywhere, 1,314,128 bytes in model.safetensors', () => {
  const ck = openModel(TINY656K);
  const b = bitsPerWeight(ck);
  assert.deepEqual(b, {
    linearWeights: LINEAR, parameters: PARAMS, linearStoredBytes: 2 * LINEAR, storedBytes: 2 * PARAMS,
    storedLinear: 16, storedModel: 16, nominal: 16, nominalWithGroups: 16, label: 'BF16',
  });
  assert.equal(residentWeightBytes(storedTensors(ck)), 1_312_000);
  const f = checkpointFiles(ck);
  // 8-byte length + 2,120-byte JSON header + 656,000 × 2 bytes of bf16
  assert.deepEqual(f.weightFiles, [{ path: join(TINY656K, 'model.safetensors'), bytes: 8 + 2_120 + 1_312_000 }]);
  assert.equal(f.weightBytes, 1_314_128);
  // every top-level file of the folder; the f32/ and gguf/ copies beside it are other checkpoints
  const top = readdirSync(TINY656K, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(TINY656K, e.name));
  assert.deepEqual(f.files.map((x) => x.path).sort(), top.sort());
  assert.equal(f.totalBytes, top.reduce((a, p) => a + statSync(p).size, 0));
  assert.ok(f.files.every((x) => !x.path.includes('/f32/') && !x.path.includes('/gguf/')));
});

test('the f32 copy: 32 bits, 2,626,168 bytes', () => {
  const ck = openModel(join(TINY656K, 'f32'), { tokenizer: TINY656K });
  const b = bitsPerWeight(ck);
  assert.equal(b.storedLinear, 32);
  assert.equal(b.storedModel, 32);
  assert.equal(b.nominal, 32);
  assert.equal(b.storedBytes, 4 * PARAMS);
  assert.equal(checkpointFiles(ck).weightBytes, 2_626_168);
});

test('GGUF Q8_0: 34-byte blocks of 32 weights, 8.5 bits stored, 8 nominal', () => {
  const ck = openModel(Q8_0);
  const b = bitsPerWeight(ck);
  // linear: 393,216 / 32 = 12,288 blocks × 34 bytes; embedding 262,144 / 32 × 34 = 278,528; norms F32
  assert.equal(b.linearStoredBytes, 417_792);
  assert.equal(b.storedBytes, 417_792 + 278_528 + 4 * NORMS);
  assert.equal(b.storedLinear, 8.5);
  assert.equal(b.storedModel, (8 * 698_880) / PARAMS);
  assert.equal(b.nominal, 8);
  assert.equal(b.nominalWithGroups, 8.5);
  assert.equal(b.label, 'Q8_0');
  // the backend holds GGUF blocks decoded to float32
  assert.equal(residentWeightBytes(storedTensors(ck)), 4 * PARAMS);
  const f = checkpointFiles(ck);
  assert.deepEqual(f.weightFiles, [{ path: Q8_0, bytes: 749_216 }]);
  assert.equal(f.totalBytes, 749_216);
});

test('GGUF F16 (norms in F32) and llama2.c (F32, tokenizer file beside it)', () => {
  const g = bitsPerWeight(openModel(F16_GGUF));
  assert.equal(g.storedLinear, 16);
  assert.equal(g.storedBytes, 2 * (PARAMS - NORMS) + 4 * NORMS);
  assert.equal(g.nominal, 16);
  assert.equal(g.label, 'F16');
  const bin = join(STORIES260K, 'stories260K.bin');
  const ck = openModel(bin);
  const b = bitsPerWeight(ck);
  assert.equal(b.storedLinear, 32);
  assert.equal(b.storedModel, 32);
  const f = checkpointFiles(ck);
  assert.deepEqual(f.weightFiles, [{ path: bin, bytes: 1_056_540 }]);
  assert.deepEqual(f.files.map((x) => x.path), [bin, join(STORIES260K, 'tok512.bin')]);
  assert.equal(f.totalBytes, 1_056_540 + 6_227);
});

test('sharded safetensors: the index and every shard count as weight files', () => {
  const dir = join(tmp, 'sharded');
  mkdirSync(dir);
  for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(TINY656K, f), join(dir, f));
  const src = openSafetensorsDir(TINY656K);
  const names = src.list().map((t) => t.name);
  const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap: Record<string, string> = {};
  [names.slice(0, 9), names.slice(9)].forEach((part, i) => {
    writeSafetensors(join(dir, shards[i]!), part.map((name) => ({ name, tensor: src.read(name) })), { format: 'pt' });
    for (const n of part) weightMap[n] = shards[i]!;
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
  const ck = openModel(dir);
  const f = checkpointFiles(ck);
  const expected = ['model.safetensors.index.json', ...shards].map((n) => join(dir, n));
  assert.deepEqual(f.weightFiles.map((x) => x.path), expected);
  assert.equal(f.weightBytes, expected.reduce((a, p) => a + statSync(p).size, 0));
  assert.equal(f.files.length, 5);
  assert.equal(bitsPerWeight(ck).storedBytes, 2 * PARAMS);
});

// A GPTQ-layout layer [rows, cols] at 4 bits in groups of 32, by hand (int32 qweight/qzeros/g_idx, fp16 scales):
//   qweight (cols·4/32) × rows int32, qzeros (cols/32) × (rows·4/32) int32, scales (cols/32) × rows fp16, g_idx cols int32
//   q, o   [128, 128]: 16×128×4 = 8,192 + 4×16×4 = 256 + 4×128×2 = 1,024 + 128×4 = 512  →  9,984
//   k, v   [ 64, 128]: 16× 64×4 = 4,096 + 4× 8×4 = 128 + 4× 64×2 =   512 + 128×4 = 512  →  5,248
//   gate, up [384, 128]: 16×384×4 = 24,576 + 4×48×4 = 768 + 4×384×2 = 3,072 + 128×4 = 512  →  28,928
//   down   [128, 384]: 48×128×4 = 24,576 + 12×16×4 = 768 + 12×128×2 = 3,072 + 384×4 = 1,536  →  29,952
//   one block: 2 × 9,984 + 2 × 5,248 + 2 × 28,928 + 29,952 = 118,272; two blocks: 236,544 bytes
const W4G32_LINEAR_BYTES = 236_544;

test('RTN W4 g32 checkpoint: 4.8125 bits stored in the linear layers, 4 nominal, 4.625 with group parameters', async () => {
  const out = join(tmp, 'w4g32');
  await quantizeModel(openModel(TINY656K), new CpuBackend(), { method: 'rtn', bits: 4, group: 32, scaleDtype: 'f16', calib: 'none', out });
  const ck = openModel(out);
  const raw = openSafetensorsDir(out).list().find((t) => t.name.endsWith('.scales'))!;
  assert.equal(raw.dtype, 'f16', 'the figures above are for fp16 scales');
  const b = bitsPerWeight(ck);
  assert.equal(b.linearWeights, LINEAR);
  assert.equal(b.parameters, PARAMS);
  assert.equal(b.linearStoredBytes, W4G32_LINEAR_BYTES);
  // 236,544 × 8 / 393,216 = 4.8125: 4 code bits + (16-bit scale + 4-bit zero) / 32 + the g_idx's 32 bits per column / rows
  assert.equal(b.storedLinear, 4.8125);
  // + the bf16 embedding (262,144 × 2) and norms (640 × 2) kept as stored
  assert.equal(b.storedBytes, W4G32_LINEAR_BYTES + 2 * EMBED + 2 * NORMS);
  assert.equal(b.storedModel, (8 * 762_112) / PARAMS);
  assert.equal(b.nominal, 4);
  assert.equal(b.nominalWithGroups, 4 + (16 + 4) / 32);
  assert.equal(b.label, 'GPTQ 4-bit g32 (rtn)');
  // the packed codes stay packed on the backend: resident = stored
  assert.equal(residentWeightBytes(storedTensors(ck)), 762_112);
  const f = checkpointFiles(ck);
  const st = join(out, 'model.safetensors');
  const header = Number(readFileSync(st).readBigUInt64LE(0));
  assert.deepEqual(f.weightFiles, [{ path: st, bytes: 8 + header + 762_112 }]);
  const names = f.files.map((x) => x.path.slice(out.length + 1));
  for (const n of ['config.json', 'quantize_config.json', 'lowbit_quant.json', 'model.safetensors', 'tokenizer.json']) assert.ok(names.includes(n), n);
});

// 3 bits per channel (one group per row), by hand: qweight (cols·3/32) × rows int32, qzeros 1 × (rows·3/32) int32,
// scales 1 × rows fp16, g_idx cols int32
//   q, o     [128, 128]: 12×128×4 = 6,144 + 12×4 =  48 + 128×2 = 256 + 128×4 =   512  →  6,960
//   k, v     [ 64, 128]: 12× 64×4 = 3,072 +  6×4 =  24 +  64×2 = 128 + 128×4 =   512  →  3,736
//   gate, up [384, 128]: 12×384×4 = 18,432 + 36×4 = 144 + 384×2 = 768 + 128×4 =  512  → 19,856
//   down     [128, 384]: 36×128×4 = 18,432 + 12×4 =  48 + 128×2 = 256 + 384×4 = 1,536  → 20,272
//   one block 81,376; two blocks 162,752 bytes. Group parameters: one 16-bit scale and one 3-bit zero per row,
//   rows per block 128 + 64 + 64 + 128 + 384 + 384 + 128 = 1,280, two blocks 2,560.
test('RTN W3 per channel: 162,752 bytes in the linear layers, 3 + 2,560 × 19 / 393,216 bits with group parameters', async () => {
  const out = join(tmp, 'w3pc');
  await quantizeModel(openModel(TINY656K), new CpuBackend(), { method: 'rtn', bits: 3, group: -1, scaleDtype: 'f16', calib: 'none', out });
  const b = bitsPerWeight(openModel(out));
  assert.equal(b.linearStoredBytes, 162_752);
  assert.equal(b.storedLinear, (8 * 162_752) / LINEAR);
  assert.equal(b.nominal, 3);
  assert.equal(b.nominalWithGroups, 3 + (2_560 * 19) / LINEAR);
  assert.equal(b.label, 'GPTQ 3-bit per channel (rtn)');
});
