/**
 * The Web Worker that runs a browser evaluation (web/eval.html): it puts the picked files and the
 * fetched dataset files into the tab's file system (vfs.ts), opens the checkpoint with openModel and
 * runs evaluatePpl and evaluateTasks, the same code and protocols as `lowbit eval --ppl SETS --tasks T
 * --limit N`, posting progress.
 * The backend: lowbit's WebGPU backend on the worker's navigator.gpu (webgpu; auto where the adapter is not a
 * software one such as SwiftShader, which the wasm kernels outrun: autoPicksWebGpu), else the CPU
 * backend with the wasm SIMD kernels (this worker, and more threads as Web Workers: wasmThreads.ts),
 * else the js kernels; the `backend` message says which ran, on how many threads, and why. Bundled by scripts/build-web.mjs, which maps node:*
 * imports to ./shims and src/paths.ts to ./browserPaths.ts.
 */
import wasmKernels from '../backend/cpu/wasm/lowbit_kernels.wasm';
import { join } from 'node:path';
import type { Backend } from '../backend/backend.js';
import { CpuBackend } from '../backend/cpu/cpuBackend.js';
import { selectKernels, type Selected } from '../backend/cpu/kernels/select.js';
import { WASM_FILE } from '../backend/cpu/kernels/wasm.js';
import { createWebGpuBackend } from '../backend/webgpu/webgpuBackend.js';
import { autoPicksWebGpu, findAdapter } from '../backend/webgpu/capabilities.js';
import { PPL_DATASET_INFO } from '../data/pplData.js';
import { evaluatePpl } from '../eval/ppl.js';
import { evaluateTasks } from '../eval/taskRun.js';
import { parseTasks } from '../eval/tasks/registry.js';
import { LowbitError, UsageError } from '../errors.js';
import { openModel } from '../io/open.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { defaultDataDir } from '../paths.js';
import { fmtInt } from '../numbers.js';
import { addBlob, addBytes, vfsFile } from './vfs.js';
import { TASK_FILES } from './taskFiles.js';
import { threadsUnavailable, webThreads } from './wasmThreads.js';
import type { BackendChoice, EvalMessage, EvalRequest } from './protocol.js';

const post = (m: EvalMessage): void => (globalThis as unknown as { postMessage(m: EvalMessage): void }).postMessage(m);

async function gunzip(bytes: Blob): Promise<Uint8Array> {
  const stream = bytes.stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A data file fetched from the served assets/data/ (or its .gz) into the tab's data folder; false when the server has neither. */
async function tryFetchDataFile(dataUrl: string, rel: string): Promise<{ ok: true } | { ok: false; why: string }> {
  const path = join(defaultDataDir(), rel);
  if (vfsFile(path)) return { ok: true };
  const plain = await fetch(new URL(rel, dataUrl));
  if (plain.ok) { addBytes(path, new Uint8Array(await plain.arrayBuffer())); return { ok: true }; }
  const gz = await fetch(new URL(`${rel}.gz`, dataUrl));
  if (!gz.ok) return { ok: false, why: `cannot fetch ${new URL(rel, dataUrl).href} (HTTP ${plain.status}) nor its .gz (HTTP ${gz.status}): serve the package root (assets/data/)` };
  addBytes(path, await gunzip(await gz.blob()));
  return { ok: true };
}

async function fetchDataFile(dataUrl: string, rel: string): Promise<void> {
  const r = await tryFetchDataFile(dataUrl, rel);
  if (!r.ok) throw new LowbitError(r.why);
}

/** The files `task` reads (taskFiles.ts), fetched in parallel; of a list of alternatives, the first the server has. */
async function fetchTaskFiles(dataUrl: string, task: string): Promise<void> {
  await Promise.all((TASK_FILES[task] ?? []).map(async (f) => {
    if (typeof f === 'string') { await fetchDataFile(dataUrl, f); return; }
    const whys: string[] = [];
    for (const alt of f) {
      const r = await tryFetchDataFile(dataUrl, alt);
      if (r.ok) return;
      whys.push(r.why);
    }
    throw new LowbitError(whys.join('; '));
  }));
}

/** The window length: --seqlen, else min(2048, the model's context); longer than the context is refused (as cli/common.ts resolveSeqlen). */
function seqlenFor(context: number, given: number | undefined, model: string): number {
  if (given === undefined) return Math.min(2048, context);
  if (!Number.isInteger(given) || given < 2) throw new UsageError(`--seqlen must be an integer ≥ 2 (got '${given}')`);
  if (given > context) {
    throw new UsageError(`--seqlen ${fmtInt(given)} is longer than the model's context of ${fmtInt(context)} tokens (${model}): positions beyond it were never trained ` +
      'and give meaningless numbers');
  }
  return given;
}

/** The backend this run uses, and the line that says which and why (and how many wasm threads ran). */
async function chooseBackend(choice: BackendChoice, threads: number): Promise<{ be: Backend; name: 'webgpu' | 'wasm' | 'js'; text: string }> {
  let why = 'the backend option asked for the CPU';
  const found = choice === 'auto' ? await findAdapter() : undefined;
  const pick = found?.ok ? autoPicksWebGpu(found) : undefined;
  if (pick && !pick.ok) {
    why = `${pick.reason}; the backend option webgpu runs on it`;
  } else if (choice !== 'wasm') {
    const host = selectKernels('wasm', 1);
    const gpu = await createWebGpuBackend(host.kernels, host.note);
    if (gpu.ok) {
      const caps = gpu.backend.caps;
      return { be: gpu.backend, name: 'webgpu', text: `webgpu: ${caps.adapterName} (${caps.software ? 'a software adapter; ' : ''}${caps.runtime}, in a Web Worker)` };
    }
    if (choice === 'webgpu') throw new UsageError(`--backend webgpu: ${gpu.reason}`);
    why = `navigator.gpu gave no adapter: ${gpu.reason}`;
  }
  const cpu = await cpuKernels(threads);
  const name = cpu.kernels.name === 'wasm' ? 'wasm' : 'js';
  const where = cpu.threads > 1 ? `${cpu.threads} Web Workers` : 'a Web Worker';
  return { be: new CpuBackend(cpu.kernels, cpu.note), name, text: `${name} in ${where} (${cpu.note}): ${why}` };
}

/**
 * The wasm kernels on `threads` threads: this worker and threads − 1 Web Workers over one shared memory
 * (wasmThreads.ts); one thread, with the reason in the note, when the page is not cross-origin isolated
 * or the threads do not start.
 */
async function cpuKernels(threads: number): Promise<Selected & { threads: number }> {
  if (threads === 1) return { ...selectKernels('wasm', 1), threads: 1 };
  const unavailable = threadsUnavailable();
  if (!unavailable) {
    const web = webThreads(new URL('./wasmThread.js', import.meta.url));
    const sel = selectKernels('wasm', threads, web.start);
    if (sel.kernels.name !== 'wasm') return { ...sel, threads: 1 };
    try {
      await web.ready();
      return { ...sel, threads };
    } catch (e) {
      web.terminate();
      const one = selectKernels('wasm', 1);
      return { ...one, note: `${one.note}; ${threads} threads asked, 1 ran: ${(e as Error).message}`, threads: 1 };
    }
  }
  const one = selectKernels('wasm', 1);
  return { ...one, note: `${one.note}; ${threads} threads asked, 1 ran: ${unavailable}`, threads: 1 };
}

async function run(req: EvalRequest): Promise<void> {
  const t0 = performance.now();
  addBytes(WASM_FILE, wasmKernels);
  for (const f of req.files) {
    if (f.path.endsWith('.gz') && req.sets.includes(`file:${f.path.slice(0, -3)}`)) addBytes(f.path.slice(0, -3), await gunzip(f.file));
    else addBlob(f.path, f.file);
  }
  if (req.sets.length === 0 && req.tasks.length === 0) throw new UsageError('nothing to evaluate: pick a set (--ppl) or a task (--tasks)');
  if (req.tasks.length) parseTasks(req.tasks.join(',')); // unknown names fail before the model loads, as the CLI
  if (req.limit !== undefined && (!Number.isInteger(req.limit) || req.limit < 1)) throw new UsageError(`--limit must be an integer ≥ 1 (got '${req.limit}')`);
  post({ kind: 'status', text: `opening ${req.model}` });
  const ckpt = openModel(req.model);
  const seqlen = seqlenFor(ckpt.config.maxPositionEmbeddings, req.seqlen, ckpt.path);
  const threads = req.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new UsageError(`--threads: ${threads} is not a positive integer`);
  const { be, name, text } = await chooseBackend(req.backend, threads);
  post({ kind: 'backend', name, text });
  for (const set of req.sets) {
    const info = (PPL_DATASET_INFO as Record<string, { file: string } | undefined>)[set];
    if (info) {
      post({ kind: 'status', text: `fetching ${info.file}` });
      await fetchDataFile(req.dataUrl, info.file);
    }
    post({ kind: 'status', text: `tokenizing ${set}` });
    let started = 0;
    const r = await evaluatePpl(ckpt, be, set, {
      seqlen, limit: req.limit, windowsPerPass: 1,
      onProgress: (p) => {
        if (p.phase === 'embed' && p.windowsDone === 0) started = performance.now();
        const s = (performance.now() - started) / 1000;
        post({
          kind: 'progress', set, windowsDone: p.windowsDone, windows: p.windows, block: p.phase === 'head' ? p.numBlocks : p.block, blocks: p.numBlocks,
          tokensPerSecond: s > 0 ? (p.windowsDone * seqlen) / s : 0,
        });
      },
    });
    const s = (performance.now() - started) / 1000;
    post({ kind: 'progress', set, windowsDone: r.windowsEvaluated, windows: r.windowsEvaluated, block: ckpt.config.numLayers, blocks: ckpt.config.numLayers, tokensPerSecond: s > 0 ? (r.windowsEvaluated * seqlen) / s : 0 });
    post({
      kind: 'result',
      row: { set, ppl: r.ppl, windows: r.windowsEvaluated, windowsTotal: r.windows, seqlen: r.seqlen, tokens: r.tokens, backend: r.backend, seconds: r.seconds, notes: r.notes },
    });
  }
  if (req.tasks.length) await runTasks(req, ckpt, be);
  post({ kind: 'done', seconds: (performance.now() - t0) / 1000 });
}

/** `lowbit eval --tasks T --limit N`: the task files fetched, then evaluateTasks unchanged, one row per task as it finishes. */
async function runTasks(req: EvalRequest, ckpt: ModelCheckpoint, be: Backend): Promise<void> {
  for (const task of req.tasks) {
    post({ kind: 'status', text: `fetching the ${task} data` });
    await fetchTaskFiles(req.dataUrl, task);
  }
  let started = performance.now();
  await evaluateTasks(ckpt, be, req.tasks, {
    ...(req.taskLimit !== undefined ? { limit: req.taskLimit } : {}),
    onProgress: (task, done, total) => {
      const s = (performance.now() - started) / 1000;
      post({ kind: 'taskProgress', task, done, total, examplesPerSecond: s > 0 ? done / s : 0 });
    },
    onResult: (r) => {
      const seconds = (performance.now() - started) / 1000;
      post({
        kind: 'taskResult',
        row: { task: r.task, acc: r.acc, ...(r.acc_norm === undefined ? {} : { acc_norm: r.acc_norm }), n: r.n, protocol: r.protocol, shots: r.shots, bos: r.bos, backend: be.description, seconds },
      });
      started = performance.now();
    },
  });
}

globalThis.addEventListener('message', (e: Event) => {
  const req = (e as MessageEvent<EvalRequest>).data;
  if (req?.kind !== 'eval') return;
  run(req).catch((err: unknown) => {
    // as bin/lowbit: a LowbitError is one line; anything else is an internal error, its stack on the console
    if (err instanceof LowbitError) post({ kind: 'error', text: `lowbit: ${err.message}` });
    else {
      console.error(err);
      post({ kind: 'error', text: `lowbit: internal error: ${(err as Error)?.message ?? String(err)}` });
    }
  });
});
