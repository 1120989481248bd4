/**
 * The wasm worker pool and its whole protocol, in one file (web-llm's message.ts habit).
 *
 * One shared WasmMemory holds a job block (layout: JOB below, mirrored by `Job` in kernels.c),
 * a scratch slot per thread, and the op's arrays. The main thread is participant 0: it writes a job,
 * bumps GEN and wakes the workers (Atomics.notify), then claims tasks from the NEXT counter like
 * everyone else and blocks in Atomics.wait until every worker has LEFT the job. Only then is the block
 * reused, so a slow worker can never read half-written arguments. Which participant runs a task does
 * not change its bits (kernels.c cuts work by shape only), so results are identical for any thread count.
 *
 * Dead workers: the main thread cannot see 'exit' events while it blocks, so a supervisor worker
 * owns the compute workers. When one dies it posts the reason on a MessagePort, sets ERROR and
 * poisons LEFT/READY, which wakes the main thread; it reads the reason synchronously
 * (receiveMessageOnPort) and throws. The pool is unusable afterwards.
 */
import { MessageChannel, Worker, isMainThread, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';

/**
 * The few WebAssembly APIs used here. tsconfig's lib (ES2022, no DOM) has no WebAssembly types,
 * so they are declared locally and the object is taken from globalThis.
 */
export interface WasmModule { readonly __wasmModule?: never }
export interface WasmMemory { readonly buffer: SharedArrayBuffer; grow(pages: number): number }
interface WasmGlobal { readonly value: number }
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Instance: new (m: WasmModule, imports: object) => { exports: object };
}
export const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** Int32 slots of the job block (byte offset = 4 × index); f64 `eps` at byte 96. */
export const JOB = { GEN: 0, OP: 1, NTASKS: 2, NEXT: 3, LEFT: 4, ERROR: 5, READY: 6, SCRATCH: 7, ARGS: 8, EPS_BYTE: 96, BYTES: 128 } as const;
/** Op codes (enum in kernels.c); STOP ends the workers. */
export const OP = { GEMM: 1, RMSNORM: 2, ROPE: 3, ATTENTION: 4, SILU_MUL: 5, NLL: 6, STOP: -1 } as const;
/** Argument slots that the pool itself fills: scratch stride and base. */
const ARG_SCRATCH_STRIDE = 14, ARG_SCRATCH_BASE = 15;
const POISON = 1 << 24;
const START_TIMEOUT_MS = 30_000;

interface Exports {
  plan(job: number): number;
  run_task(job: number, task: number, scratch: number): void;
  exp_f64(x: number): number;
  log_f64(x: number): number;
  __heap_base: WasmGlobal;
}

type Data =
  | { lowbitWasm: 'supervisor'; module: WasmModule; memory: WasmMemory; job: number; workers: number; port: MessagePort }
  | { lowbitWasm: 'worker'; module: WasmModule; memory: WasmMemory; job: number; id: number; crashOn?: number };

function instantiate(module: WasmModule, memory: WasmMemory): Exports {
  return new WA.Instance(module, { env: { memory } }).exports as unknown as Exports;
}

/** Claims and runs tasks until none is left; participant `id` uses scratch slot `id`. */
function runTasks(ex: Exports, ctrl: Int32Array, job: number, id: number): void {
  const n = ctrl[JOB.NTASKS]!, scratch = ctrl[JOB.ARGS + ARG_SCRATCH_BASE]! + id * ctrl[JOB.ARGS + ARG_SCRATCH_STRIDE]!;
  for (let i = Atomics.add(ctrl, JOB.NEXT, 1); i < n; i = Atomics.add(ctrl, JOB.NEXT, 1)) ex.run_task(job, i, scratch);
}

export class WasmPool {
  readonly exports: Exports;
  private readonly ctrl: Int32Array;
  private readonly supervisor?: Worker;
  private readonly port?: MessagePort;
  private started = false;
  private broken?: string;
  /** First free byte after the job block; everything above is per-call data. */
  readonly dataBase: number;

  constructor(readonly module: WasmModule, readonly threads: number) {
    const memory = new WA.Memory({ initial: 32, maximum: 65536, shared: true });
    this.memory = memory;
    this.exports = instantiate(module, memory);
    this.job = align(Number(this.exports.__heap_base.value), 64);
    this.dataBase = this.job + JOB.BYTES;
    this.ctrl = new Int32Array(memory.buffer, this.job, JOB.BYTES / 4);
    if (threads > 1) {
      const { port1, port2 } = new MessageChannel();
      this.port = port1;
      const data: Data = { lowbitWasm: 'supervisor', module, memory, job: this.job, workers: threads - 1, port: port2 };
      this.supervisor = new Worker(new URL(import.meta.url), { workerData: data, transferList: [port2] });
      this.supervisor.unref();
      port1.unref();
    }
  }
  readonly memory: WasmMemory;
  readonly job: number;

  /** Why the pool cannot run any more (a worker died, or it was closed); undefined while usable. */
  get brokenReason(): string | undefined { return this.broken; }

  /** Grows the memory so that [0, bytes) is addressable. */
  ensure(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / 65536));
  }

  /** Runs one op: `args` are the Job.a slots (byte addresses and sizes), `setup` copies inputs in. */
  run(op: number, args: readonly number[], eps: number, scratchBase: number): void {
    if (this.broken) throw new Error(this.broken);
    const c = this.ctrl;
    for (let i = 0; i < args.length; i++) c[JOB.ARGS + i] = args[i]!;
    new Float64Array(this.memory.buffer, this.job + JOB.EPS_BYTE, 1)[0] = eps;
    c[JOB.OP] = op;
    const n = this.exports.plan(this.job);
    const stride = align(c[JOB.SCRATCH]!, 64);
    this.ensure(scratchBase + stride * this.threads);
    c[JOB.ARGS + ARG_SCRATCH_STRIDE] = stride;
    c[JOB.ARGS + ARG_SCRATCH_BASE] = scratchBase;
    c[JOB.NTASKS] = n;
    Atomics.store(c, JOB.NEXT, 0);
    if (!this.supervisor || n <= 1) { runTasks(this.exports, c, this.job, 0); return; }
    this.start();
    Atomics.store(c, JOB.LEFT, 0);
    Atomics.add(c, JOB.GEN, 1);
    Atomics.notify(c, JOB.GEN);
    try { runTasks(this.exports, c, this.job, 0); } catch (e) { this.broken = `wasm kernels: main thread failed: ${(e as Error).message}`; throw e; }
    this.waitFor(JOB.LEFT, this.threads - 1, Infinity, 'finish');
  }

  /** Ends the workers; the pool then runs on the main thread only. */
  close(): void {
    if (!this.supervisor || this.broken) return;
    this.broken = 'wasm kernels: pool closed';
    Atomics.store(this.ctrl, JOB.OP, OP.STOP);
    Atomics.add(this.ctrl, JOB.GEN, 1);
    Atomics.notify(this.ctrl, JOB.GEN);
  }

  /** Test hook: makes worker 1 call process.exit(3) on the next job, as a crashing worker would die. */
  crashWorkerForTest(): void {
    if (!this.supervisor) throw new Error('no workers');
    this.start();
    Atomics.store(this.ctrl, JOB.OP, 0x7e57);
    Atomics.store(this.ctrl, JOB.LEFT, 0);
    Atomics.add(this.ctrl, JOB.GEN, 1);
    Atomics.notify(this.ctrl, JOB.GEN);
    this.waitFor(JOB.LEFT, this.threads - 1, Infinity, 'finish');
  }

  private start(): void {
    if (this.started) return;
    this.waitFor(JOB.READY, this.threads - 1, START_TIMEOUT_MS, 'start');
    this.started = true;
  }

  private waitFor(slot: number, want: number, timeoutMs: number, what: string): void {
    const c = this.ctrl, t0 = Date.now();
    for (let v = Atomics.load(c, slot); v !== want; v = Atomics.load(c, slot)) {
      if (Atomics.load(c, JOB.ERROR) !== 0 || v >= POISON) {
        const msg = this.port ? receiveMessageOnPort(this.port)?.message as string | undefined : undefined;
        this.broken = `wasm kernels: ${msg ?? 'a worker died'} (the pool is unusable; create a new provider)`;
        throw new Error(this.broken);
      }
      const left = timeoutMs - (Date.now() - t0);
      if (left <= 0) {
        this.broken = `wasm kernels: ${this.threads - 1} workers did not ${what} within ${timeoutMs} ms`;
        throw new Error(this.broken);
      }
      Atomics.wait(c, slot, v, Math.min(left, 1000));
    }
  }
}

export function align(n: number, a: number): number { return Math.ceil(n / a) * a; }

// ---- the two worker roles (this same file, started with workerData) -------------------------------------

function supervisorMain(d: Extract<Data, { lowbitWasm: 'supervisor' }>): void {
  const ctrl = new Int32Array(d.memory.buffer, d.job, JOB.BYTES / 4);
  const fail = (id: number, why: string): void => {
    if (Atomics.load(ctrl, JOB.OP) === OP.STOP) return;
    d.port.postMessage(`worker ${id} of ${d.workers} ${why}`);
    Atomics.store(ctrl, JOB.ERROR, id);
    Atomics.add(ctrl, JOB.LEFT, POISON);
    Atomics.add(ctrl, JOB.READY, POISON);
    Atomics.notify(ctrl, JOB.LEFT);
    Atomics.notify(ctrl, JOB.READY);
  };
  for (let id = 1; id <= d.workers; id++) {
    const data: Data = { lowbitWasm: 'worker', module: d.module, memory: d.memory, job: d.job, id };
    const w = new Worker(new URL(import.meta.url), { workerData: data });
    w.on('error', (e) => fail(id, `failed: ${e.message}`));
    w.on('exit', (code) => fail(id, `exited with code ${code}`));
  }
}

function workerMain(d: Extract<Data, { lowbitWasm: 'worker' }>): void {
  const ex = instantiate(d.module, d.memory);
  const ctrl = new Int32Array(d.memory.buffer, d.job, JOB.BYTES / 4);
  let seen = Atomics.load(ctrl, JOB.GEN);
  Atomics.add(ctrl, JOB.READY, 1);
  Atomics.notify(ctrl, JOB.READY);
  for (;;) {
    Atomics.wait(ctrl, JOB.GEN, seen);
    seen = Atomics.load(ctrl, JOB.GEN);
    const op = Atomics.load(ctrl, JOB.OP);
    if (op === OP.STOP) return;
    if (op === 0x7e57 && d.id === 1) process.exit(3); // crashWorkerForTest
    if (op !== 0x7e57) runTasks(ex, ctrl, d.job, d.id);
    Atomics.add(ctrl, JOB.LEFT, 1);
    Atomics.notify(ctrl, JOB.LEFT);
  }
}

if (!isMainThread) {
  const d = workerData as Data | null;
  if (d?.lowbitWasm === 'supervisor') supervisorMain(d);
  else if (d?.lowbitWasm === 'worker') workerMain(d);
}
