// BiLLM through the CLI: quantize, info and eval read the `billm` kind; bad settings are one line naming the
// reason (and the layer when a layer is at fault), exit code 2, nothing written.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TINY656K } from '../helpers/paths.js';
import { assertBadInput, assertOk, cleanup, pool, runCliAsync, scratch } from './helpers.js';

after(cleanup);

test('quantize --method billm --wbits 1, then info and eval: the checkpoint is a billm kind at 1.1 nominal bits', async () => {
  const dir = scratch();
  const q = await runCliAsync(['quantize', '--model', TINY656K, '--method', 'billm', '--wbits', '1', '--nsamples', '4', '--seqlen', '256', '--out', 'b'], { cwd: dir });
  assertOk(q);
  assert.match(q.stdout, /note: model\.layers\.0\.self_attn\.q_proj: BiLLM: 1\.\d{4} bits per weight as the paper counts them/);
  const [info, ev] = await Promise.all([
    runCliAsync(['info', '--model', 'b'], { cwd: dir }),
    runCliAsync(['eval', '--model', 'b', '--ppl', 'tinystories', '--limit', '1', '--json'], { cwd: dir }),
  ]);
  assertOk(info);
  assert.match(info.stdout, /lowbit-billm/);
  assert.match(info.stdout, /BILLM-INT1\.1 393,216/);
  assertOk(ev);
  const r = JSON.parse(ev.stdout) as { format: string };
  assert.equal(r.format, 'lowbit-billm');
});

test('bad BiLLM settings: one line naming the reason or the layer, exit 2, nothing written', async () => {
  const dir = scratch();
  const q = (...a: string[]) => ['quantize', '--model', TINY656K, '--method', 'billm', '--nsamples', '2', '--seqlen', '128', '--out', 'x', ...a];
  const cases: [string[], string[]][] = [
    [q('--wbits', '4'), ['BiLLM binarizes: --wbits 1 (got 4)']],
    [q('--wbits', '1', '--group', '100'), ['group size 100 does not divide the 128 input columns of model.layers.0.self_attn.q_proj']],
    [q('--wbits', '1', '--group', '-1'), ['--group is the block size']],
    [q('--wbits', '1', '--group', '1'), ['at least 2']],
    [q('--wbits', '1', '--sym'), ['drop --sym']],
    [q('--wbits', '1', '--percdamp', '-1'), ['--percdamp']],
    [q('--wbits', '1', '--act-order'), ['--act-order is not an option of billm']],
    [q('--wbits', '1', '--calib', 'none'), ['billm', 'calibration']],
  ];
  const results = await pool(cases, 4, ([args]) => runCliAsync(args, { cwd: dir }));
  cases.forEach(([, names], i) => assertBadInput(results[i]!, names));
  assert.equal(existsSync(join(dir, 'x')), false);
});
