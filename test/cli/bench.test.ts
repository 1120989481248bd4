// `lowbit bench` through the CLI: impossible settings are refused (exit 2, one `lowbit:` line naming the option),
// and a real run with tiny settings prints and writes the JSON record: its shape, counts and exact sizes, never
// its timings' values (those belong to bench/).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TINY656K } from '../helpers/paths.js';
import { assertBadInput, assertOk, cleanup, pool, runCliAsync, scratch } from './helpers.js';

after(cleanup);

const Q8_0 = join(TINY656K, 'gguf', 'TinyStories-656K-Q8_0-GGUF', 'tinystories-656k-q8_0.gguf');

test('bench: impossible settings are one line and exit 2', async () => {
  const cases: { args: string[]; names: string[]; pattern?: RegExp }[] = [
    { args: ['--reps', '0'], names: ['--reps'], pattern: /≥ 1 \(got '0'\)/ },
    { args: ['--reps', 'many'], names: ['--reps'] },
    { args: ['--warmup', '-1'], names: ['--warmup'], pattern: /≥ 0/ },
    { args: ['--prompt-tokens', '0'], names: ['--prompt-tokens'] },
    { args: ['--decode-tokens', '2.5'], names: ['--decode-tokens'] },
    { args: ['--prompt-tokens', '500', '--decode-tokens', '100'], names: ['--prompt-tokens 500', '--decode-tokens 100', TINY656K], pattern: /exceeds the context of .* \(512 tokens\)/ },
    // the default decode length (128) after a prompt that leaves less room than that
    { args: ['--prompt-tokens', '400'], names: ['--prompt-tokens 400', '--decode-tokens 128'], pattern: /528 exceeds the context/ },
    { args: ['--model', '/nonexistent/model'], names: ['/nonexistent/model'] },
    { args: ['--threads', '0'], names: ['--threads'] },
  ];
  const results = await pool(cases, 4, (c) => runCliAsync(['bench', ...c.args]));
  cases.forEach((c, i) => assertBadInput(results[i]!, c.names, c.pattern));
});

interface Spread { median: number; min: number; max: number; runs: number[] }

function checkSpread(s: Spread, reps: number, what: string): void {
  assert.equal(s.runs.length, reps, what);
  for (const v of s.runs) assert.ok(Number.isFinite(v) && v > 0, `${what}: ${v}`);
  assert.ok(s.min <= s.median && s.median <= s.max, `${what}: ${JSON.stringify(s)}`);
}

test('bench --json --out: the record of a real run on the bundled model, and on its Q8_0 GGUF', async () => {
  const tiny = ['--prompt-tokens', '8', '--decode-tokens', '4', '--reps', '3', '--warmup', '1', '--threads', '1'];
  const cwd = scratch();
  const [hf, gguf] = await pool([['--out', 'b.json'], ['--model', Q8_0]], 2, (extra) => runCliAsync(['bench', '--json', ...tiny, ...extra], { cwd }));
  assertOk(hf!);
  assertOk(gguf!);
  const r = JSON.parse(hf!.stdout);
  assert.deepEqual(JSON.parse(readFileSync(join(cwd, 'b.json'), 'utf8')), r, '--out holds what --json prints');
  assert.deepEqual(readdirSync(cwd), ['b.json'], 'nothing else written');
  assert.equal(r.tool, 'lowbit');
  assert.equal(r.model, TINY656K);
  assert.equal(r.format, 'hf');
  assert.equal(r.threads, 1);
  assert.match(r.backend, /^cpu: .*1 thread/);
  assert.equal(r.node, process.version);
  assert.deepEqual([r.speed.promptTokens, r.speed.decodeTokens, r.speed.warmup, r.speed.reps], [8, 4, 1, 3]);
  for (const k of ['prefill', 'decode']) {
    checkSpread(r.speed[k].tokensPerSecond, 3, `${k} tokens/s`);
    checkSpread(r.speed[k].seconds, 3, `${k} seconds`);
  }
  assert.ok(Number.isFinite(r.loadSeconds) && r.loadSeconds >= 0);
  assert.ok(r.memory.peakRssBytes >= r.memory.rssBeforeLoadBytes && r.memory.rssBeforeLoadBytes > 0);
  assert.equal(r.memory.residentWeightBytes, 1_312_000);
  assert.equal(r.storage.weightBytes, 1_314_128);
  assert.deepEqual(r.bitsPerWeight, {
    linearWeights: 393_216, parameters: 656_000, linearStoredBytes: 786_432, storedBytes: 1_312_000,
    storedLinear: 16, storedModel: 16, nominal: 16, nominalWithGroups: 16, label: 'BF16',
  });
  const g = JSON.parse(gguf!.stdout);
  assert.equal(g.format, 'gguf');
  assert.equal(g.storage.weightBytes, 749_216);
  assert.equal(g.bitsPerWeight.storedLinear, 8.5);
  assert.equal(g.bitsPerWeight.nominal, 8);
  checkSpread(g.speed.decode.tokensPerSecond, 3, 'gguf decode tokens/s');
});

test('bench: the human table, thousands separators, and no file unless --out', async () => {
  const cwd = scratch();
  const r = await runCliAsync(['bench', '--prompt-tokens', '8', '--decode-tokens', '4', '--reps', '1', '--warmup', '0', '--threads', '1'], { cwd });
  assertOk(r);
  assert.match(r.stdout, /\| tokens\/s \| median \| min \| max \|/);
  assert.match(r.stdout, /\| prefill \| [\d,.]+ \| [\d,.]+ \| [\d,.]+ \|/);
  assert.match(r.stdout, /\| decode \| [\d,.]+ \| [\d,.]+ \| [\d,.]+ \|/);
  assert.match(r.stdout, /size on disk +1,314,128 bytes \(1\.25 MiB\) in model\.safetensors/);
  assert.match(r.stdout, /bits\/weight +stored: 16 in the linear layers \(393,216 weights\), 16 over the whole model \(656,000 parameters\); nominal: 16 for BF16, 16 with group parameters/);
  assert.match(r.stdout, /memory +peak RSS [\d,.]+ MiB .*weights resident 1,312,000 bytes/);
  assert.match(r.stdout, /prompt: 8 tokens .*then 4 tokens decoded .*0 warm-up runs, 1 repetition\b/);
  assert.deepEqual(readdirSync(cwd), []);
});

test('study --no-speed: the cost columns without the timing', async () => {
  const cwd = scratch();
  const grid = join(cwd, 'grid.json');
  writeFileSync(grid, JSON.stringify({ cells: [{ method: 'fp16' }] }));
  const r = await runCliAsync(['study', '--no-speed', '--grid', grid, '--ppl', 'tinystories', '--limit', '1', '--out', join(cwd, 's')], { cwd });
  assertOk(r);
  assert.match(r.stdout, /\| Method \| #W \| #G \| TinyStories \| Size \(MiB\) \| Bits\/W \| Decode tok\/s \|/);
  assert.match(r.stdout, /\| FP16 \| 16 \| - \| [\d.]+ \| 1\.25 \| 16\.00 \| – \|/);
});
