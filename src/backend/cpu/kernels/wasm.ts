/**
 * The 'wasm' provider: kernels.c compiled to WebAssembly with 128-bit SIMD (build/lowbit_kernels.wasm,
 * made by scripts/build-wasm.mjs), run on a pool of worker_threads over one shared memory
 * (../wasm/pool.ts). Each call copies its arrays into the shared memory, runs, and copies the outputs
 * back. The float64 linear algebra comes from the js references (jsLinalg.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CpuKernels } from './kernels.js';
import { buildStatusReason, checked } from './provider.js';
import { PACKAGE_ROOT } from '../../../paths.js';
import { jsLinalg } from './jsLinalg.js';
import { OP, WA, WasmPool, align, type WasmModule } from '../wasm/pool.js';

export type Loaded = { ok: true; kernels: CpuKernels; pool: WasmPool } | { ok: false; reason: string };

let compiled: WasmModule | undefined;
let compileError: string | undefined;
const pools = new Map<number, WasmPool>();

function compile(): WasmModule | undefined {
  if (compiled || compileError) return compiled;
  try {
    const root = PACKAGE_ROOT;
    const file = join(root, 'build', 'lowbit_kernels.wasm');
    if (!existsSync(file)) { compileError = buildStatusReason(root, 'wasm'); return undefined; }
    compiled = new WA.Module(readFileSync(file));
  } catch (e) {
    compileError = `this engine cannot load build/lowbit_kernels.wasm (needs SIMD, threads): ${(e as Error).message}`;
  }
  return compiled;
}

type Arr = Float32Array | Uint16Array | Int32Array | Float64Array;

/** Lays out one call's arrays from pool.dataBase upwards, copies inputs in and outputs back. */
class Frame {
  private top: number;
  private readonly outs: { addr: number; dst: Arr }[] = [];
  private readonly ins: { addr: number; src: Arr }[] = [];
  constructor(private readonly pool: WasmPool) { this.top = pool.dataBase; }
  private place(a: Arr): number {
    const addr = align(this.top, 16);
    this.top = addr + a.byteLength;
    if (this.top > 0xffff0000) throw new RangeError(`wasm kernels: arrays of this call exceed the 4 GiB of wasm32 memory`);
    return addr;
  }
  input(a: Arr): number { const addr = this.place(a); this.ins.push({ addr, src: a }); return addr; }
  output(a: Arr): number { const addr = this.place(a); this.outs.push({ addr, dst: a }); return addr; }
  inout(a: Arr): number { const addr = this.input(a); this.outs.push({ addr, dst: a }); return addr; }
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
  const gemmAny = (x: Float32Array, w: Float32Array | Uint16Array, code: number, y: Float32Array, M: number, N: number, K: number): void => {
    const f = new Frame(pool);
    f.run(OP.GEMM, [f.input(x), f.input(w), f.output(y), M, N, K, code]);
  };
  return {
    name: 'wasm',
    gemm: (x, w, y, M, N, K) => gemmAny(x, w, 0, y, M, N, K),
    gemmHalf: (x, w, dtype, y, M, N, K) => gemmAny(x, w, W_DTYPE[dtype], y, M, N, K),
    rmsnorm: (x, g, y, M, D, eps) => { const f = new Frame(pool); f.run(OP.RMSNORM, [f.input(x), f.input(g), f.output(y), M, D], eps); },
    rope: (x, T, H, hd, c, s) => { const f = new Frame(pool); f.run(OP.ROPE, [f.inout(x), T, H, hd, f.input(c), f.input(s)]); },
    attention: (q, k, v, o, T, S, off, H, KVH, hd) => {
      const f = new Frame(pool);
      f.run(OP.ATTENTION, [f.input(q), f.input(k), f.input(v), f.output(o), T, S, off, H, KVH, hd]);
    },
    siluMul: (g, u, o, n) => { const f = new Frame(pool); f.run(OP.SILU_MUL, [f.input(g), f.input(u), f.output(o), n]); },
    nll: (l, t, o, T, V) => { const f = new Frame(pool); f.run(OP.NLL, [f.input(l), f.input(t), f.output(o), T, V]); },
    ...jsLinalg,
  };
}

/** The wasm provider with `threads` threads (the main thread and threads − 1 workers), or why not. */
export function loadWasmKernels(threads = 1): Loaded {
  const module = compile();
  if (!module) return { ok: false, reason: compileError ?? 'unknown' };
  const n = Math.max(1, Math.floor(threads));
  let pool = pools.get(n);
  if (!pool || pool.brokenReason) {
    try { pool = new WasmPool(module, n); } catch (e) { return { ok: false, reason: `cannot start the wasm pool: ${(e as Error).message}` }; }
    pools.set(n, pool);
  }
  return { ok: true, kernels: checked(makeKernels(pool)), pool };
}

/** A fresh pool that is not shared with other callers (tests that break their pool on purpose). */
export function loadPrivateWasmKernels(threads: number): Loaded {
  const module = compile();
  if (!module) return { ok: false, reason: compileError ?? 'unknown' };
  const pool = new WasmPool(module, threads);
  return { ok: true, kernels: checked(makeKernels(pool)), pool };
}
