// evaluatePpl's GPTQ windows: floor(tokens / seqlen) of them, the tail dropped, --limit scoring the first ones; a
// stream shorter than one window is a UsageError naming the set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { UsageError } from '../../src/errors.js';
import { evaluatePpl } from '../../src/eval/ppl.js';
import { openModel } from '../../src/io/open.js';
import { DATA, TINY656K } from '../helpers/paths.js';

const { kernels, note } = selectKernels('js');
const be = new CpuBackend(kernels, note);
const ck = openModel(TINY656K);

test('GPTQ windows: floor(tokens / seqlen), the tail dropped, the first --limit scored', async () => {
  const r = await evaluatePpl(ck, be, 'tinystories', { seqlen: 512, limit: 1, dataDir: DATA });
  assert.equal(r.tokens, 193_346);
  assert.equal(r.windows, 377); // floor(193,346 / 512); the last 322 tokens are not scored
  assert.equal(r.windowsEvaluated, 1);
  assert.ok(Number.isFinite(r.ppl) && r.ppl > 1, `ppl ${r.ppl}`);
});

test('a stream shorter than one window is a UsageError naming the set', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-ppl-'));
  try {
    const file = join(dir, 'short.txt');
    writeFileSync(file, 'Once upon a time, there was a cat.\n');
    await assert.rejects(evaluatePpl(ck, be, `file:${file}`, { seqlen: 64 }),
      (e: unknown) => e instanceof UsageError && /: seqlen 64 is longer than the data \(\d+ tokens\)$/.test(e.message) && e.message.includes(file));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
