import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgufSource } from '../../src/io/gguf/source.js';
import { readGgufHeader } from '../../src/io/gguf/parse.js';
import { ggufConfig } from '../../src/io/gguf/config.js';
import { GgmlType } from '../../src/io/gguf/types.js';
import { Llama2cSource } from '../../src/io/llama2c.js';
import { MemorySource } from '../../src/io/memorySource.js';
import { RenamedSource } from '../../src/io/open.js';
import { readRows, rowReader, sliceRows } from '../../src/io/rows.js';
import { SafetensorsFile, openSafetensorsDir, writeSafetensors } from '../../src/io/safetensors.js';
import type { TensorSource } from '../../src/io/source.js';
import { f32ToBf16, f32ToF16 } from '../../src/tensor/codecs.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { LazyRandomSource } from '../../bench/randomSource.js';
import { SMALL_GQA_LLAMA3, rng } from '../helpers/randomModel.js';
import { STORIES260K, TINY656K } from '../helpers/paths.js';
import { buildGguf, tinyLlamaKvs } from './ggufBuilder.js';

const made: string[] = [];
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'lowbit-rows-')); made.push(d); return d; };
after(() => { for (const d of made) rmSync(d, { recursive: true, force: true }); });

/** Row ranges worth checking for a tensor of `rows` rows: empty, single rows, edges, the whole. */
function ranges(rows: number): [number, number][] {
  const out: [number, number][] = [[0, 0], [0, rows], [rows, 0]];
  for (const s of [0, 1, Math.floor(rows / 2), rows - 1]) for (const c of [1, 2, 3, 5]) if (s >= 0 && s + c <= rows) out.push([s, c]);
  return out;
}

/** readRows (the source's own and the helper's) equals read() + slice for every range, dtype and shape included. */
function assertRowsMatch(src: TensorSource, name: string): void {
  const whole = src.read(name);
  for (const [s, c] of ranges(whole.shape[0]!)) {
    const want = sliceRows(whole, s, c);
    for (const got of [src.readRows!(name, s, c), readRows(src, name, s, c)]) {
      assert.equal(got.dtype, whole.dtype, `${name} [${s}, ${s + c}) dtype`);
      assert.deepEqual(got.shape, want.shape, `${name} [${s}, ${s + c}) shape`);
      assert.deepEqual(got.data, want.data, `${name} rows [${s}, ${s + c})`);
    }
  }
}

/** Out-of-range and malformed requests: a RangeError naming the file and the tensor, nothing read. */
function assertRangeErrors(src: TensorSource, name: string, path: string, sourcePath = path): void {
  const rows = src.list().find((t) => t.name === name)!.shape[0]!;
  for (const [s, c] of [[-1, 1], [0, rows + 1], [rows, 1], [rows - 1, 2], [0.5, 1], [0, -1], [Number.NaN, 1], [2 ** 60, 1]] as const) {
    assert.throws(() => src.readRows!(name, s, c), (e: Error) => e instanceof RangeError && e.message.includes(path) && e.message.includes(name),
      `${name} [${s}, +${c}) must be a RangeError naming ${path}`);
    assert.throws(() => readRows(src, name, s, c), RangeError);
  }
  assert.throws(() => src.readRows!('no.such.tensor', 0, 1), (e: Error) => e.message.includes(sourcePath) && e.message.includes('no.such.tensor'));
}

const rand = rng(11);
const values = (n: number): number[] => Array.from({ length: n }, () => rand() * 3);

test('safetensors readRows (bf16, f16, f32; 1-, 2- and 3-D; single file and shards) equals read() + slice', () => {
  const dir = tmp();
  const tensors = [
    { name: 'w.bf16', tensor: new Tensor('bf16', [13, 6], Uint16Array.from(values(78), f32ToBf16)) },
    { name: 'w.f16', tensor: new Tensor('f16', [9, 5], Uint16Array.from(values(45), f32ToF16)) },
    { name: 'w.f32', tensor: new Tensor('f32', [11, 7], Float32Array.from(values(77))) },
    { name: 'w3.f32', tensor: new Tensor('f32', [4, 3, 2], Float32Array.from(values(24))) },
    { name: 'norm.f32', tensor: new Tensor('f32', [6], Float32Array.from(values(6))) },
  ];
  const p = join(dir, 'model.safetensors');
  writeSafetensors(p, tensors);
  const f = SafetensorsFile.open(p);
  for (const { name } of tensors) assertRowsMatch(f, name);
  assertRangeErrors(f, 'w.bf16', p);
  // shards: the index routes readRows to the shard that holds the tensor
  const sdir = tmp();
  writeSafetensors(join(sdir, 'a.safetensors'), tensors.slice(0, 2));
  writeSafetensors(join(sdir, 'b.safetensors'), tensors.slice(2));
  const map = Object.fromEntries(tensors.map((t, i) => [t.name, i < 2 ? 'a.safetensors' : 'b.safetensors']));
  writeFileSync(join(sdir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: map }));
  const sharded = openSafetensorsDir(sdir);
  for (const { name } of tensors) assertRowsMatch(sharded, name);
  assertRangeErrors(sharded, 'w.f32', join(sdir, 'b.safetensors'), join(sdir, 'model.safetensors.index.json'));
});

test('safetensors readRows reads only the requested bytes: rows before a tail cut after opening still read', () => {
  const dir = tmp();
  const p = join(dir, 'model.safetensors');
  writeSafetensors(p, [{ name: 'emb', tensor: new Tensor('f32', [4, 2], Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7])) }]);
  const f = SafetensorsFile.open(p);
  truncateSync(p, statSync(p).size - 8); // the last row is gone
  assert.deepEqual([...f.readRows('emb', 1, 2).data], [2, 3, 4, 5]);
  assert.throws(() => f.read('emb'), (e: Error) => e.message.includes(p) && e.message.includes('emb'));
  assert.throws(() => f.readRows('emb', 3, 1), (e: Error) => e.message.includes(p) && e.message.includes('emb') && e.message.includes('rows [3, 4)'));
});

/** Q8_0 blocks: f16 scale + 32 int8. */
function q8Blocks(n: number): Uint8Array {
  const out = new Uint8Array((n / 32) * 34);
  for (let b = 0; b < n / 32; b++) {
    const h = f32ToF16(0.01 + rand() * 0.05);
    out[b * 34] = h & 0xff; out[b * 34 + 1] = h >> 8;
    for (let i = 0; i < 32; i++) out[b * 34 + 2 + i] = Math.floor(rand() * 256);
  }
  return out;
}
/** Q4_0 blocks: f16 scale + 16 bytes of nibbles. */
function q4Blocks(n: number): Uint8Array {
  const out = new Uint8Array((n / 32) * 18);
  for (let b = 0; b < n / 32; b++) {
    const h = f32ToF16(0.02 + rand() * 0.05);
    out[b * 18] = h & 0xff; out[b * 18 + 1] = h >> 8;
    for (let i = 0; i < 16; i++) out[b * 18 + 2 + i] = Math.floor(rand() * 256);
  }
  return out;
}
const f32Bytes = (n: number): Uint8Array => new Uint8Array(Float32Array.from(values(n)).buffer);
const f16Bytes = (n: number): Uint8Array => new Uint8Array(Uint16Array.from(values(n), f32ToF16).buffer);
const bf16Bytes = (n: number): Uint8Array => new Uint8Array(Uint16Array.from(values(n), f32ToBf16).buffer);

test('GGUF readRows (F32, F16, BF16, Q8_0, Q4_0; q/k rows un-permuted) equals read() + slice', () => {
  const dir = tmp();
  const p = join(dir, 'rows.gguf');
  // ne = [columns, rows]; attn_q: 4 heads of 8 rows, attn_k: 2 heads of 8 rows (un-permuted by head)
  writeFileSync(p, buildGguf(tinyLlamaKvs(), [
    { name: 'token_embd.weight', ne: [32, 10], type: GgmlType.F16, data: f16Bytes(320) },
    { name: 'output.weight', ne: [64, 9], type: GgmlType.Q8_0, data: q8Blocks(576) },
    { name: 'output_norm.weight', ne: [32], type: GgmlType.F32, data: f32Bytes(32) },
    { name: 'blk.0.ffn_up.weight', ne: [64, 7], type: GgmlType.Q4_0, data: q4Blocks(448) },
    { name: 'blk.0.ffn_down.weight', ne: [5, 6], type: GgmlType.F32, data: f32Bytes(30) },
    { name: 'blk.0.ffn_gate.weight', ne: [6, 5], type: GgmlType.BF16, data: bf16Bytes(30) },
    { name: 'blk.0.attn_q.weight', ne: [32, 32], type: GgmlType.Q8_0, data: q8Blocks(1024) },
    { name: 'blk.0.attn_k.weight', ne: [32, 16], type: GgmlType.F16, data: f16Bytes(512) },
    { name: 'blk.0.attn_v.weight', ne: [32, 16], type: GgmlType.Q4_0, data: q4Blocks(512) },
    { name: 'blk.0.attn_norm.weight', ne: [32], type: GgmlType.Q8_0, data: q8Blocks(32) },
  ]));
  const src = new GgufSource(p, { numHeads: 4, numKvHeads: 2 });
  assert.equal(src.list().length, 10);
  for (const t of src.list()) assertRowsMatch(src, t.name);
  // every row range of the permuted q rows, one at a time and across head boundaries
  const q = src.read('model.layers.0.self_attn.q_proj.weight');
  for (let s = 0; s < 32; s++) {
    for (const c of [1, 4, 8, 9, 17]) {
      if (s + c > 32) continue;
      assert.deepEqual(src.readRows('model.layers.0.self_attn.q_proj.weight', s, c).data, sliceRows(q, s, c).data, `q rows [${s}, ${s + c})`);
    }
  }
  assertRangeErrors(src, 'model.embed_tokens.weight', p);
  assertRangeErrors(src, 'lm_head.weight', p);
});

test('GGUF readRows names a tensor type it cannot decode, with the file', () => {
  const dir = tmp();
  const p = join(dir, 'q4k.gguf');
  writeFileSync(p, buildGguf(tinyLlamaKvs(), [{ name: 'token_embd.weight', ne: [256, 2], type: GgmlType.Q4_K, data: new Uint8Array(288) }]));
  const src = new GgufSource(p, { numHeads: 2, numKvHeads: 2 });
  assert.throws(() => src.readRows('model.embed_tokens.weight', 0, 1), (e: Error) => e.message.includes(p) && e.message.includes('token_embd.weight') && /Q4_K/.test(e.message));
});

test('bundled checkpoints: readRows equals read() + slice for every tensor (bf16/f32 safetensors, F16 and Q8_0 GGUF, llama2.c)', () => {
  const gguf = (path: string) => { const h = readGgufHeader(path); return new GgufSource(path, ggufConfig(h), h); };
  const sources: TensorSource[] = [
    SafetensorsFile.open(join(TINY656K, 'model.safetensors')),
    SafetensorsFile.open(join(TINY656K, 'f32', 'model.safetensors')),
    gguf(join(TINY656K, 'gguf/TinyStories-656K-GGUF/TinyStories-656K.f16.gguf')),
    gguf(join(TINY656K, 'gguf/TinyStories-656K-Q8_0-GGUF/tinystories-656k-q8_0.gguf')),
    gguf(join(STORIES260K, 'stories260K.gguf')),
    new Llama2cSource(join(STORIES260K, 'stories260K.bin')),
  ];
  for (const src of sources) {
    for (const t of src.list()) {
      const whole = src.read(t.name);
      const rows = whole.shape[0]!;
      for (const [s, c] of [[0, rows], [0, 1], [rows - 1, 1], [Math.floor(rows / 3), Math.min(rows - Math.floor(rows / 3), 11)]] as const) {
        assert.deepEqual(src.readRows!(t.name, s, c).data, sliceRows(whole, s, c).data, `${src.path}: ${t.name} rows [${s}, ${s + c})`);
      }
    }
  }
  assertRangeErrors(sources[5]!, 'model.embed_tokens.weight', join(STORIES260K, 'stories260K.bin'));
});

test('memory source readRows (f32, bf16) is a view equal to read() + slice; the helper falls back to read() for other sources', () => {
  const src = new MemorySource('mem-model', [
    ['a', new Tensor('f32', [8, 3], Float32Array.from(values(24)))],
    ['b', new Tensor('bf16', [5, 4], Uint16Array.from(values(20), f32ToBf16))],
    ['c', new Tensor('f32', [4], Float32Array.from(values(4)))],
  ]);
  for (const n of ['a', 'b', 'c']) assertRowsMatch(src, n);
  assertRangeErrors(src, 'a', 'mem-model');
  // a source without readRows: the helper reads the whole tensor and copies the rows out
  let reads = 0;
  const plain: TensorSource = { path: 'plain-source', list: () => src.list(), has: (n) => src.has(n), read: (n) => { reads++; return src.read(n); } };
  const got = readRows(plain, 'b', 1, 3);
  assert.deepEqual(got.data, sliceRows(src.read('b'), 1, 3).data);
  assert.notEqual(got.data.buffer, src.read('b').data.buffer, 'the fallback copies (the whole tensor need not stay alive)');
  assert.throws(() => readRows(plain, 'b', 4, 2), (e: Error) => e instanceof RangeError && e.message.includes('plain-source') && e.message.includes('"b"'));
  // a rowReader over it reads the tensor once, however many ranges are asked for
  reads = 0;
  const r = rowReader(plain, 'a');
  assert.equal(r.partial, false);
  for (let s = 0; s < 8; s++) assert.deepEqual(r.read(s, 1).data, sliceRows(src.read('a'), s, 1).data);
  assert.equal(reads, 1);
  assert.throws(() => rowReader(plain, 'zz'), (e: Error) => e.message.includes('plain-source') && e.message.includes('zz'));
});

test('benchmark LazyRandomSource: rows are generated independently and equal the same rows of read()', () => {
  const src = new LazyRandomSource({ ...SMALL_GQA_LLAMA3, vocabSize: 37 }, 3);
  for (const t of src.list()) assertRowsMatch(src, t.name);
  assertRangeErrors(src, 'model.embed_tokens.weight', src.path);
  // different tensors of the same shape differ (the name seeds the values)
  assert.notDeepEqual(src.read('model.layers.0.mlp.gate_proj.weight').data, src.read('model.layers.0.mlp.up_proj.weight').data);
});

test('renamed source (tied head stored as lm_head only) passes readRows through under the new name', () => {
  const inner = new MemorySource('renamed-model', [['lm_head.weight', new Tensor('f32', [6, 2], Float32Array.from(values(12)))]]);
  const src = new RenamedSource(inner, new Map([['model.embed_tokens.weight', 'lm_head.weight']]));
  assertRowsMatch(src, 'model.embed_tokens.weight');
  assert.throws(() => src.readRows('lm_head.weight', 0, 1), /no tensor named/);
});
