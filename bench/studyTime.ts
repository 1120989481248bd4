// Wall time of the README's study (the quick grid on the bundled model), from scratch, in a temp folder.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../src/io/open.js';
import { DEFAULT_MODEL } from '../src/paths.js';
import { createBackend } from '../src/cli/backendOptions.js';
import { runStudy } from '../src/study/runner.js';
import { parseGrid } from '../src/study/grid.js';

const grid = process.argv[2] ?? 'quick';
const out = mkdtempSync(join(tmpdir(), 'lowbit-bench-study-'));
const be = await createBackend({});
const t0 = performance.now();
const cells: Record<string, number> = {};
await runStudy(openModel(DEFAULT_MODEL), be, parseGrid(grid), {
  out, ppl: ['wikitext2', 'ptb', 'c4', 'tinystories'], seqlen: 512, calib: 'c4', nsamples: 128, seed: 0,
  onEvent: (e) => { if (e.kind === 'cell-done') cells[e.key] = +e.seconds.toFixed(1); },
});
console.log(JSON.stringify({ bench: 'study', grid, model: DEFAULT_MODEL, backend: be.description, seconds: +((performance.now() - t0) / 1000).toFixed(1), cellSeconds: cells }));
rmSync(out, { recursive: true, force: true });
