// Node CLI conventions and the output-folder contract, end to end through the CLI as a user runs it:
// --version, `--ppl list` / `--tasks list`, eval writes nothing unasked, --seqlen past the context is
// refused, quantize never deletes what lowbit did not write, killed runs' temporaries are swept, and
// file-system failures (a file in the path, /proc) are one line with exit code 2.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT, STORIES260K, TINY656K } from '../helpers/paths.js';
import { assertBadInput, assertOk, cleanup, runCli, runCliAsync, scratch, writeTemp } from './helpers.js';

after(cleanup);

const BIN260K = join(STORIES260K, 'stories260K.bin');
/** A fast quantize: the 260K model, RTN, no calibration. */
const quick = (out: string, ...more: string[]) => ['quantize', '--model', BIN260K, '--method', 'rtn', '--wbits', '4', '--group', '-1', '--calib', 'none', '--out', out, ...more];
/** A pid that is not running (pid_max is at most 2^22 on Linux). */
const DEAD_PID = 4_194_305;

test('--version prints the package version', () => {
  const r = runCli(['--version']);
  assertOk(r);
  assert.equal(r.stdout.trim(), JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version);
});

test('help texts and data errors point to the data README that exists, never to a shared folder', () => {
  assert.ok(existsSync(join(PACKAGE_ROOT, 'assets', 'data', 'README.md')));
  for (const cmd of ['eval', 'quantize', 'study']) {
    const r = runCli([cmd, '--help']);
    assertOk(r);
    assert.match(r.stdout, /assets\/data\/README\.md/, cmd);
    assert.doesNotMatch(r.stdout, /shared\/data|\.\.\/shared/, cmd);
  }
  const empty = scratch();
  assertBadInput(runCli(['eval', '--ppl', 'wikitext2', '--data-dir', empty]), [join(empty, 'wikitext2'), 'assets/data/README.md']);
  assertBadInput(runCli(['quantize', '--calib', 'wikitext2', '--out', join(empty, 'q')]), ['wiki.train.raw', 'assets/data/README.md']);
});

test('--ppl list and --tasks list print what exists, without a model', () => {
  const p = runCli(['eval', '--ppl', 'list']);
  assertOk(p);
  for (const name of ['wikitext2', 'ptb', 'ptb-new', 'c4', 'c4-new', 'tinystories', 'file:PATH']) assert.match(p.stdout, new RegExp(`^  ${name} `, 'm'));
  assert.match(p.stdout, /wiki\.test\.raw/);
  assert.doesNotMatch(p.stdout, /missing:/, 'every bundled set is present');
  const t = runCli(['eval', '--tasks', 'list']);
  assertOk(t);
  for (const name of ['piqa', 'arc_easy', 'arc_challenge', 'hellaswag', 'winogrande', 'mmlu']) assert.match(t.stdout, new RegExp(`^  ${name} `, 'm'));
  assert.match(t.stdout, /14,042 examples, 5-shot/);
});

test('--seqlen beyond the model context is refused unless insisted on; counts print with separators', async () => {
  const args = ['eval', '--ppl', 'tinystories', '--limit', '1'];
  const [bad, longOk, normal] = await Promise.all([
    runCliAsync([...args, '--seqlen', '1024']),
    runCliAsync([...args, '--seqlen', '1024', '--allow-long-context', '--json']),
    runCliAsync(args),
  ]);
  assertBadInput(bad, ['--seqlen 1,024', 'context of 512', TINY656K, '--allow-long-context']);
  assertOk(longOk);
  assert.equal((JSON.parse(longOk.stdout) as { seqlen: number }).seqlen, 1024);
  assertOk(normal);
  assert.match(normal.stdout, /tinystories: 193,346 tokens, 1\/377 windows of 512/);
  const gen = runCli(['generate', '--steps', '600']);
  assertBadInput(gen, ['--steps 600', 'context of 512', '--allow-long-context']);
});

test('quantize never deletes what lowbit did not write', () => {
  const cwd = scratch();
  const v = join(cwd, 'v');
  mkdirSync(join(v, 'sub'), { recursive: true });
  writeFileSync(join(v, 'notes.txt'), 'x');
  assertBadInput(runCli(quick('v'), { cwd }), [v, 'not empty', 'no lowbit checkpoint']);
  assert.deepEqual(readdirSync(v).sort(), ['notes.txt', 'sub']);
  assertBadInput(runCli(quick('.'), { cwd }), [cwd, 'no lowbit checkpoint']);
  assert.deepEqual(readdirSync(cwd), ['v']);
  // a checkpoint there: replaced only with --force, atomically
  assertOk(runCli(quick('q'), { cwd }));
  const first = readFileSync(join(cwd, 'q', 'lowbit_quant.json'), 'utf8');
  assertBadInput(runCli(quick('q'), { cwd }), [join(cwd, 'q'), '--force']);
  assert.equal(readFileSync(join(cwd, 'q', 'lowbit_quant.json'), 'utf8'), first, 'untouched without --force');
  assertOk(runCli(quick('q', '--force'), { cwd }));
  assert.notEqual(readFileSync(join(cwd, 'q', 'lowbit_quant.json'), 'utf8'), first, 'replaced with --force');
  // a file the user put into a checkpoint folder is not lowbit's to delete, even with --force
  writeFileSync(join(cwd, 'q', 'my-notes.md'), 'mine');
  assertBadInput(runCli(quick('q', '--force'), { cwd }), [join(cwd, 'q'), 'my-notes.md', 'did not write']);
  assert.equal(readFileSync(join(cwd, 'q', 'my-notes.md'), 'utf8'), 'mine');
  // an empty folder is fine
  mkdirSync(join(cwd, 'empty'));
  assertOk(runCli(quick('empty'), { cwd }));
  assert.ok(existsSync(join(cwd, 'empty', 'model.safetensors')));
});

test('a killed run\'s temporaries are swept by the next run; a live run\'s are not', () => {
  const cwd = scratch();
  mkdirSync(join(cwd, `q.lowbit-tmp-${DEAD_PID}`));
  writeFileSync(join(cwd, `q.lowbit-tmp-${DEAD_PID}`, 'model.safetensors'), 'half');
  mkdirSync(join(cwd, `q.lowbit-tmp-${process.pid}`)); // this test's own process: alive
  writeFileSync(join(cwd, `other.lowbit-tmp-${DEAD_PID}`), 'another output: not swept by this one');
  assertOk(runCli(quick('q'), { cwd }));
  assert.deepEqual(readdirSync(cwd).sort(), [`other.lowbit-tmp-${DEAD_PID}`, 'q', `q.lowbit-tmp-${process.pid}`]);
});

test('file-system failures are one line and exit 2, before any work', () => {
  const file = writeTemp('file.txt', 'x');
  assertBadInput(runCli(quick(join(file, 'q'))), [join(file, 'q'), 'is a file, not a folder']);
  assertBadInput(runCli(quick(file)), [file, 'is a file, not a folder']);
  assertBadInput(runCli(['eval', '--ppl', 'tinystories', '--limit', '1', '--out', join(file, 'r.json')]), [join(file, 'r.json'), 'is a file, not a folder']);
  if (existsSync('/proc/self')) { // Node's recursive mkdir never returns under /proc
    assertBadInput(runCli(quick('/proc/lowbit-q'), { timeoutMs: 30_000 }), ['/proc/lowbit-q']);
  }
});

test('study: a null, null-cell or empty grid file is refused; killed runs\' temporaries are swept', async () => {
  for (const [name, text] of [['null.json', 'null'], ['nullcell.json', '{"cells":[null]}'], ['empty.json', '{"cells":[]}'], ['bad.json', '{"cells":[{"method":"rtn","wbits":4,"scaleDtype":"bf16"}]}']] as const) {
    const grid = writeTemp(name, text);
    assertBadInput(runCli(['study', '--grid', grid, '--out', scratch()]), [grid]);
  }
  const out = scratch();
  const grid = writeTemp('fp.json', '{"cells":[{"method":"fp16"}]}');
  mkdirSync(join(out, 'cells'), { recursive: true });
  mkdirSync(join(out, 'checkpoints', `rtn-w4-g32.lowbit-tmp-${DEAD_PID}`), { recursive: true });
  writeFileSync(join(out, 'cells', `fp16.json.lowbit-tmp-${DEAD_PID}`), '{');
  writeFileSync(join(out, `table.md.lowbit-tmp-${DEAD_PID}`), '|');
  const r = await runCliAsync(['study', '--model', BIN260K, '--grid', grid, '--ppl', 'tinystories', '--limit', '1', '--out', out]);
  assertOk(r);
  assert.deepEqual(readdirSync(out).sort(), ['cells', 'checkpoints', 'report.html', 'results.json', 'table.csv', 'table.md']);
  assert.deepEqual(readdirSync(join(out, 'cells')), ['fp16.json']);
  assert.deepEqual(readdirSync(join(out, 'checkpoints')), []);
});

test('--static-groups without --act-order, and GPTQ options on RTN, are refused', () => {
  assertBadInput(runCli([...quick(join(scratch(), 'q')), '--method', 'gptq', '--static-groups']), ['--static-groups', '--act-order']);
  assertBadInput(runCli([...quick(join(scratch(), 'q')), '--act-order']), ['--act-order', 'rtn']);
});

test('gptq --device-solve on the CPU backend is refused before any work, in quantize and in a study (its other cells too)', () => {
  const q = join(scratch(), 'q');
  assertBadInput(runCli(['quantize', '--model', BIN260K, '--method', 'gptq', '--wbits', '4', '--group', '-1', '--nsamples', '1', '--seqlen', '32', '--device-solve', '--out', q]),
    ['--device-solve', '--backend webgpu', 'cpu']);
  assert.equal(existsSync(join(q, 'quantize_config.json')), false, 'no checkpoint written');
  const dir = scratch(), grid = join(dir, 'grid.json');
  writeFileSync(grid, JSON.stringify({ cells: [{ method: 'rtn', wbits: 4 }, { method: 'gptq', wbits: 4 }] }));
  assertBadInput(runCli(['study', '--model', BIN260K, '--grid', grid, '--device-solve', '--ppl', 'tinystories', '--limit', '1', '--no-speed', '--out', join(dir, 'study')]),
    ['--device-solve', '--backend webgpu']);
  assert.equal(existsSync(join(dir, 'study', 'results.json')), false, 'no cell ran');
});
