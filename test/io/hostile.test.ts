// Truncated, corrupt and hostile files: every reader throws a FormatError that names the file,
// before allocating anything a header claims.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormatError } from '../../src/errors.js';
import { SafetensorsFile, safetensorsHeader } from '../../src/io/safetensors.js';
import { readGgufHeader } from '../../src/io/gguf/parse.js';
import { GgufSource } from '../../src/io/gguf/source.js';
import { GgmlType, GgufValueType } from '../../src/io/gguf/types.js';
import { Llama2cSource } from '../../src/io/llama2c.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { buildGguf, tinyLlamaKvs } from './ggufBuilder.js';

const dir = mkdtempSync(join(tmpdir(), 'lowbit-hostile-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
function file(bytes: Uint8Array, ext: string): string {
  const p = join(dir, `f${counter++}.${ext}`);
  writeFileSync(p, bytes);
  return p;
}

function throwsFormat(fn: () => unknown, path: string, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FormatError, `expected FormatError, got ${String(err)}`);
    assert.ok(err.message.includes(path), `message does not name the file: ${err.message}`);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

/** A deterministic PRNG (mulberry32) for the mutation tests. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------- safetensors ----------

function rawSafetensors(header: object | string, data: Uint8Array, claimedLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, claimedLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const goodTensors = [
  { name: 'w', tensor: new Tensor('f32', [2, 2], Float32Array.from([1, 2, 3, 4])) },
  { name: 'b', tensor: new Tensor('bf16', [2], Uint16Array.from([1, 2])) },
];
function goodSafetensors(): Uint8Array {
  const h = safetensorsHeader(goodTensors, { format: 'pt' });
  const out = new Uint8Array(h.length + 20);
  out.set(h);
  out.set(new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer), h.length);
  return out;
}

test('safetensors: every truncation of a valid file is a FormatError naming it', () => {
  const good = goodSafetensors();
  assert.equal(SafetensorsFile.open(file(good, 'safetensors')).list().length, 2);
  for (let cut = 0; cut < good.length; cut++) {
    const p = file(good.subarray(0, cut), 'safetensors');
    throwsFormat(() => SafetensorsFile.open(p), p);
  }
});

test('safetensors: hostile headers', () => {
  const data16 = new Uint8Array(16);
  const cases: [string, Uint8Array, RegExp][] = [
    ['length 2^60', rawSafetensors({}, data16, 2n ** 60n), /header length/],
    ['length past EOF', rawSafetensors({}, data16, 1000n), /exceeds the file/],
    ['not JSON', rawSafetensors('{"w": [', data16), /not valid JSON/],
    ['not an object', rawSafetensors('[1,2]', data16), /does not start with|not a JSON object/],
    ['unknown dtype', rawSafetensors({ w: { dtype: 'F8_E9', shape: [4], data_offsets: [0, 16] } }, data16), /unknown dtype "F8_E9"/],
    ['span mismatch', rawSafetensors({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, data16), /needs 12/],
    ['offsets past EOF', rawSafetensors({ w: { dtype: 'F32', shape: [4], data_offsets: [1000, 1016] } }, data16), /outside the data section/],
    ['negative shape', rawSafetensors({ w: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }, data16), /non-negative/],
    ['huge shape', rawSafetensors({ w: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 16] } }, data16), /too large/],
    ['overlap', rawSafetensors({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, data16), /gap or overlap/],
    ['trailing bytes', rawSafetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data16), /belong to no tensor/],
    ['bad metadata', rawSafetensors({ __metadata__: { n: 3 } }, new Uint8Array(0)), /__metadata__/],
  ];
  for (const [what, bytes, re] of cases) {
    const p = file(bytes, 'safetensors');
    assert.doesNotThrow(() => throwsFormat(() => SafetensorsFile.open(p), p, re), `case "${what}"`);
  }
});

test('safetensors: 500 random byte mutations never escape as anything but FormatError', () => {
  const good = goodSafetensors();
  const r = rng(1);
  for (let i = 0; i < 500; i++) {
    const m = good.slice();
    for (let k = 0; k < 1 + Math.floor(r() * 3); k++) m[Math.floor(r() * m.length)] = Math.floor(r() * 256);
    const p = file(m, 'safetensors');
    try {
      const f = SafetensorsFile.open(p);
      for (const t of f.list()) f.read(t.name);
    } catch (err) {
      assert.ok(err instanceof FormatError && err.message.includes(p), `mutation ${i}: ${String(err)}`);
    }
  }
});

// ---------- GGUF ----------

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}
function goodGguf(): Uint8Array {
  return buildGguf(tinyLlamaKvs(), [
    { name: 'output_norm.weight', ne: [32], type: GgmlType.F32, data: f32Bytes(Array.from({ length: 32 }, (_, i) => i)) },
    { name: 'blk.0.ffn_up.weight', ne: [32, 2], type: GgmlType.Q8_0, data: new Uint8Array(2 * 34) },
  ]);
}

test('GGUF: every truncation of a valid file is a FormatError naming it', () => {
  const good = goodGguf();
  const ok = readGgufHeader(file(good, 'gguf'));
  assert.equal(ok.tensors.length, 2);
  for (let cut = 0; cut < good.length; cut++) {
    const p = file(good.subarray(0, cut), 'gguf');
    throwsFormat(() => readGgufHeader(p), p);
  }
});

function patched(bytes: Uint8Array, at: number, write: (v: DataView) => void): Uint8Array {
  const m = bytes.slice();
  write(new DataView(m.buffer, at));
  return m;
}

test('GGUF: wrong magic, bad version, hostile counts and lengths', () => {
  const good = goodGguf();
  const firstKeyLen = 24; // magic 4 + version 4 + tensor count 8 + kv count 8
  const cases: [Uint8Array, RegExp][] = [
    [patched(good, 0, (v) => v.setUint32(0, 0x46554746, true)), /not a GGUF file/],
    [patched(good, 4, (v) => v.setUint32(0, 1, true)), /version 1 is not supported/],
    [patched(good, 4, (v) => v.setUint32(0, 4, true)), /version 4 is not supported/],
    [patched(good, 8, (v) => v.setBigUint64(0, 2n ** 40n, true)), /tensor count .* impossible/],
    [patched(good, 16, (v) => v.setBigUint64(0, 2n ** 63n, true)), /metadata count .* impossible/],
    [patched(good, firstKeyLen, (v) => v.setBigUint64(0, 2n ** 60n, true)), /length .* impossible/],
    [patched(good, firstKeyLen + 8 + 'general.architecture'.length, (v) => v.setUint32(0, 99, true)), /unknown value type 99/],
  ];
  for (const [bytes, re] of cases) {
    const p = file(bytes, 'gguf');
    throwsFormat(() => readGgufHeader(p), p, re);
  }
  // hostile array length and tensor fields, built directly
  const hugeArray = buildGguf([['x', GgufValueType.ARRAY, { type: GgufValueType.INT32, items: [1] }]], []);
  const arrCountAt = 24 + 8 + 1 + 4 + 4; // key len + "x" + value type + item type
  let p = file(patched(hugeArray, arrCountAt, (v) => v.setBigUint64(0, 2n ** 50n, true)), 'gguf');
  throwsFormat(() => readGgufHeader(p), p, /array length .* impossible/);
  const pastEof = buildGguf(tinyLlamaKvs(), [{ name: 'output_norm.weight', ne: [1 << 20], type: GgmlType.F32, data: new Uint8Array(128) }]);
  p = file(pastEof, 'gguf');
  throwsFormat(() => readGgufHeader(p), p, /"output_norm.weight".*runs past the end/);
  const misaligned = buildGguf([], [{ name: 't', ne: [8], type: GgmlType.F32, data: new Uint8Array(32), offset: 8 }]);
  p = file(misaligned, 'gguf');
  throwsFormat(() => readGgufHeader(p), p, /"t": offset 8 is not a multiple of the alignment 32/);
  const farOffset = buildGguf([], [{ name: 't', ne: [8], type: GgmlType.F32, data: new Uint8Array(32), offset: 2 ** 40 }]);
  p = file(farOffset, 'gguf');
  throwsFormat(() => readGgufHeader(p), p, /offset .* impossible/);
  const badBlock = buildGguf([], [{ name: 't', ne: [30], type: GgmlType.Q8_0, data: new Uint8Array(34) }]);
  p = file(badBlock, 'gguf');
  throwsFormat(() => readGgufHeader(p), p, /not a multiple of the block size 32/);
});

test('GGUF: tensors whose data overlap are refused, whatever the order of their infos', () => {
  const t = (name: string, offset: number) => ({ name, ne: [16], type: GgmlType.F32, data: new Uint8Array(64), offset });
  for (const [a, b] of [[0, 32], [32, 0], [0, 0]]) {
    const p = file(buildGguf([], [t('a', a!), t('b', b!)]), 'gguf');
    throwsFormat(() => readGgufHeader(p), p, /data \[\d+, \d+\) overlaps tensor "[ab]"/);
  }
  // side by side is fine, and so is an empty tensor at another's offset
  assert.equal(readGgufHeader(file(buildGguf([], [t('a', 0), t('b', 64)]), 'gguf')).tensors.length, 2);
  const empty = { name: 'e', ne: [0], type: GgmlType.F32, data: new Uint8Array(0), offset: 0 };
  assert.equal(readGgufHeader(file(buildGguf([], [t('a', 0), empty]), 'gguf')).tensors.length, 2);
});

test('GGUF: an undecodable tensor type names the tensor and the type when read', () => {
  const p = file(buildGguf(tinyLlamaKvs(), [
    { name: 'blk.0.ffn_down.weight', ne: [256, 1], type: GgmlType.Q4_K, data: new Uint8Array(144) },
  ]), 'gguf');
  const src = new GgufSource(p, { numHeads: 2, numKvHeads: 2 });
  assert.equal(src.list()[0]!.storedAs, 'Q4_K');
  throwsFormat(() => src.read('model.layers.0.mlp.down_proj.weight'), p, /"blk\.0\.ffn_down\.weight" has type Q4_K/);
});

test('GGUF: 500 random byte mutations never escape as anything but FormatError', () => {
  const good = goodGguf();
  const r = rng(2);
  for (let i = 0; i < 500; i++) {
    const m = good.slice();
    for (let k = 0; k < 1 + Math.floor(r() * 3); k++) m[Math.floor(r() * m.length)] = Math.floor(r() * 256);
    const p = file(m, 'gguf');
    try {
      const src = new GgufSource(p, { numHeads: 2, numKvHeads: 2 });
      for (const t of src.list()) src.read(t.name);
    } catch (err) {
      assert.ok(err instanceof FormatError && err.message.includes(p), `mutation ${i}: ${String(err)}`);
    }
  }
});

// ---------- llama2.c ----------

function tinyLlama2c(vocab = 4): Uint8Array {
  const [dim, hidden, layers, heads, kvHeads, seq] = [8, 16, 1, 2, 1, 4];
  const kvDim = (dim / heads) * kvHeads;
  const weights = Math.abs(vocab) * dim + layers * (2 * dim + dim * dim * 2 + 2 * kvDim * dim + 3 * hidden * dim) + dim;
  const floats = weights + seq * (dim / heads) + (vocab < 0 ? -vocab * dim : 0);
  const out = new Uint8Array(28 + 4 * floats);
  const v = new DataView(out.buffer);
  [dim, hidden, layers, heads, kvHeads, vocab, seq].forEach((x, i) => v.setInt32(4 * i, x, true));
  for (let i = 0; i < floats; i++) v.setFloat32(28 + 4 * i, i, true);
  return out;
}

test('llama2.c: exact size check, truncations and hostile headers', () => {
  const good = tinyLlama2c();
  assert.equal(new Llama2cSource(file(good, 'bin')).list().length, 1 + 9 + 1);
  assert.ok(new Llama2cSource(file(tinyLlama2c(-4), 'bin')).has('lm_head.weight'));
  for (const cut of [0, 3, 27, 28, 100, good.length - 4, good.length - 1]) {
    const p = file(good.subarray(0, cut), 'bin');
    throwsFormat(() => new Llama2cSource(p), p);
  }
  const longer = new Uint8Array(good.length + 4);
  longer.set(good);
  let p = file(longer, 'bin');
  throwsFormat(() => new Llama2cSource(p), p, /implies/);
  const cases: [number, number, RegExp][] = [
    [0, -8, /dim = -8 must be positive/],
    [0, 2 ** 30, /implies/],
    [5, 0, /vocab_size = 0/],
    [3, 3, /does not split into 3 heads/],
    [4, 0, /n_kv_heads = 0/],
    [6, 2 ** 31 - 1, /implies/],
  ];
  for (const [field, value, re] of cases) {
    p = file(patched(good, 4 * field, (v) => v.setInt32(0, value, true)), 'bin');
    throwsFormat(() => new Llama2cSource(p), p, re);
  }
});
