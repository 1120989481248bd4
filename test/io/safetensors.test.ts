import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile, ShardedSafetensors, openSafetensorsDir, writeSafetensors } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { bf16ToF32 } from '../../src/tensor/codecs.js';
import { TINY656K } from '../helpers/paths.js';

const made: string[] = [];
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'lowbit-st-')); made.push(d); return d; };
after(() => { for (const d of made) rmSync(d, { recursive: true, force: true }); });

function sample(): { name: string; tensor: Tensor }[] {
  return [
    { name: 'a.f32', tensor: new Tensor('f32', [2, 3], Float32Array.from([1, -2.5, 3e-8, Infinity, -0, 7])) },
    { name: 'b.bf16', tensor: new Tensor('bf16', [3], Uint16Array.from([0x3f80, 0xc000, 0x7fc0])) },
    { name: 'c.f16', tensor: new Tensor('f16', [1, 1, 2], Uint16Array.from([0x3c00, 0x8001])) },
    { name: 'd.i32', tensor: new Tensor('i32', [2, 2], Int32Array.from([1, -1, 2 ** 31 - 1, -(2 ** 31)])) },
    { name: 'e.i8', tensor: new Tensor('i8', [5], Int8Array.from([-128, -1, 0, 1, 127])) },
    { name: 'f.u8', tensor: new Tensor('u8', [1], Uint8Array.from([255])) },
    { name: 'g.f64', tensor: new Tensor('f64', [2], Float64Array.from([Math.PI, -1e300])) },
    { name: 'h.i64', tensor: new Tensor('i64', [2], BigInt64Array.from([-(2n ** 63n), 2n ** 62n + 3n])) },
    { name: 'i.empty', tensor: new Tensor('f32', [0, 4], new Float32Array(0)) },
  ];
}

test('write → read → write gives identical bytes and values, header padded with spaces to 8', () => {
  const dir = tmp();
  const p1 = join(dir, 'a.safetensors'), p2 = join(dir, 'b.safetensors');
  writeSafetensors(p1, sample(), { format: 'pt', note: 'ünïcode' });
  const f = SafetensorsFile.open(p1);
  assert.equal(f.headerLength % 8, 0);
  assert.deepEqual({ ...f.metadata }, { format: 'pt', note: 'ünïcode' });
  assert.deepEqual(f.list().map((t) => t.name), sample().map((s) => s.name));
  for (const s of sample()) {
    const t = f.read(s.name);
    assert.equal(t.dtype, s.tensor.dtype);
    assert.deepEqual(t.shape, s.tensor.shape);
    assert.deepEqual(t.data, s.tensor.data);
  }
  writeSafetensors(p2, f.list().map((t) => ({ name: t.name, tensor: f.read(t.name) })), { ...f.metadata });
  assert.deepEqual(readFileSync(p2), readFileSync(p1));
  const raw = readFileSync(p1);
  const n = Number(raw.readBigUInt64LE(0));
  const header = raw.subarray(8, 8 + n).toString('utf8');
  assert.match(header, /^\{"__metadata__":\{"format":"pt","note":"ünïcode"\},"a\.f32":\{"dtype":"F32","shape":\[2,3\],"data_offsets":\[0,24\]\}/);
  assert.match(header, /\} *$/);
  assert.deepEqual(readdirSync(dir).sort(), ['a.safetensors', 'b.safetensors'], 'no temporary files left behind');
});

for (const rel of ['model.safetensors', 'f32/model.safetensors']) {
  test(`TinyStories-656K ${rel}: rewriting in header order reproduces the file byte for byte`, () => {
    const src = join(TINY656K, rel);
    const f = SafetensorsFile.open(src);
    const out = join(tmp(), 'copy.safetensors');
    writeSafetensors(out, f.list().map((t) => ({ name: t.name, tensor: f.read(t.name) })), { ...f.metadata });
    assert.deepEqual(readFileSync(out), readFileSync(src));
  });
}

test('TinyStories-656K: 20 tensors, 656,000 BF16 parameters, and f32/ is their exact upcast', () => {
  const bf = openSafetensorsDir(TINY656K) as SafetensorsFile;
  const f32 = openSafetensorsDir(join(TINY656K, 'f32')) as SafetensorsFile;
  assert.equal(bf.list().length, 20);
  assert.equal(bf.list().reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0), 656_000);
  assert.ok(bf.list().every((t) => t.storedAs === 'BF16' && t.dtype === 'bf16'));
  assert.equal(f32.metadata['model.embed_tokens.weight'], 'lm_head.weight');
  assert.deepEqual(bf.read('model.embed_tokens.weight').shape, [2048, 128]);
  for (const t of bf.list()) {
    const other = t.name === 'model.embed_tokens.weight' ? 'lm_head.weight' : t.name;
    const a = bf.read(t.name), b = f32.read(other);
    assert.equal(b.dtype, 'f32');
    assert.deepEqual(b.shape, a.shape);
    const bits = a.data as Uint16Array, vals = b.data as Float32Array;
    for (let i = 0; i < bits.length; i++) if (!Object.is(bf16ToF32(bits[i]!), vals[i])) assert.fail(`${t.name}[${i}]`);
  }
});

test('sharded checkpoints: index.json routes each tensor to its shard', () => {
  const dir = tmp();
  const s = sample();
  writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), s.slice(0, 4), { format: 'pt' });
  writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), s.slice(4));
  const weightMap = Object.fromEntries(s.map((t, i) => [t.name, `model-0000${i < 4 ? 1 : 2}-of-00002.safetensors`]));
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  const src = openSafetensorsDir(dir);
  assert.ok(src instanceof ShardedSafetensors);
  assert.deepEqual(src.list().map((t) => t.name), s.map((t) => t.name));
  for (const t of s) assert.deepEqual(src.read(t.name).data, t.tensor.data);
  assert.deepEqual({ ...src.metadata }, { format: 'pt' });
});
