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
 * Memory layout, bottom up: the C data and stack (below __heap_base), the job block, the resident
 * region (ResidentHeap: long-lived arrays such as weights, allocated and released explicitly), then
 * the per-call area above the resident region's current top (each call's copied arrays and the
 * scratch slots). The memory only grows; wasm32 caps it at 4 GiB.
 *
 * Dead workers: the main thread cannot see 'exit' events while it blocks, so a supervisor worker
 * owns the compute workers. When one dies it posts the reason on a MessagePort, sets ERROR and
 * poisons LEFT/READY, which wakes the main thread; it reads the reason synchronously
 * (receiveMessageOnPort) and throws. The pool is unusable afterwards.
 *
 * Elsewhere than Node (the web bundle, src/web/wasmThreads.ts) the caller passes `startThreads`, which
 * starts the threads − 1 workers its own way (Web Workers); each runs `runWasmThread` on the same
 * module and memory, with the same protocol, so the bits are the same as in Node.
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
export const OP = {
  GEMM: 1, RMSNORM: 2, ROPE: 3, ATTENTION: 4, SILU_MUL: 5, NLL: 6,
  GEMM_F64: 7, CHOL_DIAG: 8, CHOL_PANEL: 9, CHOL_UPDATE: 10, TRI_TRMM: 11, TRI_TRSM: 12, TRI_DIAG: 13, TRI_TRANS: 14, GRAM_TRANS: 15, GRAM: 16, STOP: -1,
} as const;
/** Argument slots that the pool itself fills: scratch stride and base. */
const ARG_SCRATCH_STRIDE = 14, ARG_SCRATCH_BASE = 15;
const POISON = 1 << 24;
/** wasm32 addresses end at 4 GiB (65536 pages of 64 KiB, the memory's maximum). */
const WASM32_BYTES = 2 ** 32;
/**
 * How far the resident region may reach (byte address): 2 GiB, so that at least 2 GiB stays for
 * per-call arrays (a weight that did not fit the resident region is copied in per call, as before).
 */
export const RESIDENT_LIMIT = 2 ** 31;
const START_TIMEOUT_MS = 30_000;

interface Exports {
  plan(job: number): number;
  run_task(job: number, task: number, scratch: number): void;
  exp_f64(x: number): number;
  log_f64(x: number): number;
  __heap_base: WasmGlobal;
}

/** What a worker needs: the compiled kernels, the shared memory and the job block's address. */
export interface ThreadInit { readonly module: WasmModule; readonly memory: WasmMemory; readonly job: number }
/** Starts `workers` workers, worker i (1-based) running `runWasmThread({ ...init, id: i })`; instead of Node's worker_threads. */
export type StartThreads = (init: ThreadInit & { readonly workers: number }) => void;

type Data =
  | ({ lowbitWasm: 'supervisor'; workers: number; port: MessagePort } & ThreadInit)
  | ({ lowbitWasm: 'worker'; id: number } & ThreadInit);

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
  /** First free byte after the job block: the resident region starts here, per-call data above it. */
  readonly dataBase: number;
  /** Long-lived arrays (weights) in [dataBase, RESIDENT_LIMIT); per-call data goes above `resident.top`. */
  readonly resident: ResidentHeap;

  /** `startThreads`: how to start the threads − 1 workers; default Node's worker_threads (a supervisor and its workers). */
  constructor(readonly module: WasmModule, readonly threads: number, startThreads?: StartThreads) {
    const memory = new WA.Memory({ initial: 32, maximum: 65536, shared: true });
    this.memory = memory;
    this.exports = instantiate(module, memory);
    this.job = align(Number(this.exports.__heap_base.value), 64);
    this.dataBase = this.job + JOB.BYTES;
    this.resident = new ResidentHeap(this.dataBase, RESIDENT_LIMIT, (bytes) => this.ensure(bytes));
    this.ctrl = new Int32Array(memory.buffer, this.job, JOB.BYTES / 4);
    if (threads > 1 && startThreads) startThreads({ module, memory, job: this.job, workers: threads - 1 });
    else if (threads > 1) {
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

  /** Where a call's arrays may start: above the resident region's current top. */
  get frameBase(): number { return align(this.resident.top, 64); }

  /** Grows the memory so that [0, bytes) is addressable; a RangeError past wasm32's 4 GiB. */
  ensure(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes <= have) return;
    if (bytes > WASM32_BYTES) {
      throw new RangeError(`wasm kernels: ${(bytes / 2 ** 30).toFixed(2)} GiB of arrays exceed the 4 GiB of wasm32 memory`);
    }
    try { this.memory.grow(Math.ceil((bytes - have) / 65536)); } catch (e) {
      throw new RangeError(`wasm kernels: cannot grow the wasm memory from ${have} to ${bytes} bytes: ${(e as Error).message}`);
    }
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
    if (this.threads === 1 || n <= 1) { runTasks(this.exports, c, this.job, 0); return; }
    this.start();
    Atomics.store(c, JOB.LEFT, 0);
    Atomics.add(c, JOB.GEN, 1);
    Atomics.notify(c, JOB.GEN);
    try { runTasks(this.exports, c, this.job, 0); } catch (e) { this.broken = `wasm kernels: main thread failed: ${(e as Error).message}`; throw e; }
    this.waitFor(JOB.LEFT, this.threads - 1, Infinity, 'finish');
  }

  /** Ends the workers; the pool then runs on the main thread only. */
  close(): void {
    if (this.threads === 1 || this.broken) return;
    this.broken = 'wasm kernels: pool closed';
    Atomics.store(this.ctrl, JOB.OP, OP.STOP);
    Atomics.add(this.ctrl, JOB.GEN, 1);
    Atomics.notify(this.ctrl, JOB.GEN);
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

/**
 * First-fit allocator of byte ranges in [base, limit) of a memory that grows on demand: blocks are
 * 64-byte aligned multiples of 64 bytes, released blocks go back to an address-ordered free list and
 * merge with free neighbours, and free space at the end lowers `top` (what lies above `top` is free
 * for per-call use). Allocating past `limit` is a RangeError; so is releasing an address that is not
 * a live block (a double release). Addresses only: the typed arrays live in ../kernels/wasm.ts.
 */
export class ResidentHeap {
  static readonly ALIGN = 64;
  /** free blocks below top, ordered by address, never adjacent (adjacent ones are merged) */
  private readonly freeList: { addr: number; bytes: number }[] = [];
  /** live block address → its size in bytes (rounded up to ALIGN) */
  private readonly live = new Map<number, number>();
  private end: number;
  private inUse = 0;

  /** `grow(bytes)` must make [0, bytes) addressable (it may throw a RangeError). */
  constructor(readonly base: number, readonly limit: number, private readonly grow: (bytes: number) => void = () => {}) {
    if (base % ResidentHeap.ALIGN !== 0) throw new RangeError(`ResidentHeap: base ${base} is not ${ResidentHeap.ALIGN}-byte aligned`);
    this.end = base;
  }

  /** One past the highest live block (base when none): everything from here up is free. */
  get top(): number { return this.end; }
  /** Bytes held by live blocks (rounded sizes). */
  get bytesInUse(): number { return this.inUse; }
  /** Number of live blocks. */
  get blocks(): number { return this.live.size; }
  /** Free blocks below top (a copy): [address, bytes] in address order. */
  get holes(): [number, number][] { return this.freeList.map((f) => [f.addr, f.bytes]); }

  /** A block of at least `bytes` bytes (0 gives a block of ALIGN bytes, so every address is distinct). */
  alloc(bytes: number): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`ResidentHeap.alloc: ${bytes} bytes is not a non-negative integer`);
    const size = Math.max(ResidentHeap.ALIGN, align(bytes, ResidentHeap.ALIGN));
    const fl = this.freeList;
    for (let i = 0; i < fl.length; i++) {
      const f = fl[i]!;
      if (f.bytes < size) continue;
      const addr = f.addr;
      if (f.bytes === size) fl.splice(i, 1);
      else { f.addr += size; f.bytes -= size; }
      return this.take(addr, size);
    }
    const addr = this.end;
    if (addr + size > this.limit) {
      throw new RangeError(`wasm resident memory exhausted: ${bytes} bytes requested, ${this.inUse} in use, ` +
        `${this.limit - this.base - this.inUse} free of ${this.limit - this.base} (largest hole ${Math.max(0, ...fl.map((f) => f.bytes))})`);
    }
    this.grow(addr + size);
    this.end = addr + size;
    return this.take(addr, size);
  }

  /** Gives a block back; a RangeError if `addr` is not a live block of this heap. */
  release(addr: number): void {
    const size = this.live.get(addr);
    if (size === undefined) throw new RangeError(`ResidentHeap.release: ${addr} is not a live block (released twice, or never allocated here)`);
    this.live.delete(addr);
    this.inUse -= size;
    const fl = this.freeList;
    let lo = 0, hi = fl.length; // lo: the first free block above addr
    while (lo < hi) { const mid = (lo + hi) >> 1; if (fl[mid]!.addr < addr) lo = mid + 1; else hi = mid; }
    let i = lo, block = { addr, bytes: size };
    const prev = fl[i - 1], next = fl[i];
    if (next && addr + size === next.addr) { block.bytes += next.bytes; fl.splice(i, 1); }
    if (prev && prev.addr + prev.bytes === addr) { prev.bytes += block.bytes; block = prev; i--; } else fl.splice(i, 0, block);
    if (block.addr + block.bytes === this.end) { this.end = block.addr; fl.splice(i, 1); } // free tail: lower top
  }

  /** The live block holding [addr, addr + bytes), or undefined (a linear scan: for rare checks only). */
  blockAt(addr: number, bytes: number): number | undefined {
    for (const [a, size] of this.live) if (addr >= a && addr + bytes <= a + size) return a;
    return undefined;
  }

  private take(addr: number, size: number): number {
    this.live.set(addr, size);
    this.inUse += size;
    return addr;
  }
}

// ---- the two worker roles (this same file, started with workerData) -------------------------------------

/**
 * Marks worker `id` dead in the job block: sets ERROR and poisons LEFT/READY, which wakes the main
 * thread (it then throws). False when the pool was stopping anyway (nothing to report).
 */
export function poisonPool(init: ThreadInit, id: number): boolean {
  const ctrl = new Int32Array(init.memory.buffer, init.job, JOB.BYTES / 4);
  if (Atomics.load(ctrl, JOB.OP) === OP.STOP) return false;
  Atomics.store(ctrl, JOB.ERROR, id);
  Atomics.add(ctrl, JOB.LEFT, POISON);
  Atomics.add(ctrl, JOB.READY, POISON);
  Atomics.notify(ctrl, JOB.LEFT);
  Atomics.notify(ctrl, JOB.READY);
  return true;
}

function supervisorMain(d: Extract<Data, { lowbitWasm: 'supervisor' }>): void {
  const fail = (id: number, why: string): void => {
    const ctrl = new Int32Array(d.memory.buffer, d.job, JOB.BYTES / 4);
    if (Atomics.load(ctrl, JOB.OP) === OP.STOP) return;
    d.port.postMessage(`worker ${id} of ${d.workers} ${why}`);
    poisonPool(d, id);
  };
  for (let id = 1; id <= d.workers; id++) {
    const data: Data = { lowbitWasm: 'worker', module: d.module, memory: d.memory, job: d.job, id };
    const w = new Worker(new URL(import.meta.url), { workerData: data });
    w.on('error', (e) => fail(id, `failed: ${e.message}`));
    w.on('exit', (code) => fail(id, `exited with code ${code}`));
  }
}

/** Worker `id`'s life: instantiate, say READY, then run each job's tasks until STOP (blocks in Atomics.wait). */
export function runWasmThread(d: ThreadInit & { readonly id: number }): void {
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
    runTasks(ex, ctrl, d.job, d.id);
    Atomics.add(ctrl, JOB.LEFT, 1);
    Atomics.notify(ctrl, JOB.LEFT);
  }
}

if (!isMainThread) {
  const d = workerData as Data | null;
  if (d?.lowbitWasm === 'supervisor') supervisorMain(d);
  else if (d?.lowbitWasm === 'worker') runWasmThread(d);
}
