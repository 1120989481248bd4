// The bench's arithmetic and bookkeeping: medians, defaults, refusals, the seeded prompt, and the shape of a
// real (tiny) run on the bundled model. Nothing here asserts a timing: speed figures belong to bench/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openModel } from '../../src/io/open.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { LlamaModel } from '../../src/model/llama.js';
import { checkSpeedSettings, defaultSpeedSettings, formatRate, measureSpeed, promptIds, spread, type Spread } from '../../src/eval/speed.js';
import { benchModel } from '../../src/eval/bench.js';
import { UsageError } from '../../src/errors.js';
import { TINY656K } from '../helpers/paths.js';

const { kernels, note } = selectKernels('auto', 2);
const be = new CpuBackend(kernels, note);

test('spread: median of an odd and an even count, range, runs kept in order', () => {
  assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3, runs: [3, 1, 2] });
  assert.deepEqual(spread([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4, runs: [4, 1, 3, 2] });
  assert.deepEqual(spread([7]), { median: 7, min: 7, max: 7, runs: [7] });
  assert.throws(() => spread([]), RangeError);
});

test('defaults: a 128-token prompt and 128 new tokens, within half and a quarter of the context', () => {
  assert.deepEqual(defaultSpeedSettings(512), { promptTokens: 128, decodeTokens: 128, warmup: 1, reps: 5 });
  assert.deepEqual(defaultSpeedSettings(8192), { promptTokens: 128, decodeTokens: 128, warmup: 1, reps: 5 });
  assert.deepEqual(defaultSpeedSettings(64), { promptTokens: 32, decodeTokens: 16, warmup: 1, reps: 5 });
  const d = defaultSpeedSettings(3);
  assert.ok(d.promptTokens + d.decodeTokens <= 3 && d.promptTokens >= 1 && d.decodeTokens >= 1);
});

test('impossible settings are refused with the setting named', () => {
  const ok = { promptTokens: 8, decodeTokens: 4, warmup: 0, reps: 1 };
  checkSpeedSettings(ok, 12, 'm');
  assert.throws(() => checkSpeedSettings(ok, 11, 'model.gguf'), (e: unknown) =>
    e instanceof UsageError && /--prompt-tokens 8 \+ --decode-tokens 4 = 12 exceeds the context of model\.gguf \(11 tokens\)/.test(e.message));
  assert.throws(() => checkSpeedSettings({ ...ok, reps: 0 }, 512, 'm'), /--reps must be an integer ≥ 1 \(got 0\)/);
  assert.throws(() => checkSpeedSettings({ ...ok, warmup: -1 }, 512, 'm'), /--warmup must be an integer ≥ 0/);
  assert.throws(() => checkSpeedSettings({ ...ok, decodeTokens: 0 }, 512, 'm'), /--decode-tokens must be an integer ≥ 1/);
  assert.throws(() => checkSpeedSettings({ ...ok, promptTokens: 1.5 }, 512, 'm'), /--prompt-tokens must be an integer ≥ 1/);
});

test('the prompt is CPython\'s random.seed(0); [randrange(vocab) for _ in range(n)]', () => {
  // python3 -c "import random; random.seed(0); print([random.randrange(2048) for _ in range(8)])"
  assert.deepEqual([...promptIds(8, 2048)], [1577, 1722, 165, 1060, 1990, 1658, 1242, 1952]);
  assert.deepEqual([...promptIds(8, 512)], [394, 430, 41, 265, 497, 414, 310, 488]);
});

function assertSpread(s: Spread, reps: number, what: string): void {
  assert.equal(s.runs.length, reps, `${what}: one value per counted run`);
  for (const v of s.runs) assert.ok(Number.isFinite(v) && v > 0, `${what}: ${v}`);
  assert.ok(s.min <= s.median && s.median <= s.max, `${what}: ${JSON.stringify(s)}`);
  assert.equal(s.min, Math.min(...s.runs));
  assert.equal(s.max, Math.max(...s.runs));
}

test('measureSpeed: warm-up runs are not counted, tokens/s agree with seconds', async () => {
  const model = LlamaModel.load(openModel(TINY656K), be);
  const calls: number[] = [];
  try {
    const s = await measureSpeed(model, { promptTokens: 8, decodeTokens: 4, warmup: 2, reps: 3 }, (done, total) => { calls.push(done); assert.equal(total, 5); });
    assert.deepEqual(calls, [1, 2, 3, 4, 5]);
    for (const [k, n] of [['prefill', 8], ['decode', 4]] as const) {
      assertSpread(s[k].tokensPerSecond, 3, `${k} tokens/s`);
      assertSpread(s[k].seconds, 3, `${k} seconds`);
      s[k].seconds.runs.forEach((t, i) => assert.equal(s[k].tokensPerSecond.runs[i], n / t));
    }
    await assert.rejects(measureSpeed(model, { promptTokens: 500, decodeTokens: 13, warmup: 0, reps: 1 }), /exceeds the context/);
  } finally {
    model.free();
  }
});

test('benchModel: every result records what changes the figures', async () => {
  const r = await benchModel(openModel(TINY656K), be, { promptTokens: 6, decodeTokens: 3, warmup: 1, reps: 2, threads: 2 });
  assert.equal(r.model, TINY656K);
  assert.equal(r.format, 'hf');
  assert.equal(r.backend, be.description);
  assert.equal(r.threads, 2);
  assert.equal(r.node, process.version);
  assert.deepEqual([r.speed.promptTokens, r.speed.decodeTokens, r.speed.warmup, r.speed.reps], [6, 3, 1, 2]);
  assert.match(r.speed.prompt, /random\.seed\(0\)/);
  assertSpread(r.speed.decode.tokensPerSecond, 2, 'decode');
  assert.equal(r.memory.residentWeightBytes, 1_312_000);
  assert.ok(r.memory.peakRssBytes >= r.memory.rssBeforeLoadBytes && r.memory.rssBeforeLoadBytes > 0);
  assert.equal(r.storage.weightBytes, 1_314_128);
  assert.equal(r.bitsPerWeight.storedLinear, 16);
});

test('formatRate: thousands separated, whole from 100 up, three significant digits below', () => {
  assert.equal(formatRate(25307.2), '25,307');
  assert.equal(formatRate(100.4), '100');
  assert.equal(formatRate(62.74), '62.7');
  assert.equal(formatRate(2.716), '2.72');
  assert.equal(formatRate(0.04321), '0.0432');
});
