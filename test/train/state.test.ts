import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormatError, UsageError } from '../../src/errors.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Xoshiro128 } from '../../src/tensor/xoshiro.js';
import { hasTrainState, loadTrainState, saveTrainState, STATE_JSON, STATE_TENSORS, type TrainState } from '../../src/train/state.js';

const root = mkdtempSync(join(tmpdir(), 'lowbit-state-'));
/** a pid that is certainly not running: a child that has exited */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;

function sample(step: number): TrainState {
  const rng = new Xoshiro128(3, 1);
  rng.normal(); // a spare normal pending
  const a = new Float32Array(12).map(() => rng.normal());
  a[0] = -0; a[1] = 1e-45; a[2] = 3.4028234663852886e38; // -0, the smallest subnormal, the largest float32
  return {
    step,
    tensors: {
      'layers.0.q_proj.lora_A': new Tensor('f32', [3, 4], a),
      'layers.0.q_proj.lora_B': new Tensor('f32', [4, 3], new Float32Array(12).map(() => rng.uniform(-1, 1))),
      'adamw.v.layers.0.q_proj.lora_A': new Tensor('f32', [0], new Float32Array(0)),
    },
    rng: rng.state(),
    meta: { lr: 2e-4, schedule: 'constant', seen: [1, 2, 3], nested: { ok: true, none: null } },
  };
}

const bits = (t: Tensor) => [...new Uint32Array((t.data as Float32Array).slice().buffer)];

test('round trip is bit-exact: arrays (with −0 and subnormals), step, generator state and meta', () => {
  const dir = join(root, 'rt', 'state');
  assert.equal(hasTrainState(dir), false);
  const s = sample(17);
  saveTrainState(dir, s);
  assert.equal(hasTrainState(dir), true);
  const back = loadTrainState(dir, { 'layers.0.q_proj.lora_A': [3, 4], 'layers.0.q_proj.lora_B': [4, 3], 'adamw.v.layers.0.q_proj.lora_A': [0] });
  assert.equal(back.step, 17);
  assert.deepEqual(back.meta, s.meta);
  assert.deepEqual(back.rng, s.rng);
  assert.deepEqual(Object.keys(back.tensors).sort(), Object.keys(s.tensors).sort());
  for (const [name, t] of Object.entries(s.tensors)) {
    assert.deepEqual(back.tensors[name]!.shape, t.shape);
    assert.deepEqual(bits(back.tensors[name]!), bits(t), name);
  }
  assert.ok(Object.is(back.tensors['layers.0.q_proj.lora_A']!.data[0], -0));
  const a = Xoshiro128.restore(s.rng), b = Xoshiro128.restore(back.rng);
  assert.deepEqual([a.normal(), a.nextU32()], [b.normal(), b.nextU32()]);
  // a second save replaces the first completely
  saveTrainState(dir, { ...sample(18), tensors: { only: new Tensor('f32', [2], Float32Array.of(1, 2)) } });
  const again = loadTrainState(dir);
  assert.equal(again.step, 18);
  assert.deepEqual(Object.keys(again.tensors), ['only']);
  assert.deepEqual(readdirSync(join(root, 'rt')), ['state']);
});

test('a killed save: a half-written temporary is ignored and swept; a folder left aside between the renames is put back', () => {
  const parent = join(root, 'kill'), dir = join(parent, 'state');
  saveTrainState(dir, sample(5));
  const half = `${dir}.lowbit-tmp-${deadPid()}`;
  mkdirSync(half);
  writeFileSync(join(half, STATE_TENSORS), Buffer.alloc(10)); // torn: no JSON yet
  assert.equal(loadTrainState(dir).step, 5);
  assert.equal(existsSync(half), false, 'the dead writer\'s temporary is swept');

  // killed between replaceDir's renames: no <dir>, the complete old state aside, the new one in a temporary
  const aside = `${dir}.lowbit-old-${deadPid()}`;
  renameSync(dir, aside);
  const tmp = `${dir}.lowbit-tmp-${deadPid()}`;
  cpSync(aside, tmp, { recursive: true });
  assert.equal(loadTrainState(dir).step, 5);
  assert.deepEqual(readdirSync(parent), ['state']);

  renameSync(dir, `${dir}.lowbit-old-${deadPid()}`);
  saveTrainState(dir, sample(6)); // the next save also recovers first, then replaces
  assert.equal(loadTrainState(dir).step, 6);
  assert.deepEqual(readdirSync(parent), ['state']);
});

test('corrupt or mismatched files are FormatErrors naming the file (and the tensor)', () => {
  const base = join(root, 'corrupt', 'good');
  saveTrainState(base, sample(9));
  let n = 0;
  const copy = () => { const d = join(root, 'corrupt', `c${n++}`); cpSync(base, d, { recursive: true }); return d; };
  const fails = (dir: string, file: string, pattern: RegExp, expected?: Record<string, number[]>) =>
    assert.throws(() => loadTrainState(dir, expected), (e: unknown) => e instanceof FormatError && e.file === join(dir, file) && pattern.test(e.message), `${file}: ${pattern}`);

  let d = copy();
  const st = readFileSync(join(d, STATE_TENSORS));
  st[st.length - 3]! ^= 0x40; // a flipped bit in the data
  writeFileSync(join(d, STATE_TENSORS), st);
  fails(d, STATE_TENSORS, /do not match the sha256/);

  d = copy();
  writeFileSync(join(d, STATE_JSON), readFileSync(join(d, STATE_JSON), 'utf8').slice(0, 40));
  fails(d, STATE_JSON, /not valid JSON/);

  d = copy();
  const j = JSON.parse(readFileSync(join(d, STATE_JSON), 'utf8'));
  writeFileSync(join(d, STATE_JSON), JSON.stringify({ ...j, rng: { s: [0, 0, 0, 0], spare: null } }));
  fails(d, STATE_JSON, /"rng": .*all zero/);

  fails(copy(), STATE_TENSORS, /tensor "layers\.0\.q_proj\.lora_B" has shape \[4, 3\], the run expects \[3, 4\]/,
    { 'layers.0.q_proj.lora_A': [3, 4], 'layers.0.q_proj.lora_B': [3, 4], 'adamw.v.layers.0.q_proj.lora_A': [0] });
  fails(copy(), STATE_TENSORS, /tensor "extra" is missing/,
    { 'layers.0.q_proj.lora_A': [3, 4], 'layers.0.q_proj.lora_B': [4, 3], 'adamw.v.layers.0.q_proj.lora_A': [0], extra: [1] });

  // a NaN with a consistent checksum: the finiteness check catches it
  d = copy();
  writeSafetensors(join(d, STATE_TENSORS), [{ name: 'w', tensor: new Tensor('f32', [2], Float32Array.of(1, NaN)) }], { step: '9' });
  const sha = createHash('sha256').update(readFileSync(join(d, STATE_TENSORS))).digest('hex');
  writeFileSync(join(d, STATE_JSON), JSON.stringify({ ...j, tensors: { w: [2] }, safetensors_sha256: sha }));
  fails(d, STATE_TENSORS, /tensor "w" has a non-finite value at element 1/);

  fails(join(root, 'corrupt', 'none'), STATE_JSON, /file not found/);
  assert.throws(() => saveTrainState(join(root, 'corrupt', 'nan'), { ...sample(1), tensors: { w: new Tensor('f32', [1], Float32Array.of(Infinity)) } }), UsageError);
  assert.equal(existsSync(join(root, 'corrupt', 'nan')), false);
});
