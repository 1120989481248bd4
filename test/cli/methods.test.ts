// AWQ and SmoothQuant end to end through the CLI, as the README runs them, and their bad-input cases:
// one line naming the option, exit code 2, nothing written.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STORIES260K } from '../helpers/paths.js';
import { assertBadInput, assertOk, cleanup, pool, runCliAsync, scratch } from './helpers.js';

after(cleanup);

const BIN260K = join(STORIES260K, 'stories260K.bin');

test('quantize --method awq / smoothquant, then eval: the checkpoint says what it is and eval applies it', async () => {
  const dir = scratch();
  const [awq, sq] = await Promise.all([
    runCliAsync(['quantize', '--method', 'awq', '--wbits', '4', '--group', '32', '--calib', 'wikitext2-valid', '--nsamples', '8', '--seqlen', '256', '--seed', '0', '--out', 'awq', '--json'], { cwd: dir }),
    runCliAsync(['quantize', '--model', BIN260K, '--method', 'smoothquant', '--wbits', '8', '--abits', '8', '--alpha', '0.5', '--nsamples', '8', '--seqlen', '256', '--out', 'sq', '--json'], { cwd: dir }),
  ]);
  assertOk(awq);
  assertOk(sq);
  const ra = JSON.parse(awq.stdout) as { method: string; settings: { format: string }; blocks: { awq: unknown }[] };
  assert.equal(ra.method, 'awq');
  assert.equal(ra.settings.format, 'awq');
  assert.equal(ra.blocks.length, 2);
  const rs = JSON.parse(sq.stdout) as { settings: { groupSize: number; sym: boolean; alpha: number; activation: unknown } };
  assert.deepEqual([rs.settings.groupSize, rs.settings.sym, rs.settings.alpha], [-1, true, 0.5]);
  const [ea, es] = await Promise.all([
    runCliAsync(['eval', '--model', 'awq', '--ppl', 'tinystories', '--limit', '1', '--json'], { cwd: dir }),
    runCliAsync(['eval', '--model', 'sq', '--ppl', 'tinystories', '--limit', '1'], { cwd: dir }),
  ]);
  assertOk(ea);
  assert.equal((JSON.parse(ea.stdout) as { format: string }).format, 'lowbit-awq');
  assertOk(es);
  assert.match(es.stdout, /activations 8-bit per-token absmax/);
  assert.equal(JSON.parse(readFileSync(join(dir, 'sq', 'quantize_config.json'), 'utf8')).activation.bits, 8);
});

test('bad method settings: one line naming the option, exit 2, nothing written', async () => {
  const dir = scratch();
  const q = (...a: string[]) => ['quantize', '--model', BIN260K, '--nsamples', '2', '--out', 'x', ...a];
  const cases: [string[], string[]][] = [
    [q('--method', 'smoothquant', '--abits', '1'), ['--abits', '2..16']],
    [q('--method', 'smoothquant', '--abits', '17'), ['--abits', '2..16']],
    [q('--method', 'smoothquant', '--alpha', '1.5'), ['--alpha', '0..1']],
    [q('--method', 'smoothquant', '--alpha', 'much'), ['--alpha']],
    [q('--method', 'smoothquant', '--group', '32'), ['--group -1']],
    [q('--method', 'awq', '--calib', 'none'), ['awq', 'calibration']],
    [q('--method', 'smoothquant', '--calib', 'none'), ['smoothquant', 'calibration']],
    [q('--method', 'awq', '--sym'), ['awq', '--sym']],
    [q('--method', 'gptq', '--alpha', '0.5'), ['--alpha', 'gptq']],
    [q('--method', 'rtn', '--awq-grid', '5'), ['--awq-grid', 'rtn']],
    [q('--method', 'awq', '--awq-grid', '0'), ['--awq-grid']],
  ];
  const results = await pool(cases, 4, ([args]) => runCliAsync(args, { cwd: dir }));
  cases.forEach(([, names], i) => assertBadInput(results[i]!, names));
  assert.equal(existsSync(join(dir, 'x')), false);
});
