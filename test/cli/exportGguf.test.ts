/** `lowbit export --format gguf` from the command line: exit codes, one-line refusals, the file written atomically. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readGgufHeader } from '../../src/io/gguf/parse.js';
import { TINY656K } from '../helpers/paths.js';
import { removeScratch } from '../io/mutate.js';
import { quantizedTiny } from '../io/quantizedFixture.js';
import { assertBadInput, assertOk, cleanup, runCli, scratch } from './helpers.js';

after(() => { cleanup(); removeScratch(); });

test('export --format gguf: writes the file; a layer the type cannot hold, a bad --type, an existing --out: exit 2, one line', async () => {
  const dir = scratch('gguf');
  const out = join(dir, 'tiny.gguf');
  const ok = runCli(['export', '--model', TINY656K, '--format', 'gguf', '--type', 'f16', '--out', out]);
  assertOk(ok);
  assert.match(ok.stdout, /20 tensors \(F16, F32\): 20 exact/);
  assert.equal(readGgufHeader(out).metadata.get('general.file_type'), 1);
  assert.deepEqual(readdirSync(dir), ['tiny.gguf'], 'no temporaries left beside it');
  assertBadInput(runCli(['export', '--model', TINY656K, '--format', 'gguf', '--out', out]), [out], /already exists \(pass --force/);
  assertBadInput(runCli(['export', '--model', TINY656K, '--format', 'gguf', '--type', 'q5_k', '--out', join(dir, 'x.gguf')]), ['--type', 'q5_k']);
  // the RTN W4 g32 fixture has float32 scales: Q4_1 stores d in fp16, so it is refused without --requantize
  const q = await quantizedTiny();
  const bad = join(dir, 'q.gguf');
  assertBadInput(runCli(['export', '--model', q, '--format', 'gguf', '--out', bad]), ['blk.0.attn_q.weight', 'model.layers.0.self_attn.q_proj.weight', q], /is not an fp16 value.*--requantize/);
  assert.equal(existsSync(bad), false, 'nothing written for a refused export');
  const r = runCli(['export', '--model', q, '--format', 'gguf', '--requantize', '--json', '--out', bad]);
  assertOk(r);
  const report = JSON.parse(r.stdout) as { requantized: string[]; exact: boolean };
  assert.equal(report.exact, false);
  assert.equal(report.requantized.length, 14);
  assert.deepEqual(readGgufHeader(bad).metadata.get('lowbit.requantized'), report.requantized);
});
