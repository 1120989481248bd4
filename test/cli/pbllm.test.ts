// PB-LLM through the CLI on the bundled model, as the README runs it, and its bad-input cases:
// one line naming the option or the layer, exit code 2, nothing written.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertBadInput, assertOk, cleanup, pool, runCliAsync, scratch } from './helpers.js';

after(cleanup);

test('quantize --method pbllm, then eval: the checkpoint names its kind and nominal bits, eval reads it', async () => {
  const dir = scratch();
  const q = await runCliAsync(['quantize', '--method', 'pbllm', '--wbits', '1', '--low-frac', '0.9', '--group', '128', '--nsamples', '8', '--seed', '0', '--out', 'pb', '--json'], { cwd: dir });
  assertOk(q);
  const r = JSON.parse(q.stdout) as { method: string; settings: { format: string; nominalBits: number; lowFrac: number; highBit: number; trueSequential: boolean } };
  assert.equal(r.method, 'pbllm');
  assert.deepEqual([r.settings.format, r.settings.nominalBits, r.settings.lowFrac, r.settings.highBit, r.settings.trueSequential], ['pbllm', 1.7, 0.9, 8, false]);
  const cfg = JSON.parse(readFileSync(join(dir, 'pb', 'quantize_config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual([cfg.quant_method, cfg.kind, cfg.bits, cfg.group_size], ['lowbit', 'pbllm', 1.7, 128]);
  const e = await runCliAsync(['eval', '--model', 'pb', '--ppl', 'tinystories', '--limit', '1', '--json'], { cwd: dir });
  assertOk(e);
  assert.equal((JSON.parse(e.stdout) as { format: string }).format, 'lowbit-pbllm');
});

test('bad PB-LLM settings: one line naming the option or the layer, exit 2, nothing written', async () => {
  const dir = scratch();
  const q = (...a: string[]) => ['quantize', '--method', 'pbllm', '--nsamples', '2', '--out', 'x', ...a];
  const cases: [string[], string[]][] = [
    [q('--wbits', '2'), ['pbllm', '--wbits must be 1']],
    [q('--wbits', '1', '--low-frac', '1.5'), ['--low-frac', '0..1']],
    [q('--wbits', '1', '--high-bit', '9'), ['--high-bit', '1..8']],
    [q('--wbits', '1', '--group', '100'), ['group size 100', 'model.layers.0.self_attn.q_proj']],
    [q('--wbits', '1', '--sym'), ['pbllm', '--sym']],
    [q('--wbits', '1', '--calib', 'none'), ['pbllm', 'calibration']],
    [['quantize', '--method', 'gptq', '--low-frac', '0.9', '--out', 'x'], ['--low-frac', 'gptq']],
  ];
  const results = await pool(cases, 4, ([args]) => runCliAsync(args, { cwd: dir }));
  cases.forEach(([, names], i) => assertBadInput(results[i]!, names));
  assert.equal(existsSync(join(dir, 'x')), false);
});
