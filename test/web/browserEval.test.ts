// web/eval.html in headless Chromium (Debian's /usr/bin/chromium, playwright-core): the bundled model's folder
// goes in through the page's folder input, the page evaluates tinystories (2 windows) in its Web Worker, and the
// perplexity it shows must equal the Node CPU backend's for the same windows, computed here: (a) backend auto,
// WebGPU on a hardware adapter (1e-4 relative, the WebGPU suites' bound), else (a software adapter such as
// SwiftShader, or none) the wasm worker, exactly, the page saying why, and then webgpu by name on a software
// adapter; with each piqa and winogrande (8 examples), whose accuracies must equal Node's; (b) the wasm path,
// forced by the page's backend option (bit-identical: the same wasm kernels on one thread), then the five zero-shot
// tasks (8 examples each) and MMLU 5-shot (1 question per subject) on it, each acc / acc_norm equal to Node's
// evaluateTasks; also for a llama2.c .bin + tok*.bin and a Q8_0 .gguf (the files input), a GPTQ W4 checkpoint
// quantized here (a folder) and a picked .gz text file as the set; (c) a Chromium with no adapter: auto runs on
// wasm and says why. Plus a folder without a checkpoint: the page shows the CLI's one-line error. A node:http
// server on 127.0.0.1 serves only the page, its bundle (built here by scripts/build-web.mjs) and the data files;
// the test fails on any request outside it and on any console error. Skips only without Chromium. The page
// after (a) is saved to test-artifacts/web-eval.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { extname, join, normalize, sep } from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type Page } from 'playwright-core';
import { DATA, PACKAGE_ROOT, STORIES260K, TINY656K } from '../helpers/paths.js';
import { openModel } from '../../src/io/open.js';
import { evaluatePpl } from '../../src/eval/ppl.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { LowbitError } from '../../src/errors.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { evaluateTasks } from '../../src/eval/taskRun.js';
import type { TaskResult } from '../../src/eval/tasks/registry.js';
import type { PplRow, TaskRow } from '../../src/web/protocol.js';

const CHROMIUM = process.env.LOWBIT_CHROMIUM ?? '/usr/bin/chromium';
const NO_CHROMIUM = existsSync(CHROMIUM) ? false : `needs Chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set LOWBIT_CHROMIUM)`;
// --no-sandbox: CI runs as root; --enable-unsafe-webgpu: the only way Chromium offers an adapter on Linux headless
const FLAGS = ['--no-sandbox', '--disable-gpu-sandbox', '--enable-unsafe-webgpu'];
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json' };
const SET = 'tinystories', LIMIT = 2;
/** every bundled zero-shot task, 8 examples each; MMLU apart, 1 question of each of the 57 subjects (5-shot) */
const TASKS = ['piqa', 'arc_easy', 'arc_challenge', 'hellaswag', 'winogrande'], TASK_LIMIT = 8, MMLU_LIMIT = 1;
/** the tasks also run on WebGPU in (a) (SwiftShader is slow) */
const GPU_TASKS = ['piqa', 'winogrande'];
const SCREENSHOT = join(PACKAGE_ROOT, 'test-artifacts', 'web-eval.png');
const Q8_GGUF = join(TINY656K, 'gguf', 'TinyStories-656K-Q8_0-GGUF', 'tinystories-656k-q8_0.gguf');

interface PageState {
  state: string; backend?: { name: string; text: string }; rows: PplRow[]; taskRows: TaskRow[]; error?: string;
  progress?: { windowsDone: number; windows: number; tokensPerSecond: number };
}

/**
 * web/eval.html, the bundle in `bundleDir` as /dist/web/, assets/data/, with npm run serve:web's COOP/COEP headers
 * (without them when `isolated` is false: a page that is not cross-origin isolated).
 */
async function serve(bundleDir: string, isolated = true): Promise<{ origin: string; close: () => Promise<void> }> {
  const roots: [string, string][] = [['web/', join(PACKAGE_ROOT, 'web')], ['dist/web/', bundleDir], ['assets/data/', DATA]];
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^[/\\]+/, '');
    const root = roots.find(([p]) => path.startsWith(p));
    const file = root ? join(root[1], path.slice(root[0].length)) : '';
    if (!root || !file.startsWith(root[1] + sep) || !existsSync(file) || !statSync(file).isFile()) { res.writeHead(404).end(); return; }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      ...(isolated ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } : {}),
    }).end(readFileSync(file));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(() => ok())) };
}

/** Picks a folder (#folder) or files (#files) in the page, sets the options, runs, and returns the page's final state. */
async function evaluateInPage(
  tab: Page, origin: string, pick: { folder: string } | { files: string[] }, backend: 'auto' | 'webgpu' | 'wasm', setup?: () => Promise<void>, threads = 1,
): Promise<PageState> {
  await tab.goto(`${origin}/web/eval.html`);
  await tab.fill('#threads', String(threads));
  await setup?.();
  if ('folder' in pick) await tab.setInputFiles('#folder', pick.folder);
  else await tab.setInputFiles('#files', pick.files);
  await tab.fill('#limit', String(LIMIT));
  await tab.selectOption('#backend-choice', backend);
  await tab.click('#run');
  await tab.waitForFunction(() => ['done', 'error'].includes((window as unknown as { lowbitEval: PageState }).lowbitEval.state), null, { timeout: 150_000 });
  return tab.evaluate(() => (window as unknown as { lowbitEval: PageState }).lowbitEval);
}

/** Ticks `tasks` in the page and sets the task limit (a setup for evaluateInPage). */
async function pickTasks(tab: Page, tasks: readonly string[], limit = TASK_LIMIT): Promise<void> {
  for (const task of tasks) await tab.check(`input[name=task][value=${task}]`);
  await tab.fill('#task-limit', String(limit));
}

/** The page's task rows must carry Node's accuracies exactly, and show them as the table cells. */
async function assertTasks(tab: Page, state: PageState, want: readonly TaskResult[], where: string): Promise<void> {
  assert.deepEqual(state.taskRows.map((r) => r.task), want.map((r) => r.task));
  for (const w of want) {
    const got = state.taskRows.find((r) => r.task === w.task)!;
    console.log(`# browserEval: ${where}: ${w.task} acc ${got.acc} acc_norm ${got.acc_norm ?? '-'} over ${got.n} examples (${got.seconds.toFixed(1)} s); Node: ${w.acc} ${w.acc_norm ?? '-'}`);
    assert.equal(got.acc, w.acc, `${where}: ${w.task} acc`);
    assert.equal(got.acc_norm, w.acc_norm, `${where}: ${w.task} acc_norm`);
    assert.equal(got.n, w.n, `${where}: ${w.task} examples`);
    assert.equal(got.protocol, w.protocol);
    const cells = await tab.locator(`#task-results tbody tr[data-task="${w.task}"] td`).allTextContents();
    assert.equal(cells[1], `${(100 * w.acc).toFixed(2)} %`);
    assert.equal(cells[2], w.acc_norm === undefined ? '-' : `${(100 * w.acc_norm).toFixed(2)} %`);
    assert.equal(cells[3], String(w.n));
  }
}

/** The displayed row of `set`: its perplexity cell and the full value the row carries. */
async function shownPpl(tab: Page, set: string): Promise<{ cell: string; value: number }> {
  const row = tab.locator(`#results tbody tr[data-set="${set}"]`);
  return { cell: (await row.locator('td').nth(1).textContent()) ?? '', value: Number(await row.getAttribute('data-ppl')) };
}

test('web/eval.html in headless Chromium: the picked model\'s perplexity equals the CPU backend\'s (WebGPU or its fallback, and the wasm worker)', { skip: NO_CHROMIUM, timeout: 300_000 }, async (t) => {
  const bundle = mkdtempSync(join(tmpdir(), 'lowbit-web-'));
  const built = spawnSync(process.execPath, [join(PACKAGE_ROOT, 'scripts', 'build-web.mjs'), '--outdir', bundle], { encoding: 'utf8' });
  assert.equal(built.status, 0, `scripts/build-web.mjs failed: ${built.stderr}`);
  // the reference: lowbit's CPU backend in this process, wasm kernels on one thread (as in the tab's worker)
  const ckpt = openModel(TINY656K);
  const kernels = selectKernels('wasm', 1);
  assert.equal(kernels.kernels.name, 'wasm', kernels.note);
  const seqlen = Math.min(2048, ckpt.config.maxPositionEmbeddings);
  const cpu = new CpuBackend(kernels.kernels, kernels.note);
  const want = await evaluatePpl(ckpt, cpu, SET, { seqlen, limit: LIMIT });
  // the pool's kernels cut work by shape only: Node's value on 2 worker_threads is the same bits (checked here)
  const kernels2 = selectKernels('wasm', 2);
  assert.equal(kernels2.note, 'wasm SIMD, 2 threads');
  const want2 = await evaluatePpl(ckpt, new CpuBackend(kernels2.kernels, kernels2.note), SET, { seqlen, limit: LIMIT });
  assert.equal(want2.ppl, want.ppl);
  const wantTasks = await evaluateTasks(ckpt, cpu, TASKS, { limit: TASK_LIMIT });
  const wantMmlu = await evaluateTasks(ckpt, cpu, ['mmlu'], { limit: MMLU_LIMIT });
  const l2cCkpt = openModel(join(STORIES260K, 'stories260K.bin'));
  const want260k = await evaluatePpl(l2cCkpt, cpu, SET, { seqlen: Math.min(2048, l2cCkpt.config.maxPositionEmbeddings), limit: LIMIT });
  const gptqDir = join(bundle, 'gptq-w4g128');
  await quantizeModel(ckpt, cpu, { method: 'gptq', bits: 4, group: 128, calib: 'c4', nsamples: 4, seqlen: 512, out: gptqDir });
  const wantGptq = await evaluatePpl(openModel(gptqDir), cpu, SET, { seqlen, limit: LIMIT });
  const wantGguf = await evaluatePpl(openModel(Q8_GGUF), cpu, SET, { seqlen, limit: LIMIT });
  const sample = readFileSync(join(DATA, 'wikitext2', 'wikitext-2-raw', 'wiki.valid.raw'), 'utf8').slice(0, 20_000);
  writeFileSync(join(bundle, 'sample.txt'), sample);
  writeFileSync(join(bundle, 'sample.txt.gz'), gzipSync(sample));
  const wantText = await evaluatePpl(ckpt, cpu, `file:${join(bundle, 'sample.txt')}`, { seqlen, limit: LIMIT });
  const broken = join(bundle, 'broken');
  mkdirSync(broken);
  writeFileSync(join(broken, 'notes.txt'), 'no checkpoint here\n');
  let cliLine = '';
  try { openModel(broken); } catch (e) { assert.ok(e instanceof LowbitError); cliLine = `lowbit: ${e.message.replaceAll(bundle + sep, '')}`; }

  const { origin, close } = await serve(bundle);
  /** A fresh Chromium with `args`: fn gets a tab; no console error, page error or outside request is allowed. */
  const inChromium = async (args: string[], fn: (tab: Page, version: string) => Promise<void>, served = origin): Promise<void> => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args });
    try {
      const tab = await browser.newPage();
      const problems: string[] = [];
      tab.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
      tab.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      tab.on('request', (r) => { if (!r.url().startsWith(served + '/')) problems.push(`request outside the local server: ${r.url()}`); });
      await fn(tab, browser.version());
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  };
  try {
    await inChromium(FLAGS, async (tab, version) => {
      console.log(`# browserEval: Chromium ${version}; Node CPU (${kernels.note}): ${SET} ${want.ppl} over ${want.windowsEvaluated} windows of ${seqlen}`);
      // (a) auto: WebGPU on a hardware adapter; the wasm worker on a software one (SwiftShader here: the wasm kernels
      // are 10x faster) or with none, saying why; then, where the adapter is a software one, webgpu by name
      const auto = await evaluateInPage(tab, origin, { folder: TINY656K }, 'auto', () => pickTasks(tab, GPU_TASKS));
      assert.equal(auto.state, 'done', `the page failed: ${auto.error}`);
      const a = await shownPpl(tab, SET);
      console.log(`# browserEval: auto ran ${auto.backend?.text}: ${a.value} (${auto.rows[0]?.seconds.toFixed(1)} s), relative difference ${(Math.abs(a.value - want.ppl) / want.ppl).toExponential(2)}`);
      assert.match(await tab.textContent('#backend') ?? '', /^(webgpu|wasm|js)/);
      assert.equal(a.cell, a.value.toFixed(6));
      assert.equal(auto.rows[0]?.windows, LIMIT);
      assert.equal(auto.progress?.windowsDone, LIMIT);
      assert.equal(auto.progress?.windows, LIMIT);
      assert.ok((auto.progress?.tokensPerSecond ?? 0) > 0);
      const gpuTasks = wantTasks.filter((r) => GPU_TASKS.includes(r.task));
      let onGpu: PageState | undefined;
      if (auto.backend?.name === 'webgpu') {
        assert.doesNotMatch(auto.backend.text, /a software adapter/);
        onGpu = auto;
      } else {
        assert.equal(a.value, want.ppl);
        await assertTasks(tab, auto, gpuTasks, 'auto (wasm)');
        if (/is a software one \(isFallbackAdapter\), slower than the CPU kernels on the same cores; the backend option webgpu runs on it$/.test(auto.backend?.text ?? '')) {
          onGpu = await evaluateInPage(tab, origin, { folder: TINY656K }, 'webgpu', () => pickTasks(tab, GPU_TASKS));
          assert.equal(onGpu.state, 'done', `the page failed: ${onGpu.error}`);
          assert.equal(onGpu.backend?.name, 'webgpu');
          assert.match(onGpu.backend?.text ?? '', /^webgpu: .+ \(a software adapter; /);
        } else {
          console.log(`# browserEval: no WebGPU adapter in headless Chromium (${FLAGS.join(' ')}): ${auto.backend?.text}`);
          assert.match(auto.backend?.text ?? '', /navigator\.gpu gave no adapter: /);
        }
      }
      if (onGpu) {
        const g = await shownPpl(tab, SET);
        console.log(`# browserEval: ${onGpu.backend?.text}: ${g.value} (${onGpu.rows[0]?.seconds.toFixed(1)} s), relative difference ${(Math.abs(g.value - want.ppl) / want.ppl).toExponential(2)}`);
        assert.ok(Math.abs(g.value - want.ppl) <= 1e-4 * want.ppl, `WebGPU in the tab: ${g.value} vs the CPU's ${want.ppl}`);
        // the same accuracies as the CPU (as test/eval/webgpuEval.test.ts holds WebGPU's in Node)
        await assertTasks(tab, onGpu, gpuTasks, 'webgpu');
        t.diagnostic(`webgpu: ${onGpu.backend?.text}`);
      }
      t.diagnostic(`auto: ${auto.backend?.text}`);
      mkdirSync(join(PACKAGE_ROOT, 'test-artifacts'), { recursive: true });
      await tab.screenshot({ path: SCREENSHOT, fullPage: true });
      t.diagnostic(`screenshot: ${SCREENSHOT}`);

      // (b) the wasm kernels in the worker, forced by the backend option: the same kernels, the same bits
      const wasm = await evaluateInPage(tab, origin, { folder: TINY656K }, 'wasm');
      assert.equal(wasm.state, 'done', `the page failed: ${wasm.error}`);
      const w = await shownPpl(tab, SET);
      console.log(`# browserEval: wasm ran ${wasm.backend?.text}: ${w.value} (${wasm.rows[0]?.seconds.toFixed(1)} s)`);
      assert.equal(wasm.backend?.name, 'wasm', wasm.backend?.text);
      assert.match(wasm.backend?.text ?? '', /^wasm in a Web Worker \(wasm SIMD, 1 thread\): the backend option asked for the CPU$/);
      assert.equal(w.value, want.ppl);
      assert.equal(w.cell, want.ppl.toFixed(6));

      // 2 wasm threads: the eval worker and one more Web Worker over the shared memory; Node's bits
      const two = await evaluateInPage(tab, origin, { folder: TINY656K }, 'wasm', undefined, 2);
      assert.equal(two.state, 'done', `the page failed: ${two.error}`);
      const w2 = await shownPpl(tab, SET);
      console.log(`# browserEval: wasm, 2 threads, ran ${two.backend?.text}: ${w2.value} (${two.rows[0]?.seconds.toFixed(1)} s)`);
      assert.match(two.backend?.text ?? '', /^wasm in 2 Web Workers \(wasm SIMD, 2 threads\): the backend option asked for the CPU$/);
      assert.equal(two.rows[0]?.backend, want2.backend);
      assert.equal(w2.value, want.ppl);

      // every bundled task on 2 wasm threads: Node's accuracies exactly (the same kernels, the same bits)
      const tasks = await evaluateInPage(tab, origin, { folder: TINY656K }, 'wasm', async () => {
        await tab.uncheck('input[name=set][value=tinystories]');
        await pickTasks(tab, TASKS);
      }, 2);
      assert.equal(tasks.state, 'done', `the page failed: ${tasks.error}`);
      assert.match(tasks.backend?.text ?? '', /^wasm in 2 Web Workers \(wasm SIMD, 2 threads\)/);
      assert.deepEqual(tasks.rows, []);
      await assertTasks(tab, tasks, wantTasks, 'wasm, 2 threads');
      const mmlu = await evaluateInPage(tab, origin, { folder: TINY656K }, 'wasm', async () => {
        await tab.uncheck('input[name=set][value=tinystories]');
        await pickTasks(tab, ['mmlu'], MMLU_LIMIT);
      });
      assert.equal(mmlu.state, 'done', `the page failed: ${mmlu.error}`);
      await assertTasks(tab, mmlu, wantMmlu, 'wasm');

      // loose files: a llama2.c checkpoint and its tok*.bin through the multiple-file input, on the wasm worker
      const l2c = await evaluateInPage(tab, origin, { files: [join(STORIES260K, 'stories260K.bin'), join(STORIES260K, 'tok512.bin')] }, 'wasm');
      assert.equal(l2c.state, 'done', `the page failed: ${l2c.error}`);
      console.log(`# browserEval: stories260K.bin + tok512.bin, wasm: ${l2c.rows[0]?.ppl} (${l2c.rows[0]?.seconds.toFixed(1)} s)`);
      assert.equal((await shownPpl(tab, SET)).value, want260k.ppl);

      // a GPTQ W4 g128 checkpoint quantized here (lowbit's folder layout), and a Q8_0 .gguf through the files input
      const q = await evaluateInPage(tab, origin, { folder: gptqDir }, 'wasm');
      assert.equal(q.state, 'done', `the page failed: ${q.error}`);
      console.log(`# browserEval: GPTQ W4 g128 folder, wasm: ${q.rows[0]?.ppl} (${q.rows[0]?.seconds.toFixed(1)} s)`);
      assert.equal((await shownPpl(tab, SET)).value, wantGptq.ppl);
      const g = await evaluateInPage(tab, origin, { files: [Q8_GGUF] }, 'wasm');
      assert.equal(g.state, 'done', `the page failed: ${g.error}`);
      console.log(`# browserEval: Q8_0 .gguf, wasm: ${g.rows[0]?.ppl} (${g.rows[0]?.seconds.toFixed(1)} s)`);
      assert.equal((await shownPpl(tab, SET)).value, wantGguf.ppl);

      // a picked text file as the set, gzip-compressed (decompressed in the tab), instead of tinystories
      const txt = await evaluateInPage(tab, origin, { folder: TINY656K }, 'wasm', async () => {
        await tab.uncheck('input[name=set][value=tinystories]');
        await tab.setInputFiles('#textfile', join(bundle, 'sample.txt.gz'));
      });
      assert.equal(txt.state, 'done', `the page failed: ${txt.error}`);
      console.log(`# browserEval: a picked sample.txt.gz, wasm: ${txt.rows[0]?.ppl} (${txt.rows[0]?.seconds.toFixed(1)} s)`);
      assert.deepEqual(txt.rows.map((r) => r.set), ['file:text/sample.txt']);
      assert.equal((await shownPpl(tab, 'file:text/sample.txt')).value, wantText.ppl);

      // bad input: a folder with no checkpoint gives the CLI's one line, no stack trace
      const bad = await evaluateInPage(tab, origin, { folder: broken }, 'wasm');
      assert.equal(bad.state, 'error');
      assert.equal(await tab.textContent('#error'), cliLine);
    });
    // (c) a Chromium that offers no adapter (no --enable-unsafe-webgpu), on a page served without COOP/COEP: auto
    // still runs, on the wasm worker, says why; 2 threads asked, 1 ran (no cross-origin isolation), same bits
    const plain = await serve(bundle, false);
    try {
      await inChromium(['--no-sandbox'], async (tab) => {
        const fallback = await evaluateInPage(tab, plain.origin, { folder: TINY656K }, 'auto', undefined, 2);
        assert.equal(fallback.state, 'done', `the page failed: ${fallback.error}`);
        console.log(`# browserEval: Chromium without --enable-unsafe-webgpu, not isolated, auto with 2 threads ran ${fallback.backend?.text}`);
        assert.match(fallback.backend?.text ?? '', new RegExp('^wasm in a Web Worker \\(wasm SIMD, 1 thread; 2 threads asked, 1 ran: the page is not cross-origin ' +
          'isolated \\(self\\.crossOriginIsolated is false\\).*\\): navigator\\.gpu gave no adapter: '));
        assert.equal((await shownPpl(tab, SET)).value, want.ppl);
      }, plain.origin);
    } finally {
      await plain.close();
    }
  } finally {
    await close();
    rmSync(bundle, { recursive: true, force: true });
  }
});
