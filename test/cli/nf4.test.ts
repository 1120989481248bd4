// NF4 and ICQ through the CLI on the bundled model, as the README runs it, and its bad-input cases:
// one line naming the option, exit code 2, nothing written.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertBadInput, assertOk, cleanup, pool, runCliAsync, scratch } from './helpers.js';

after(cleanup);

test('quantize --method nf4|icq [--double-quant], then eval: the checkpoint names its kind, eval reads it', async () => {
  const dir = scratch();
  for (const [method, dq, kind] of [['nf4', false, 'nf4'], ['nf4', true, 'nf4dq'], ['icq', false, 'icq'], ['icq', true, 'icqdq']] as const) {
    const q = await runCliAsync(['quantize', '--method', method, ...(dq ? ['--double-quant'] : []), '--calib', 'none', '--out', kind, '--json'], { cwd: dir });
    assertOk(q);
    const r = JSON.parse(q.stdout) as { method: string; settings: { format: string; nominalBits: number; groupSize: number; doubleQuant: boolean; bits: number } };
    assert.equal(r.method, method);
    assert.deepEqual([r.settings.format, r.settings.nominalBits, r.settings.groupSize, r.settings.doubleQuant, r.settings.bits], [kind, 4, 64, dq, 4]);
    const cfg = JSON.parse(readFileSync(join(dir, kind, 'quantize_config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual([cfg.quant_method, cfg.kind, cfg.bits, cfg.group_size], ['lowbit', kind, 4, 64]);
    const e = await runCliAsync(['eval', '--model', kind, '--ppl', 'tinystories', '--limit', '4', '--json'], { cwd: dir });
    assertOk(e);
    const ev = JSON.parse(e.stdout) as { format: string; results: { dataset: string; ppl: number; windowsEvaluated: number }[] };
    assert.equal(ev.format, `lowbit-${kind}`);
    const [ts] = ev.results;
    assert.deepEqual([ts!.dataset, ts!.windowsEvaluated], ['tinystories', 4]);
    // the float model scores about 36 on these windows; NF4 costs a little, a misread layer far more
    assert.ok(ts!.ppl > 30 && ts!.ppl < 50, `ppl ${ts!.ppl}`);
  }
});

test('bad NF4 and ICQ settings: one line naming the option, exit 2, nothing written', async () => {
  const dir = scratch();
  const q = (...a: string[]) => ['quantize', '--method', 'nf4', '--calib', 'none', '--out', 'x', ...a];
  const cases: [string[], string[]][] = [
    [q('--wbits', '3'), ['nf4', '--wbits must be 4']],
    [q('--group', '128'), ['nf4', '--group must be 64']],
    [q('--group', '-1'), ['nf4', '--group must be 64']],
    [q('--scale-dtype', 'f16'), ['nf4', 'float32']],
    [['quantize', '--method', 'gptq', '--double-quant', '--out', 'x'], ['--double-quant', 'gptq']],
    [['quantize', '--method', 'icq', '--wbits', '2', '--out', 'x'], ['icq', '--wbits must be 4']],
    [['quantize', '--method', 'icq', '--tau-n', '0', '--out', 'x'], ['--tau-n']],
    [['quantize', '--method', 'nf4', '--tau-lambda', '0.2', '--out', 'x'], ['--tau-lambda', 'nf4']],
  ];
  const results = await pool(cases, 4, ([args]) => runCliAsync(args, { cwd: dir }));
  cases.forEach(([, names], i) => assertBadInput(results[i]!, names));
  assert.equal(existsSync(join(dir, 'x')), false);
});
