// collectGarbage (CpuBackend.reclaim) uses the gc that --expose-gc gives the process and never sets V8 flags itself;
// the processes lowbit starts carry the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collectGarbage } from '../../src/backend/cpu/gc.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';

test('collectGarbage calls globalThis.gc when the process has one, and does nothing without it', () => {
  const g = globalThis as { gc?: () => void };
  const saved = g.gc;
  try {
    let calls = 0;
    g.gc = () => { calls++; };
    collectGarbage();
    assert.equal(calls, 1);
    g.gc = undefined; // (under --expose-gc the property cannot be deleted, only overwritten)
    collectGarbage();
    assert.equal(g.gc, undefined, 'no gc is made up');
  } finally {
    g.gc = saved;
  }
});

test('the CLI starts node with --expose-gc (bin/lowbit.js shebang), and so do the test runner and the benchmarks', () => {
  assert.equal(readFileSync(join(PACKAGE_ROOT, 'bin', 'lowbit.js'), 'utf8').split('\n')[0], '#!/usr/bin/env -S node --expose-gc');
  assert.match(readFileSync(join(PACKAGE_ROOT, 'scripts', 'test.mjs'), 'utf8'), /spawnSync\(process\.execPath, \['--expose-gc', '--test'/);
  assert.match(readFileSync(join(PACKAGE_ROOT, 'bench', 'run.ts'), 'utf8'), /spawnSync\(process\.execPath, \[[^\]]*'--expose-gc'/);
});
