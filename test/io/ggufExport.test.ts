/**
 * GGUF export (src/io/quantized/ggufExport.ts): lowbit reads its own export back to the same weights;
 * the bytes llama.cpp would write where they are defined (Q8_0 re-quantization, F16 conversion, the
 * tokenizer metadata of convert_hf_to_gguf.py) equal the bundled llama.cpp GGUFs'; what a GGUF type
 * cannot hold is refused in one line naming the layer.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { UsageError } from '../../src/errors.js';
import { openModel } from '../../src/io/open.js';
import { readGgufHeader } from '../../src/io/gguf/parse.js';
import { GgmlType } from '../../src/io/gguf/types.js';
import { exportGguf, type GgufExport } from '../../src/io/quantized/ggufExport.js';
import { quantizeModel, type QuantizeModelOptions } from '../../src/quant/quantizeModel.js';
import { TINY656K } from '../helpers/paths.js';
import { removeScratch, scratchDir } from './mutate.js';

after(removeScratch);
const dir = scratchDir('gguf');
const F16_GGUF = join(TINY656K, 'gguf', 'TinyStories-656K-GGUF', 'TinyStories-656K.f16.gguf');
const Q8_GGUF = join(TINY656K, 'gguf', 'TinyStories-656K-Q8_0-GGUF', 'tinystories-656k-q8_0.gguf');

const made = new Map<string, Promise<string>>();
/** An RTN checkpoint of the bundled model, made once per setting. */
function rtn(name: string, o: Omit<QuantizeModelOptions, 'method' | 'calib' | 'out'>): Promise<string> {
  if (!made.has(name)) {
    const out = join(dir, name);
    made.set(name, quantizeModel(openModel(TINY656K), new CpuBackend(), { method: 'rtn', calib: 'none', out, ...o }).then(() => out));
  }
  return made.get(name)!;
}

/** Every tensor of `a` against `b` (by lowbit name, as float32): the max abs difference per tensor. */
function weightDiffs(a: string, b: string): Map<string, number> {
  const x = openModel(a).weights, y = openModel(b).weights;
  const out = new Map<string, number>();
  for (const { name } of x.list()) {
    const u = x.read(name).toF32(), v = y.read(name).toF32();
    assert.equal(u.length, v.length, name);
    let m = 0;
    for (let i = 0; i < u.length; i++) m = Math.max(m, Math.abs(u[i]! - v[i]!));
    out.set(name, m);
  }
  assert.deepEqual([...out.keys()].sort(), y.list().map((t) => t.name).sort());
  return out;
}

function tensorBytes(file: string, name: string): Uint8Array {
  const h = readGgufHeader(file);
  const t = h.tensors.find((x) => x.name === name);
  assert.ok(t, `${file} has ${name}`);
  const next = h.tensors.filter((x) => x.offset > t.offset).map((x) => x.offset).sort((p, q) => p - q)[0] ?? h.fileSize - h.dataStart;
  return readFileSync(file).subarray(h.dataStart + t.offset, h.dataStart + next);
}

const typesOf = (r: GgufExport) => new Set(r.tensors.filter((t) => t.name.startsWith('blk.') && !t.name.endsWith('norm.weight')).map((t) => t.type));

test('float exports read back to identical tensors (auto keeps BF16, f32 widens) and the config round-trips', () => {
  for (const type of ['auto', 'f32'] as const) {
    const out = join(dir, `float-${type}.gguf`);
    const r = exportGguf(TINY656K, out, { type, requantize: false });
    assert.equal(r.exact, true);
    assert.deepEqual(typesOf(r), new Set([type === 'auto' ? 'BF16' : 'F32']));
    for (const [name, d] of weightDiffs(out, TINY656K)) assert.equal(d, 0, `${type}: ${name}`);
    assert.deepEqual({ ...openModel(out).config, bosTokenId: undefined, eosTokenId: undefined }, { ...openModel(TINY656K).config, bosTokenId: undefined, eosTokenId: undefined });
  }
});

test('F16 export: tensor bytes and tokenizer metadata equal the bundled llama.cpp conversion (convert_hf_to_gguf.py)', () => {
  const out = join(dir, 'f16.gguf');
  exportGguf(TINY656K, out, { type: 'f16', requantize: false });
  const mine = readGgufHeader(out), ref = readGgufHeader(F16_GGUF);
  assert.deepEqual(mine.tensors.map((t) => t.name).sort(), ref.tensors.map((t) => t.name).sort());
  for (const t of ref.tensors) {
    assert.deepEqual(mine.tensors.find((x) => x.name === t.name)!.type, t.type, t.name);
    assert.deepEqual(tensorBytes(out, t.name).subarray(0, 64), tensorBytes(F16_GGUF, t.name).subarray(0, 64), t.name);
    assert.ok(Buffer.from(tensorBytes(out, t.name)).equals(Buffer.from(tensorBytes(F16_GGUF, t.name))), `${t.name} bytes`);
  }
  for (const [key, v] of ref.metadata) {
    if (key.startsWith('tokenizer.') || key.startsWith('llama.') || key === 'general.architecture' || key === 'general.file_type') assert.deepEqual(mine.metadata.get(key), v, key);
  }
  assert.deepEqual(mine.metadata.get('lowbit.requantized'), []);
});

test('--requantize Q8_0 of the float model: every linear layer\'s bytes equal llama.cpp\'s own Q8_0 file', () => {
  const out = join(dir, 'q8-requant.gguf');
  const r = exportGguf(TINY656K, out, { type: 'q8_0', requantize: true });
  const linears = r.tensors.filter((t) => t.name.startsWith('blk.') && !t.name.endsWith('norm.weight'));
  assert.equal(linears.length, 14);
  for (const t of linears) {
    assert.equal(t.type, 'Q8_0');
    assert.equal(t.how, 'requantized');
    assert.ok(Buffer.from(tensorBytes(out, t.name)).equals(Buffer.from(tensorBytes(Q8_GGUF, t.name))), `${t.name}: bytes differ from llama.cpp's`);
  }
  assert.deepEqual([...(readGgufHeader(out).metadata.get('lowbit.requantized') as string[])].sort(), linears.map((t) => t.name).sort());
  // lowbit reads the re-quantized weights within the measured change
  for (const [name, d] of weightDiffs(out, TINY656K)) {
    const rep = r.tensors.find((t) => t.from === name)!;
    assert.ok(d <= rep.maxAbsChange + 1e-9 && (rep.how === 'exact') === (d === 0), `${name}: read-back change ${d}, reported ${rep.maxAbsChange}`);
  }
});

test('grids stored as they are: 8-bit sym g32 → Q8_0 and 4-bit sym g32 → Q4_0 exactly; 4-bit asym g32 → Q4_1 within the reported fp16 rounding of m', async () => {
  const cases = [
    { name: 'w8sym', o: { bits: 8, group: 32, sym: true, scaleDtype: 'f16' as const }, type: 'Q8_0', exact: true },
    { name: 'w4sym', o: { bits: 4, group: 32, sym: true, scaleDtype: 'f16' as const }, type: 'Q4_0', exact: true },
    { name: 'w4asym', o: { bits: 4, group: 32, scaleDtype: 'f16' as const }, type: 'Q4_1', exact: false },
  ];
  for (const c of cases) {
    const ckpt = await rtn(c.name, c.o);
    const out = join(dir, `${c.name}.gguf`);
    const r = exportGguf(ckpt, out, { type: 'auto', requantize: false });
    assert.deepEqual(typesOf(r), new Set([c.type]), c.name);
    assert.deepEqual(readGgufHeader(out).metadata.get('lowbit.requantized'), []);
    const diffs = weightDiffs(out, ckpt);
    for (const t of r.tensors) {
      const d = diffs.get(t.from)!;
      assert.equal(d, t.maxAbsChange, `${c.name} ${t.name}: read-back change ${d} is not the reported ${t.maxAbsChange}`);
      if (c.exact || !t.name.startsWith('blk.') || t.name.endsWith('norm.weight')) assert.equal(t.how, 'exact', `${c.name} ${t.name}`);
      else assert.ok(t.how === 'exact' || t.how === 'rounded');
    }
    if (!c.exact) {
      // m = −scale·zero rounded to fp16: at most half an fp16 ulp of |scale·zero| < 2^-11 · 15 · max scale
      const rounded = r.tensors.filter((t) => t.how === 'rounded');
      assert.ok(rounded.length > 0, 'some m values are not fp16 values');
      assert.ok(r.maxAbsChange > 0 && r.maxAbsChange < 1e-3, `Q4_1 m rounding moved weights by ${r.maxAbsChange}`);
    }
  }
});

function refusal(f: () => unknown): string {
  try { f(); } catch (e) {
    assert.ok(e instanceof UsageError, String(e));
    assert.ok(!e.message.includes('\n'), 'one line');
    return e.message;
  }
  assert.fail('not refused');
}

test('refused in one line naming the layer and why: group 128, 3-bit, fp32 scales, asymmetric → Q4_0, float → Q4_0; --requantize writes them and records it', async () => {
  const g128 = await rtn('w4g128', { bits: 4, group: 128, scaleDtype: 'f16' });
  const out = join(dir, 'refused.gguf');
  assert.match(refusal(() => exportGguf(g128, out, { type: 'auto', requantize: false })), /^layer blk\.0\.attn_q\.weight \(model\.layers\.0\.self_attn\.q_proj\.weight\) of .*w4g128: group size 128 \(one group per row\): Q4_1 blocks are groups of 32/);
  const w3 = await rtn('w3g32', { bits: 3, group: 32, scaleDtype: 'f16' });
  assert.match(refusal(() => exportGguf(w3, out, { type: 'auto', requantize: false })), /layer blk\.0\.attn_q\.weight .*3-bit codes do not fit Q4_1/);
  const f32s = await rtn('w4f32', { bits: 4, group: 32 });
  assert.match(refusal(() => exportGguf(f32s, out, { type: 'auto', requantize: false })), /layer blk\.0\.attn_q\.weight .*scale .* is not an fp16 value/);
  const asym = await rtn('w4asym', { bits: 4, group: 32, scaleDtype: 'f16' });
  assert.match(refusal(() => exportGguf(asym, out, { type: 'q4_0', requantize: false })), /layer blk\.0\.attn_q\.weight .*zero point \d+ \(asymmetric grid\): Q4_0 is symmetric/);
  assert.match(refusal(() => exportGguf(TINY656K, out, { type: 'q4_0', requantize: false })), /layer blk\.0\.attn_q\.weight .*float weights are not on a quantization grid.*--requantize/);
  // with --requantize: written, and the file says which tensors were re-quantized
  const r = exportGguf(g128, out, { type: 'auto', requantize: true });
  assert.equal(r.requantized.length, 14);
  assert.deepEqual(readGgufHeader(out).metadata.get('lowbit.requantized'), r.requantized);
  assert.ok(r.maxAbsChange > 0);
});
