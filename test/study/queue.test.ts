// `lowbit study --queue` and `lowbit worker` against a real redis-server on 127.0.0.1 (started here, on a free
// port; the tests skip with the reason when the binary is missing). The queued tables must equal the local
// runner's byte for byte (--no-speed: the tables then hold no timings).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { BIN, assertBadInput, runCliAsync } from '../cli/helpers.js';
import { TINY656K, DATA } from '../helpers/paths.js';
import { QUEUE_NAME, parseQueueUrl } from '../../src/study/queue/connection.js';
import { cellJob } from '../../src/study/queue/job.js';
import { FP16 } from '../../src/study/grid.js';
import { acquireGpu } from '../../src/backend/webgpu/capabilities.js';

const HAS_REDIS = spawnSync('redis-server', ['--version']).status === 0;
const SKIP = HAS_REDIS ? false : 'needs redis-server on the PATH (Debian: apt-get install redis-server)';
const gpuProbe = await acquireGpu();
const NO_WEBGPU = gpuProbe.ok ? false : `WebGPU unavailable: ${gpuProbe.reason}`;
const PASSWORD = 'lowbit-test';

const dir = mkdtempSync(join(tmpdir(), 'lowbit-queue-'));
const gridFile = join(dir, 'grid.json');
writeFileSync(gridFile, JSON.stringify({ cells: [{ method: 'fp16' }, { method: 'rtn', wbits: 8, group: 32 }, { method: 'rtn', wbits: 4, group: 32 }] }));
const STUDY = ['study', '--model', TINY656K, '--data-dir', DATA, '--grid', gridFile, '--limit', '2', '--nsamples', '4', '--no-speed', '--ppl', 'tinystories', '--threads', '1'];

let redis: ChildProcess | undefined;
let port = 0;
const workers: ChildProcess[] = [];
const url = (db: number, password = PASSWORD) => `redis://:${password}@127.0.0.1:${port}/${db}`;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const p = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return p;
}

async function waitForPort(p: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => { const s = connect(p, '127.0.0.1', () => { s.end(); r(true); }); s.on('error', () => r(false)); });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`redis-server did not listen on ${p}`);
}

/** A `lowbit worker` process; its stderr collects in `log`. */
function startWorker(db: number, env: Record<string, string> = {}, args: string[] = []): { child: ChildProcess; log: () => string } {
  const child = spawn(process.execPath, ['--expose-gc', BIN, 'worker', '--queue', url(db), '--threads', '1', ...args], { env: { ...process.env, ...env }, cwd: dir });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { log += d; });
  workers.push(child);
  return { child, log: () => log };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise((r) => child.once('close', r));
  child.kill('SIGTERM');
  await closed;
}

const doneLines = (log: string) => log.split('\n').filter((l) => / done in /.test(l)).map((l) => l.split(':')[0]!.split('.')[0]);
let local: { md: string; csv: string };

function tables(out: string): { md: string; csv: string } {
  return { md: readFileSync(join(out, 'table.md'), 'utf8'), csv: readFileSync(join(out, 'table.csv'), 'utf8') };
}

before(async () => {
  if (!HAS_REDIS) return;
  port = await freePort();
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--requirepass', PASSWORD], { stdio: 'ignore' });
  await waitForPort(port);
  const r = await runCliAsync([...STUDY, '--out', join(dir, 'local')], { timeoutMs: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  local = tables(join(dir, 'local'));
  assert.match(local.md, /\| RTN \| 4 \| 32 \|/);
});

after(async () => {
  for (const w of workers) await stop(w);
  redis?.kill('SIGTERM');
});

test('two worker processes give exactly the local runner\'s table', { skip: SKIP }, async () => {
  const a = startWorker(1), b = startWorker(1);
  const r = await runCliAsync([...STUDY, '--out', join(dir, 'two'), '--queue', url(1)], { timeoutMs: 180_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(tables(join(dir, 'two')), local);
  await Promise.all([stop(a.child), stop(b.child)]);
  // each cell ran once, on one of the two
  assert.deepEqual([...doneLines(a.log()), ...doneLines(b.log())].sort(), ['fp16', 'rtn-w4-g32', 'rtn-w8-g32']);
  // the journal has the cells: a rerun enqueues nothing and rewrites the same table
  const again = await runCliAsync([...STUDY, '--out', join(dir, 'two'), '--queue', url(1)], { timeoutMs: 60_000 });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /0 cells enqueued, 0 already there, 3 finished earlier/);
});

test('enqueuing the same grid twice runs each cell once; --collect builds the table; --store keeps the checkpoints', { skip: SKIP }, async () => {
  for (const n of [3, 0]) {
    const r = await runCliAsync([...STUDY, '--out', join(dir, `twice${n}`), '--queue', url(2), '--no-wait'], { timeoutMs: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`${n} cells enqueued, ${3 - n} already there`));
  }
  const store = join(dir, 'store');
  const w = startWorker(2, {}, ['--store', store]);
  const r = await runCliAsync([...STUDY, '--out', join(dir, 'twice'), '--queue', url(2)], { timeoutMs: 180_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(tables(join(dir, 'twice')), local);
  const rtn4 = JSON.parse(readFileSync(join(dir, 'twice', 'results.json'), 'utf8')).cells[2];
  assert.match(rtn4.results.quant.checkpoint, new RegExp(`^${store}/checkpoints/rtn-w4-g32\\.[0-9a-f]{16}$`));
  assert.ok(existsSync(join(rtn4.results.quant.checkpoint, 'config.json')), 'the checkpoint is in the store');
  await stop(w.child);
  assert.deepEqual(doneLines(w.log()).sort(), ['fp16', 'rtn-w4-g32', 'rtn-w8-g32']);
  const c = await runCliAsync([...STUDY, '--out', join(dir, 'collected'), '--queue', url(2), '--collect'], { timeoutMs: 60_000 });
  assert.equal(c.status, 0, c.stderr);
  assert.deepEqual(tables(join(dir, 'collected')), local);
});

test('a worker killed with SIGKILL mid-cell: the cell is handed to another, the table is complete and identical', { skip: SKIP }, async () => {
  const env = { LOWBIT_QUEUE_LOCK_MS: '1000' };
  const a = startWorker(3, env);
  const e = await runCliAsync([...STUDY, '--out', join(dir, 'killed'), '--queue', url(3), '--no-wait'], { timeoutMs: 60_000 });
  assert.equal(e.status, 0, e.stderr);
  // the first cell it takes: wait until it runs, then kill the process in the middle of it
  let started: string | undefined;
  for (let i = 0; i < 600 && !started; i++) { started = /^(\S+): started/m.exec(a.log())?.[1]; await sleep(50); }
  assert.ok(started, `worker never started a cell:\n${a.log()}`);
  await sleep(300);
  a.child.kill('SIGKILL');
  await new Promise((r) => a.child.once('close', r));
  assert.ok(!a.log().includes(`${started}: done`), `the cell finished before the kill; nothing was tested:\n${a.log()}`);
  const b = startWorker(3, env);
  const r = await runCliAsync([...STUDY, '--out', join(dir, 'killed'), '--queue', url(3)], { timeoutMs: 180_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(tables(join(dir, 'killed')), local);
  await stop(b.child);
  assert.ok(b.log().includes(`${started}: started`), `the killed cell was not run again by the other worker:\n${b.log()}`);
  assert.deepEqual(doneLines(b.log()).sort(), ['fp16', 'rtn-w4-g32', 'rtn-w8-g32']);
});

test('a job that fails validation, or whose model cannot be opened, fails for good with its one-line error', { skip: SKIP }, async () => {
  const queue = new Queue(QUEUE_NAME, { connection: { ...parseQueueUrl(url(4)).redis, maxRetriesPerRequest: null } });
  try {
    const spec = { model: TINY656K, tokenizer: null, ppl: ['tinystories'], seqlen: 512, limit: 2, calib: 'c4', nsamples: 4, seed: 0, dataDir: DATA, kld: false, speed: false, tasks: null };
    const opts = { attempts: 3, backoff: { type: 'fixed', delay: 100 } };
    await queue.add('bad', { ...cellJob(FP16, spec), cell: { method: 'nope', wbits: 4 }, key: 'nope' }, { ...opts, jobId: 'bad-cell' });
    await queue.add('code', { ...cellJob(FP16, spec), study: { ...spec, run: 'process.exit(1)' } }, { ...opts, jobId: 'bad-study' });
    await queue.add('model', cellJob(FP16, { ...spec, model: join(dir, 'no-such-model') }), { ...opts, jobId: 'bad-model' });
    const w = startWorker(4);
    const want: Record<string, RegExp> = { 'bad-cell': /job bad-cell cell: .*nope/, 'bad-study': /unknown study field "run"/, 'bad-model': /no-such-model/ };
    for (const [id, pattern] of Object.entries(want)) {
      let job = await queue.getJob(id);
      for (let i = 0; i < 200 && (await job!.getState()) !== 'failed'; i++) { await sleep(100); job = await queue.getJob(id); }
      assert.equal(await job!.getState(), 'failed', id);
      assert.match(job!.failedReason, pattern);
      assert.ok(!job!.failedReason.includes('\n'), `one line: ${job!.failedReason}`);
      assert.equal(job!.attemptsMade, 1, `${id}: an input error is not retried`);
    }
    assert.equal(w.child.exitCode, null, 'the worker keeps running after failed cells');
    await stop(w.child);
  } finally {
    await queue.close();
  }
});

test('cells that fail on the worker are rows of the table saying why; the others are the local numbers; exit 2', { skip: SKIP }, async () => {
  // a data folder with TinyStories but no C4: the FP cell runs, the RTN cells cannot calibrate
  const data = join(dir, 'data-no-c4');
  mkdirSync(data);
  cpSync(join(DATA, 'tinystories'), join(data, 'tinystories'), { recursive: true });
  const w = startWorker(6);
  const args = STUDY.map((a) => (a === DATA ? data : a));
  const r = await runCliAsync([...args, '--out', join(dir, 'failed'), '--queue', url(6)], { timeoutMs: 180_000 });
  await stop(w.child);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr.trimEnd().split('\n').at(-1)!, /^lowbit: 2 of 3 cells failed \(rtn-w8-g32, rtn-w4-g32\)/);
  const md = readFileSync(join(dir, 'failed', 'table.md'), 'utf8').split('\n');
  const fp = local.md.split('\n').find((l) => l.startsWith('| FP16 '))!;
  assert.ok(md.some((l) => l.startsWith(fp.slice(0, fp.indexOf(' | – | – |')))), `the FP16 row has the local numbers:\n${md.join('\n')}`);
  assert.equal(md.filter((l) => /^\| RTN \| [84] \| 32 \| .*c4.*file not found/.test(l)).length, 2, md.join('\n'));
  assert.equal(doneLines(w.log()).join(), 'fp16');
});

test('a worker whose WebGPU device is lost mid-cell retries the cell on a new device; the table is complete', { skip: SKIP || NO_WEBGPU }, async () => {
  // LOWBIT_WEBGPU_LOSE_AFTER (tests only): the thread's 20th dispatch destroys its device, in the first cell it runs
  const w = startWorker(9, { LOWBIT_WEBGPU_LOSE_AFTER: '20' }, ['--backend', 'webgpu']);
  const r = await runCliAsync([...STUDY, '--out', join(dir, 'lost'), '--queue', url(9)], { timeoutMs: 180_000 });
  await stop(w.child);
  assert.equal(r.status, 0, `${r.stderr}\n${w.log()}`);
  const retried = w.log().split('\n').filter((l) => / will retry: webgpu: the device was lost \(destroyed\)/.test(l));
  assert.equal(retried.length, 1, w.log());
  const cell = /^lowbit: (\S+): will retry/.exec(retried[0]!)![1]!;
  assert.ok(w.log().split('\n').includes(`${cell}: started (attempt 2)`), w.log());
  assert.deepEqual(doneLines(w.log()).sort(), ['fp16', 'rtn-w4-g32', 'rtn-w8-g32']);
  // the local CPU runner's rows (WebGPU's perplexities are within 1e-7 of the CPU's here: the same to 2 decimals); the
  // header names the backend the workers ran, not this process's
  const md = tables(join(dir, 'lost')).md.split('\n'), want = local.md.split('\n');
  assert.deepEqual(md.filter((l) => l.startsWith('| ')), want.filter((l) => l.startsWith('| ')));
  assert.match(md[2]!, /; backend webgpu: [^|]+\.$/);
  assert.match(want[2]!, /; backend cpu: [^|]+\.$/);
});

test('a fine-tuning cell (qlora, 1 step) runs on a worker as it does locally', { skip: SKIP }, async () => {
  const ft = join(dir, 'ft.json');
  writeFileSync(ft, JSON.stringify({ cells: [{ method: 'qlora', steps: 1 }] }));
  const args = STUDY.map((a) => (a === gridFile ? ft : a));
  const l = await runCliAsync([...args, '--out', join(dir, 'ft-local')], { timeoutMs: 120_000 });
  assert.equal(l.status, 0, l.stderr);
  const w = startWorker(7);
  const r = await runCliAsync([...args, '--out', join(dir, 'ft-queue'), '--queue', url(7)], { timeoutMs: 120_000 });
  await stop(w.child);
  assert.equal(r.status, 0, r.stderr);
  assert.match(tables(join(dir, 'ft-local')).md, /\| QLoRA \(1 steps\) \| 4 \| 64 \| [\d.]+ \|/);
  assert.deepEqual(tables(join(dir, 'ft-queue')), tables(join(dir, 'ft-local')));
});

test('bad --queue: malformed URL, unreachable Redis, wrong password: one line, exit 2', { skip: SKIP }, async () => {
  const closed = await freePort();
  const cases: [string[], string[], RegExp][] = [
    [[...STUDY, '--queue', 'http://127.0.0.1:6379/0'], ['--queue'], /redis:\/\/ or rediss:\/\//],
    [[...STUDY, '--queue', `redis://127.0.0.1:${port}/x`], ['--queue'], /database must be a number/],
    [[...STUDY, '--queue', `redis://127.0.0.1:${closed}/0`], [`127.0.0.1:${closed}`], /ECONNREFUSED/],
    [[...STUDY, '--queue', url(0, 'wrong')], ['--queue'], /WRONGPASS|invalid/i],
    [['worker', '--queue', url(0, 'wrong')], ['--queue'], /WRONGPASS|invalid/i],
    [[...STUDY, '--no-wait'], ['--no-wait'], /needs --queue/],
  ];
  for (const [args, names, pattern] of cases) {
    const line = assertBadInput(await runCliAsync(args, { timeoutMs: 30_000 }), names, pattern);
    assert.ok(!line.includes('wrong@') && !line.includes(PASSWORD), `the password is printed: ${line}`);
  }
});

test('a Redis that goes away while the study waits: one line naming it, exit 2, within LOWBIT_QUEUE_TIMEOUT_MS', { skip: SKIP, timeout: 90_000 }, async () => {
  const own = await freePort(); // a server of this test's own, so the others keep theirs
  const server = spawn('redis-server', ['--port', String(own), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  try {
    await waitForPort(own);
    const out = join(dir, 'gone');
    const child = spawn(process.execPath, ['--expose-gc', BIN, ...STUDY, '--out', out, '--queue', `redis://127.0.0.1:${own}/0`],
      { cwd: dir, env: { ...process.env, LOWBIT_QUEUE_TIMEOUT_MS: '3000' } });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const closed = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    for (let i = 0; i < 300 && !/cells? enqueued/.test(stderr); i++) await sleep(100); // no worker: the study waits
    assert.match(stderr, /3 cells enqueued/);
    const t0 = performance.now();
    server.kill('SIGKILL');
    const code = await Promise.race([closed, sleep(30_000).then(() => 'hung' as const)]);
    if (code === 'hung') child.kill('SIGKILL');
    assert.equal(code, 2, `expected exit 2 after Redis went away\n${stderr}`);
    assert.ok(performance.now() - t0 < 20_000, 'it took too long to give up');
    const last = stderr.trimEnd().split('\n').at(-1)!;
    assert.match(last, new RegExp(`^lowbit: redis://127\\.0\\.0\\.1:${own}/0: Redis gave no answer for 3 s.*0 of 3 cells finished.*rerun the same command`));
    assert.ok(!stderr.includes('    at '), `stack frames on stderr:\n${stderr}`);
  } finally {
    server.kill('SIGKILL');
  }
});
