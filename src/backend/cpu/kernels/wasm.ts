/**
 * The 'wasm' provider: kernels.c compiled to WebAssembly with 128-bit SIMD (../wasm/lowbit_kernels.wasm,
 * committed: built by scripts/build-wasm.mjs, which CI reruns to check the file), run on a pool of worker_threads over one shared memory
 * (../wasm/pool.ts). Each call copies its arrays into the shared memory, runs, and copies the outputs
 * back, except arrays that already live there: those from `resident.alloc` (weights, see
 * CpuBackend.uploadWeight), passed by address. GPTQ's float64 linear algebra runs here too: gram, gemmF64,
 * and cholesky and triangularInverse blocked as LAPACK's dpotrf and dtrtri (LA_BLOCK columns a step, each
 * step one op over the matrix, which stays in the pool's memory for the whole factorization); the other
 * float64 methods (symmetricEigen, qr) come from the js references (jsLinalg.ts). gram (the Hessian's XᵀX) runs
 * here on a transposed float64 copy of x, as one dot product per entry.
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

/** Columns per step of the blocked Cholesky and triangular inverse (the trailing update's tile in kernels.c is 64). */
const LA_BLOCK = 64;

/**
 * Runs `steps` on the square float64 A in the pool's memory (copied in unless resident), with `extraBytes`
 * of scratch beside it; copies A back when steps returns true. Undefined when the memory cannot hold them
 * (past wasm32's 4 GiB): the caller then uses the js reference.
 */
function onSquare(pool: WasmPool, res: Resident, A: Float64Array, extraBytes: number,
  steps: (a: number, extra: number, run: (op: number, args: number[]) => void) => boolean): boolean | undefined {
  const resident = res.addressOf(A);
  let top = pool.frameBase;
  const a = resident ?? align(top, 64);
  if (resident === undefined) top = a + A.byteLength;
  const extra = align(top, 64), scratch = align(extra + extraBytes, 64);
  try { pool.ensure(scratch + 64); } catch (e) { if (e instanceof RangeError) return undefined; throw e; }
  if (resident === undefined) new Float64Array(pool.memory.buffer, a, A.length).set(A);
  const ok = steps(a, extra, (op, args) => pool.run(op, args, 0, scratch));
  if (ok && resident === undefined) A.set(new Float64Array(pool.memory.buffer, a, A.length));
  return ok;
}

/** Zeroes the strict upper triangle of the n×n A at byte address a of the pool's memory. */
function zeroUpper(pool: WasmPool, a: number, n: number): void {
  const m = new Float64Array(pool.memory.buffer, a, n * n);
  for (let i = 0; i < n; i++) m.fill(0, i * n + i + 1, (i + 1) * n);
}

/** S[K,K] += xᵀx in float64 on the upper triangle (x float32 [N, K]); undefined when it does not fit wasm32 memory. */
function wasmGram(pool: WasmPool, res: Resident, x: Float32Array, S: Float64Array, N: number, K: number): boolean | undefined {
  const xBytes = align(x.byteLength, 64);
  return onSquare(pool, res, S, xBytes + K * N * 8, (s, extra, run) => {
    const xAt = res.addressOf(x) ?? extra;
    if (xAt === extra) new Float32Array(pool.memory.buffer, extra, x.length).set(x);
    run(OP.GRAM_TRANS, [xAt, s, extra + xBytes, N, K]);
    run(OP.GRAM, [xAt, s, extra + xBytes, N, K]);
    return true;
  });
}

function wasmCholesky(pool: WasmPool, res: Resident, A: Float64Array, n: number): boolean {
  const ok = onSquare(pool, res, A, 4, (a, status, run) => {
    new Int32Array(pool.memory.buffer, status, 1)[0] = 1;
    for (let k0 = 0; k0 < n; k0 += LA_BLOCK) {
      const b = Math.min(LA_BLOCK, n - k0);
      run(OP.CHOL_DIAG, [a, n, k0, b, status]);
      if (new Int32Array(pool.memory.buffer, status, 1)[0] !== 1) return false;
      if (k0 + b < n) { run(OP.CHOL_PANEL, [a, n, k0, b]); run(OP.CHOL_UPDATE, [a, n, k0, b]); }
    }
    zeroUpper(pool, a, n);
    return true;
  });
  return ok ?? jsLinalg.cholesky(A, n);
}

function wasmTriangularInverse(pool: WasmPool, res: Resident, L: Float64Array, n: number): void {
  const ok = onSquare(pool, res, L, 2 * n * LA_BLOCK * 8, (a, T, run) => {
    zeroUpper(pool, a, n);
    for (let j0 = Math.floor((n - 1) / LA_BLOCK) * LA_BLOCK; j0 >= 0; j0 -= LA_BLOCK) {
      const jb = Math.min(LA_BLOCK, n - j0);
      if (j0 + jb < n) for (const op of [OP.TRI_TRANS, OP.TRI_TRMM, OP.TRI_TRSM]) run(op, [a, n, j0, jb, T]);
      run(OP.TRI_DIAG, [a, n, j0, jb]);
    }
    return true;
  });
  if (ok === undefined) jsLinalg.triangularInverse(L, n);
}

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
    gram: (x, S, n, K) => { if (wasmGram(pool, resident, x, S, n, K) === undefined) jsLinalg.gram(x, S, n, K); },
    gemmF64: (x, w, y, M, N, K) => { const f = frame(); f.run(OP.GEMM_F64, [f.input(x), f.input(w), f.output(y), M, N, K]); },
    cholesky: (A, n) => wasmCholesky(pool, resident, A, n),
    triangularInverse: (L, n) => wasmTriangularInverse(pool, resident, L, n),
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
