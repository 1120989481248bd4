/**
 * The 'wasm' provider: kernels.c compiled to WebAssembly with 128-bit SIMD (../wasm/lowbit_kernels.wasm,
 * committed: built by scripts/build-wasm.mjs, which CI reruns to check the file), run on a pool of worker_threads over one shared memory
 * (../wasm/pool.ts). Each call copies its arrays into the shared memory, runs, and copies the outputs
 * back, except arrays that already live there: those from `resident.alloc` (weights, see
 * CpuBackend.uploadWeight), passed by address. The float64 linear algebra comes from the js
 * references (jsLinalg.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CpuKernels, ResidentArray, ResidentArrayTypes, ResidentMemory } from './kernels.js';
import { checked } from './provider.js';
import { PACKAGE_ROOT } from '../../../paths.js';
import { jsLinalg } from './jsLinalg.js';
import { OP, WA, WasmPool, align, type StartThreads, type WasmModule } from '../wasm/pool.js';

export type Loaded = { ok: true; kernels: CpuKernels; pool: WasmPool } | { ok: false; reason: string };

/** The committed build of kernels.c (in a browser tab, the web bundle puts its bytes at this path of the tab's file system). */
export const WASM_FILE = join(PACKAGE_ROOT, 'src', 'backend', 'cpu', 'wasm', 'lowbit_kernels.wasm');
let compiled: WasmModule | undefined;
let compileError: string | undefined;
const pools = new Map<number, WasmPool>();

function compile(): WasmModule | undefined {
  if (compiled || compileError) return compiled;
  try {
    if (!existsSync(WASM_FILE)) { compileError = `${WASM_FILE} is missing (rebuild it with node scripts/build-wasm.mjs)`; return undefined; }
    compiled = new WA.Module(readFileSync(WASM_FILE));
  } catch (e) {
    compileError = `this engine cannot load ${WASM_FILE} (needs SIMD, threads): ${(e as Error).message}`;
  }
  return compiled;
}

type Arr = Float32Array | Uint16Array | Int32Array | Float64Array;

const CTORS = { f32: Float32Array, u16: Uint16Array, i32: Int32Array, f64: Float64Array } as const;

/**
 * The resident arrays of one pool (shared by every provider object made over that pool): the typed
 * arrays handed out, over the pool's ResidentHeap. A shared memory's `buffer` is a new
 * SharedArrayBuffer object after each grow, all aliasing the same memory, so an array is recognised
 * by identity (`live`) or by its buffer being one that arrays were handed out on (`buffers`), never
 * by comparing with the current buffer.
 */
class Resident implements ResidentMemory {
  private readonly live = new WeakMap<object, number>();
  private readonly released = new WeakSet<object>();
  private readonly buffers = new WeakSet<object>();
  /** What the kernels expose as `resident` (bound: it may be destructured). */
  readonly api: ResidentMemory = Object.freeze({
    alloc: <K extends keyof ResidentArrayTypes>(kind: K, length: number) => this.alloc(kind, length),
    release: (a: ResidentArray) => this.release(a),
  });
  constructor(private readonly pool: WasmPool) {}

  alloc<K extends keyof ResidentArrayTypes>(kind: K, length: number): ResidentArrayTypes[K] {
    const Ctor = CTORS[kind];
    if (!Ctor) throw new RangeError(`resident.alloc: kind ${String(kind)} is not one of ${Object.keys(CTORS).join(', ')}`);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`resident.alloc: length ${length} is not a non-negative integer`);
    const addr = this.pool.resident.alloc(length * Ctor.BYTES_PER_ELEMENT);
    const buf = this.pool.memory.buffer; // after alloc: it grew the memory if it had to
    this.buffers.add(buf);
    const a = new (Ctor as new (b: ArrayBufferLike, at: number, n: number) => ResidentArray)(buf, addr, length);
    this.live.set(a, addr);
    return a as ResidentArrayTypes[K];
  }

  release(a: ResidentArray): void {
    const addr = this.live.get(a);
    if (addr === undefined) {
      throw new RangeError(this.released.has(a) ? 'resident.release: this array was already released'
        : 'resident.release: not an array from this wasm provider\'s resident.alloc');
    }
    this.live.delete(a);
    this.released.add(a);
    this.pool.resident.release(addr);
  }

  /**
   * The address of `a` if it lives in this pool's memory (a live resident array or a view inside
   * one), undefined for an ordinary array (to be copied); throws for a released one.
   */
  addressOf(a: Arr): number | undefined {
    const addr = this.live.get(a);
    if (addr !== undefined) return addr;
    if (!this.buffers.has(a.buffer)) return undefined;
    if (!this.released.has(a) && this.pool.resident.blockAt(a.byteOffset, a.byteLength) !== undefined) return a.byteOffset;
    throw new Error('wasm kernels: an array in released resident memory was passed to a kernel (used after release)');
  }
}
const residents = new WeakMap<WasmPool, Resident>();
function residentOf(pool: WasmPool): Resident {
  let r = residents.get(pool);
  if (!r) residents.set(pool, (r = new Resident(pool)));
  return r;
}

/**
 * Lays out one call's arrays above the resident region (pool.frameBase upwards), copies inputs in
 * and outputs back; resident arrays are passed by address, neither copied in nor out.
 */
class Frame {
  private top: number;
  private readonly outs: { addr: number; dst: Arr }[] = [];
  private readonly ins: { addr: number; src: Arr }[] = [];
  constructor(private readonly pool: WasmPool, private readonly res: Resident) { this.top = pool.frameBase; }
  private place(a: Arr): number {
    const addr = align(this.top, 16);
    this.top = addr + a.byteLength;
    if (this.top > 0xffff0000) throw new RangeError(`wasm kernels: arrays of this call exceed the 4 GiB of wasm32 memory`);
    return addr;
  }
  input(a: Arr): number {
    const at = this.res.addressOf(a);
    if (at !== undefined) return at;
    const addr = this.place(a); this.ins.push({ addr, src: a }); return addr;
  }
  output(a: Arr): number {
    const at = this.res.addressOf(a);
    if (at !== undefined) return at;
    const addr = this.place(a); this.outs.push({ addr, dst: a }); return addr;
  }
  inout(a: Arr): number {
    const at = this.res.addressOf(a);
    if (at !== undefined) return at;
    const addr = this.input(a); this.outs.push({ addr, dst: a }); return addr;
  }
  run(op: number, args: number[], eps = 0): void {
    const scratch = align(this.top, 64);
    this.pool.ensure(scratch);
    const buf = this.pool.memory.buffer;
    for (const { addr, src } of this.ins) new Uint8Array(buf, addr, src.byteLength).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    this.pool.run(op, args, eps, scratch);
    const after = this.pool.memory.buffer;
    for (const { addr, dst } of this.outs) new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(new Uint8Array(after, addr, dst.byteLength));
  }
}

const W_DTYPE = { bf16: 1, f16: 2 } as const;

function makeKernels(pool: WasmPool): CpuKernels {
  const resident = residentOf(pool);
  const frame = (): Frame => new Frame(pool, resident);
  const gemmAny = (x: Float32Array, w: Float32Array | Uint16Array, code: number, y: Float32Array, M: number, N: number, K: number): void => {
    const f = frame();
    f.run(OP.GEMM, [f.input(x), f.input(w), f.output(y), M, N, K, code]);
  };
  return {
    name: 'wasm',
    gemm: (x, w, y, M, N, K) => gemmAny(x, w, 0, y, M, N, K),
    gemmHalf: (x, w, dtype, y, M, N, K) => gemmAny(x, w, W_DTYPE[dtype], y, M, N, K),
    rmsnorm: (x, g, y, M, D, eps) => { const f = frame(); f.run(OP.RMSNORM, [f.input(x), f.input(g), f.output(y), M, D], eps); },
    rope: (x, T, H, hd, c, s) => { const f = frame(); f.run(OP.ROPE, [f.inout(x), T, H, hd, f.input(c), f.input(s)]); },
    attention: (q, k, v, o, T, S, off, H, KVH, hd) => {
      const f = frame();
      f.run(OP.ATTENTION, [f.input(q), f.input(k), f.input(v), f.output(o), T, S, off, H, KVH, hd]);
    },
    siluMul: (g, u, o, n) => { const f = frame(); f.run(OP.SILU_MUL, [f.input(g), f.input(u), f.output(o), n]); },
    nll: (l, t, o, T, V) => { const f = frame(); f.run(OP.NLL, [f.input(l), f.input(t), f.output(o), T, V]); },
    ...jsLinalg,
    resident: resident.api,
  };
}

/**
 * The wasm provider with `threads` threads (the main thread and threads − 1 workers), or why not.
 * `startThreads` starts the workers where Node's worker_threads are not (a browser tab: Web Workers).
 */
export function loadWasmKernels(threads = 1, startThreads?: StartThreads): Loaded {
  const module = compile();
  if (!module) return { ok: false, reason: compileError ?? 'unknown' };
  const n = Math.max(1, Math.floor(threads));
  let pool = pools.get(n);
  if (!pool || pool.brokenReason) {
    try { pool = new WasmPool(module, n, startThreads); } catch (e) { return { ok: false, reason: `cannot start the wasm pool: ${(e as Error).message}` }; }
    pools.set(n, pool);
  }
  return { ok: true, kernels: checked(makeKernels(pool)), pool };
}
