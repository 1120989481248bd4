// Wall time of one study grid on the bundled model: the local runner, then `lowbit study --queue` with 1, 2 and 3
// local `lowbit worker` processes (started, and warm, before the study). Starts its own redis-server on a free port.
// Usage: node dist/bench/studyQueue.js [workers=1,2,3] [threads per worker, default: all cores]   (needs redis-server on the PATH)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PACKAGE_ROOT } from '../src/paths.js';

const BIN = join(PACKAGE_ROOT, 'bin', 'lowbit.js');
const counts = (process.argv[2] ?? '1,2,3').split(',').map(Number);
const threads = process.argv[3] ? ['--threads', process.argv[3]] : [];
const dir = mkdtempSync(join(tmpdir(), 'lowbit-bench-queue-'));
const grid = join(dir, 'grid.json');
// the `quick` grid's methods at --limit 2: seven cells of a few seconds each
writeFileSync(grid, JSON.stringify({ methods: ['rtn', 'gptq'], wbits: [8, 4, 3], groups: [32] }));
const STUDY = ['study', '--grid', grid, '--limit', '2', '--nsamples', '4', '--no-speed', '--ppl', 'tinystories'];

function lowbit(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--expose-gc', BIN, ...args], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`lowbit ${args.join(' ')}: ${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

const srv = createServer();
await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
const port = (srv.address() as { port: number }).port;
srv.close();
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
await sleep(500);
console.log(`grid: 7 cells (FP16, RTN and GPTQ at W8/4/3 g32) on TinyStories-656K, --limit 2 --nsamples 4 --no-speed --ppl tinystories; ${availableParallelism()} cores`);
console.log(`local runner: ${lowbit([...STUDY, '--out', join(dir, 'local')]).toFixed(1)} s`);
for (const n of counts) {
  const url = `redis://127.0.0.1:${port}/${n}`;
  const workers: ChildProcess[] = Array.from({ length: n }, () => spawn(process.execPath, ['--expose-gc', BIN, 'worker', '--queue', url, ...threads], { cwd: dir, stdio: 'ignore' }));
  await sleep(2000); // started and connected: the figure is the study's, not the workers' start
  const s = lowbit([...STUDY, '--out', join(dir, `q${n}`), '--queue', url]);
  console.log(`--queue, ${n} worker${n > 1 ? 's' : ''}${threads.length ? ` (--threads ${threads[1]})` : ''}: ${s.toFixed(1)} s`);
  await Promise.all(workers.map((w) => new Promise((r) => { w.once('close', r); w.kill('SIGTERM'); })));
}
redis.kill('SIGTERM');
