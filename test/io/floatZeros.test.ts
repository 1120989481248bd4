/**
 * GPTQ checkpoints with float zero points (QA-LoRA's merge): written by writeGptqFloatZeros, read
 * back as the same packed layers, the model's logits equal to those of the in-memory merged layers;
 * a missing, misshapen, non-finite or undeclared `<layer>.qzeros_float` is a FormatError naming the file and tensor.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { FormatError } from '../../src/errors.js';
import type { ModelCheckpoint } from '../../src/io/checkpoint.js';
import { openModel } from '../../src/io/open.js';
import { bitsPerWeight } from '../../src/io/storage.js';
import { writeGptqFloatZeros } from '../../src/io/quantized/floatZeros.js';
import type { TensorSource } from '../../src/io/source.js';
import { LlamaModel } from '../../src/model/llama.js';
import { dequantizeGptq } from '../../src/tensor/gptqPack.js';
import { mergeZeroShift } from '../../src/tensor/gptqZeroShift.js';
import { isGptqPacked, type GptqPacked } from '../../src/tensor/packed.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randF32 } from '../backend/kernelCases.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { evaluatePpl } from '../../src/eval/ppl.js';
import { runCli } from '../cli/helpers.js';
import { DATA } from '../helpers/paths.js';
import { folderWith, removeScratch, safetensorsHeader, scratchDir, withSafetensorsHeader } from './mutate.js';
import { quantizedTiny } from './quantizedFixture.js';

after(removeScratch);

const GROUP = 32;

/** Every GPTQ layer of `ck` merged with a seeded delta of about 5% of its weights' scale. */
function mergedLayers(ck: ModelCheckpoint): Map<string, GptqPacked> {
  const out = new Map<string, GptqPacked>();
  let seed = 1;
  for (const { name } of ck.weights.list()) {
    const q = ck.weights.readQuantized?.(name);
    if (!q) continue;
    assert.ok(isGptqPacked(q));
    const maxW = dequantizeGptq(q).reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    out.set(name, mergeZeroShift(q, randF32(q.rows * q.groups, seed++, 0.05 * maxW * GROUP), GROUP, name));
  }
  return out;
}

/**
 * `ck` with the given packed layers, dequantized by dequantizeGptq (tensor/gptqPack.ts, not the
 * backend's row decoder), as dense float32 weights in place of its stored ones: the in-memory merged model.
 */
function withLayers(ck: ModelCheckpoint, layers: ReadonlyMap<string, GptqPacked>): ModelCheckpoint {
  const src = ck.weights;
  const weights: TensorSource = {
    path: src.path, list: () => src.list(), has: (n) => src.has(n),
    read: (n) => { const q = layers.get(n); return q ? new Tensor('f32', [q.rows, q.cols], dequantizeGptq(q)) : src.read(n); },
    readQuantized: (n) => (layers.has(n) ? undefined : src.readQuantized?.(n)),
  };
  return { ...ck, weights };
}

async function logits(ck: ModelCheckpoint): Promise<Float32Array> {
  const be = new CpuBackend(jsKernels);
  const model = LlamaModel.load(ck, be);
  return be.read(model.forward(Int32Array.from([1, 413, 29, 1000, 7, 260, 88])).logits);
}

let written: Promise<{ dir: string; layers: Map<string, GptqPacked> }> | undefined;
function floatZeroCheckpoint(): Promise<{ dir: string; layers: Map<string, GptqPacked> }> {
  written ??= (async () => {
    const base = await quantizedTiny();
    const layers = mergedLayers(openModel(base));
    const dir = join(scratchDir('fz'), 'merged');
    writeGptqFloatZeros(base, dir, layers);
    return { dir, layers };
  })();
  return written;
}

test('write → read: every GPTQ layer comes back with its float zeros; the config stays GPTQ and says lowbit_float_zeros', async () => {
  const { dir, layers } = await floatZeroCheckpoint();
  assert.ok(layers.size >= 7);
  const ck = openModel(dir);
  assert.equal(ck.format, 'lowbit-gptq');
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { quantization_config: Record<string, unknown> };
  assert.equal(config.quantization_config.quant_method, 'gptq');
  assert.equal(config.quantization_config.lowbit_float_zeros, true);
  assert.equal(JSON.parse(readFileSync(join(dir, 'quantize_config.json'), 'utf8')).lowbit_float_zeros, true);
  const names = new Set(Object.keys(safetensorsHeader(readFileSync(join(dir, 'model.safetensors'))).header));
  for (const [name, want] of layers) {
    const got = ck.weights.readQuantized?.(name) as GptqPacked;
    assert.ok(got && isGptqPacked(got) && got.zerosF, `${name} has float zeros`);
    assert.deepEqual(got.zerosF, want.zerosF);
    assert.deepEqual(got.qweight, want.qweight); assert.deepEqual(got.qzeros, want.qzeros); assert.deepEqual(got.scales, want.scales);
    assert.ok(names.has(name.replace(/\.weight$/, '.qzeros_float')));
    assert.ok(!ck.weights.has(name.replace(/\.weight$/, '.qzeros_float')), 'the part is not a tensor of its own');
    assert.deepEqual(ck.weights.read(name).data, dequantizeGptq(want));
  }
  // storage accounting counts the float zeros: 4 bytes per (group, output) more than the base checkpoint
  const extra = [...layers.values()].reduce((a, q) => a + 4 * q.groups * q.rows, 0);
  const base = bitsPerWeight(openModel(await quantizedTiny())), merged = bitsPerWeight(ck);
  assert.equal(merged.linearStoredBytes, base.linearStoredBytes + extra);
  assert.equal(merged.parameters, base.parameters);
});

test('the model read from the checkpoint gives the logits of the in-memory merged layers, bit for bit (and not the base model\'s)', async () => {
  const { dir, layers } = await floatZeroCheckpoint();
  const base = openModel(await quantizedTiny());
  const fromDisk = await logits(openModel(dir));
  const inMemory = await logits(withLayers(base, layers));
  assert.equal(fromDisk.length, inMemory.length);
  assert.ok(fromDisk.every((v, i) => Object.is(v, inMemory[i])), 'logits differ');
  const baseLogits = await logits(base);
  assert.ok(baseLogits.some((v, i) => v !== fromDisk[i]), 'the merge changes the logits');
});

test('lowbit eval reads the checkpoint: its perplexity equals the in-memory merged model\'s', async () => {
  const { dir, layers } = await floatZeroCheckpoint();
  const r = runCli(['eval', '--model', dir, '--ppl', 'tinystories', '--seqlen', '128', '--limit', '2', '--data-dir', DATA, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const got = (JSON.parse(r.stdout) as { results: { ppl: number }[] }).results[0]!.ppl;
  const { kernels, note } = selectKernels('auto', 2);
  const want = (await evaluatePpl(withLayers(openModel(await quantizedTiny()), layers), new CpuBackend(kernels, note), 'tinystories', { seqlen: 128, limit: 2, dataDir: DATA })).ppl;
  assert.ok(Number.isFinite(got) && Math.abs(got - want) <= 1e-6 * want, `eval ${got} vs in-memory ${want}`);
});

/** `fn` throws a FormatError whose message starts with `file` and matches `re`. */
function refuses(fn: () => unknown, file: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String((e as Error)?.stack ?? e)}`);
    assert.ok(e.message.startsWith(`${file}: `), `the message must name ${file}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test('a missing, misshapen, non-finite or undeclared qzeros_float is a FormatError naming the file and tensor', async () => {
  const { dir } = await floatZeroCheckpoint();
  const bytes = new Uint8Array(readFileSync(join(dir, 'model.safetensors')));
  const { header, dataStart } = safetensorsHeader(bytes) as { header: Record<string, any>; dataStart: number };
  const part = 'model.layers.1.self_attn.k_proj.qzeros_float';
  const edited = (edit: (h: Record<string, any>) => void, data?: Uint8Array): string => {
    const h = structuredClone(header);
    edit(h);
    return folderWith(dir, { 'model.safetensors': withSafetensorsHeader(bytes, h, data) });
  };
  const st = (d: string): string => join(d, 'model.safetensors');

  let d = edited((h) => { h.pad = { dtype: 'U8', shape: [h[part].data_offsets[1] - h[part].data_offsets[0]], data_offsets: h[part].data_offsets }; delete h[part]; });
  refuses(() => openModel(d), st(d), /model\.layers\.1\.self_attn\.k_proj has no model\.layers\.1\.self_attn\.k_proj\.qzeros_float: the quantization config says lowbit_float_zeros/);

  d = edited((h) => { h[part].shape = [h[part].shape[1], h[part].shape[0]]; });
  refuses(() => openModel(d), st(d), /tensor "model\.layers\.1\.self_attn\.k_proj\.qzeros_float" has shape \[\d+, \d+\]; for float zero points it must be \[\d+, \d+\]/);

  d = edited((h) => { h[part].dtype = 'I32'; });
  refuses(() => openModel(d), st(d), /tensor "model\.layers\.1\.self_attn\.k_proj\.qzeros_float" is I32; float zero points are F32/);

  const data = bytes.slice(dataStart);
  new DataView(data.buffer).setFloat32(header[part].data_offsets[0] + 4 * 3, NaN, true);
  d = edited(() => {}, data);
  const ck = openModel(d);
  refuses(() => ck.weights.readQuantized?.('model.layers.1.self_attn.k_proj.weight'), st(d), /tensor "model\.layers\.1\.self_attn\.k_proj\.qzeros_float" element 3 \(group 0, output 3\) is NaN/);
  refuses(() => LlamaModel.load(ck, new CpuBackend()), st(d), /k_proj\.qzeros_float" element 3/);

  const qc = JSON.parse(readFileSync(join(dir, 'quantize_config.json'), 'utf8')) as Record<string, unknown>;
  d = folderWith(dir, { 'quantize_config.json': JSON.stringify({ ...qc, lowbit_float_zeros: false }) });
  refuses(() => openModel(d), st(d), /tensor "model\.layers\.0\.self_attn\.q_proj\.qzeros_float" holds float zero points, but the quantization config does not say lowbit_float_zeros: true/);
  d = folderWith(dir, { 'quantize_config.json': JSON.stringify({ ...qc, lowbit_float_zeros: 'yes' }) });
  refuses(() => openModel(d), join(d, 'quantize_config.json'), /lowbit_float_zeros must be true or false, got "yes"/);
  // an ordinary GPTQ checkpoint that claims float zeros
  const base = await quantizedTiny();
  const bqc = JSON.parse(readFileSync(join(base, 'quantize_config.json'), 'utf8')) as Record<string, unknown>;
  d = folderWith(base, { 'quantize_config.json': JSON.stringify({ ...bqc, lowbit_float_zeros: true }) });
  refuses(() => openModel(d), st(d), /has no model\.layers\.\d+\.[a-z_.]+\.qzeros_float: the quantization config says lowbit_float_zeros/);
});
