/// <reference types="@webgpu/types" />
/**
 * GPTQ's float32 solve on the device (gptq.wgsl.ts): `gptqFactor` makes Hinv of one H and keeps it on the device
 * (for every linear that reads that input), `gptqSolve` runs the kernels for one layer against it and reads back
 * codes, q, the dynamic groups' parameters and the loss. Buffers that cannot be one storage binding are refused
 * with their size before anything runs (GpuDevice.fits).
 */
import { MAX_GROUPS_X, type GpuDevice } from '../device.js';
import type { GptqDeviceFactor, GptqSolveInput, GptqSolveOutput } from '../../backend.js';
import {
  CHOL_COL_WGSL, CHOL_PANEL_WGSL, CHOL_SYRK_WGSL, CHOL_UPDATE_WGSL, GPTQ_BLOCK_WGSL, GPTQ_LAZY_TILED_WGSL, GPTQ_LAZY_WGSL, GPTQ_RANGE_WGSL, LAZY_TILE, NB,
  PANEL_WG, REVERSE_WGSL, ROW_WG, TILE, TRI_INIT_WGSL, TRI_PANEL_WGSL, TRI_SCALE_WGSL, TRI_UPDATE_WGSL, TRI_WG,
} from './gptq.wgsl.js';

/** Workgroups for `n` invocations of ROW_WG, folded into x·y like GpuDevice.dispatch does (the kernels rebuild the index). */
function rowGroups(n: number): number { return Math.max(1, Math.ceil(n / ROW_WG)); }
function tiles(n: number): number { return Math.max(1, Math.ceil(n / TILE)); }

/**
 * The reference factorization (LOWBIT_WEBGPU_KERNELS=reference): J·H·J = L·Lᵀ in place in A, one column per
 * pivot dispatch and one rank-1 update, then X = L⁻¹ one row at a time; 4n dispatches. False when a pivot failed.
 */
async function factorReference(gpu: GpuDevice, n: number, A: GPUBuffer, X: GPUBuffer, status: GPUBuffer): Promise<boolean> {
  const pl = gpu.pipelines;
  const col = pl.get('gptq_chol_col', () => CHOL_COL_WGSL), upd = pl.get('gptq_chol_update', () => CHOL_UPDATE_WGSL);
  for (let j = 0; j < n; j++) {
    gpu.dispatch(col, [n, j], [A, status], 1);
    const m = n - j - 1;
    if (m > 0) gpu.dispatch(upd, [n, j], [A], (tiles(m) * (tiles(m) + 1)) / 2);
  }
  if (new Uint32Array(await gpu.read(status, 4))[0] !== 0) return false;
  gpu.dispatch(pl.get('gptq_tri_init', () => TRI_INIT_WGSL), [n], [X], rowGroups(n));
  const scale = pl.get('gptq_tri_scale', () => TRI_SCALE_WGSL), triUpd = pl.get('gptq_tri_update', () => TRI_UPDATE_WGSL);
  for (let k = 0; k < n; k++) {
    gpu.dispatch(scale, [n, k], [A, X], rowGroups(k + 1));
    if (k + 1 < n) gpu.dispatch(triUpd, [n, k], [A, X], [tiles(k + 1), tiles(n - k - 1)]);
  }
  return true;
}

/**
 * The blocked factorization (the fast kernels): per panel of NB columns, one dispatch factors its diagonal block
 * and solves the rows below, one updates the trailing lower triangle, and after all panels one dispatch per
 * panel of rows inverts L: 3n/NB dispatches, each entry's float operations in the reference's order. The
 * panels' diagonal factors live in D (A keeps the unfactored diagonal blocks). False when a pivot failed.
 */
async function factorBlocked(gpu: GpuDevice, n: number, A: GPUBuffer, X: GPUBuffer, status: GPUBuffer,
  buf: (name: string, bytes: number) => GPUBuffer): Promise<boolean> {
  const pl = gpu.pipelines;
  const panels = Math.ceil(n / NB), D = buf('diagonal factors', panels * NB * NB * 4);
  const panel = pl.get('gptq_chol_panel', () => CHOL_PANEL_WGSL), syrk = pl.get('gptq_chol_syrk', () => CHOL_SYRK_WGSL);
  const nbTiles = (m: number) => Math.ceil(m / NB);
  for (let b = 0; b < panels; b++) {
    const k0 = b * NB, nb = Math.min(NB, n - k0), start = k0 + nb, m = n - start;
    gpu.dispatch(panel, [n, k0, nb, b], [A, D, status], Math.max(1, Math.ceil(m / PANEL_WG)));
    if (m > 0) gpu.dispatch(syrk, [n, k0, nb, start], [A], (nbTiles(m) * (nbTiles(m) + 1)) / 2);
  }
  if (new Uint32Array(await gpu.read(status, 4))[0] !== 0) return false;
  const tri = pl.get('gptq_tri_panel', () => TRI_PANEL_WGSL);
  for (let b = 0; b < panels; b++) {
    const k0 = b * NB, nb = Math.min(NB, n - k0);
    gpu.dispatch(tri, [n, k0, nb, b], [A, D, X], Math.ceil((k0 + nb) / TRI_WG));
  }
  return true;
}

/** A factor made by gptqFactor on one device: L⁻¹ of J·H·J (X), until released. */
class DeviceFactor implements GptqDeviceFactor {
  private released = false;
  constructor(private readonly gpu: GpuDevice, readonly cols: number, private readonly X: GPUBuffer) {}
  /** X, checked: this device's, not released, of `cols` columns */
  bufferFor(gpu: GpuDevice, cols: number, what: (x: string) => string): GPUBuffer {
    if (gpu !== this.gpu) throw new Error(what('the factor belongs to another device'));
    if (this.released) throw new Error(what('the factor was released'));
    if (cols !== this.cols) throw new RangeError(what(`a factor of ${this.cols} columns for a layer of ${cols}`));
    return this.X;
  }
  release(): void {
    if (this.released) return;
    this.released = true;
    this.gpu.destroy(this.X);
  }
}

const what = (x: string) => `gptq --device-solve: ${x}`;

/** Makes named buffers (uploaded, or empty of `bytes`), each recorded in `made` for the caller to destroy. */
function allocator(gpu: GpuDevice, made: GPUBuffer[]): (name: string, bytes: number, data?: ArrayBufferView) => GPUBuffer {
  return (name, bytes, data) => {
    const b = data ? gpu.upload(what(name), data) : gpu.storage(what(name), bytes);
    made.push(b);
    return b;
  };
}

/**
 * Hinv of H [n, n] (processing order, damped, float32) on the device: H uploaded, reversed in place into J·H·J
 * (REVERSE_WGSL), factored and inverted (blocked with the fast kernels, else the reference ones) into X, which the
 * factor keeps. Undefined when a pivot fails (not positive definite in float32). Buffers that cannot be one
 * binding are refused with their size before anything runs: H's, the factor's, and `solve`'s (the first layer
 * to be solved against it).
 */
export async function gptqFactor(gpu: GpuDevice, H: Float32Array, n: number, solve?: { rows: number; blocksize: number }): Promise<GptqDeviceFactor | undefined> {
  const sq = `[${n}, ${n}]`;
  if (H.length !== n * n) throw new RangeError(what(`H has ${H.length} values, expected ${sq}`));
  for (const name of [`H ${sq}`, `its inverse factor ${sq}`]) gpu.fits(what(name), n * n * 4);
  if (tiles(n) > MAX_GROUPS_X) throw new RangeError(what(`${n} columns are beyond the dispatch grid`));
  if (solve) checkSolve(gpu, solve.rows, n, solve.blocksize);
  const made: GPUBuffer[] = [], buf = allocator(gpu, made);
  let X: GPUBuffer | undefined;
  try {
    // J·H·J: the flat array reversed in place on the device (no host pass over n² entries)
    const A = buf('H', 0, H), status = buf('status', 4, new Uint32Array(1));
    X = gpu.storage(what('inverse factor'), n * n * 4);
    gpu.dispatch(gpu.pipelines.get('gptq_reverse', () => REVERSE_WGSL), [n * n], [A], rowGroups(Math.floor((n * n) / 2)));
    const ok = gpu.caps.kernels === 'fast' ? await factorBlocked(gpu, n, A, X, status, buf) : await factorReference(gpu, n, A, X, status);
    if (!ok) return undefined;
    const f = new DeviceFactor(gpu, n, X);
    X = undefined;
    return f;
  } finally {
    gpu.destroy(...made);
    if (X) gpu.destroy(X);
  }
}

/** A solve's buffers, each checked against one binding, and its dispatch grid: before anything is made or runs. */
function checkSolve(gpu: GpuDevice, rows: number, n: number, blocksize: number): void {
  const wShape = `[${rows}, ${n}]`;
  for (const [name, bytes] of [[`W ${wShape}`, rows * n * 4], [`the codes ${wShape}`, rows * n * 4],
    [`the block errors [${rows}, ${blocksize}]`, rows * blocksize * 4]] as const) gpu.fits(what(name), bytes);
  if (tiles(rows) > MAX_GROUPS_X) throw new RangeError(what(`${rows}x${n} is beyond the dispatch grid`));
}

/** One layer's solve against a factor from gptqFactor: the column blocks, their lazy updates, the outputs read back. */
export async function gptqSolve(gpu: GpuDevice, p: GptqSolveInput, factor: GptqDeviceFactor): Promise<GptqSolveOutput> {
  const { rows, cols: n, blocksize, maxq } = p;
  if (!(factor instanceof DeviceFactor)) throw new TypeError(what('the factor is not a WebGPU one'));
  const X = factor.bufferFor(gpu, n, what);
  checkSolve(gpu, rows, n, blocksize);
  const pl = gpu.pipelines, fast = gpu.caps.kernels === 'fast';
  const made: GPUBuffer[] = [], buf = allocator(gpu, made);
  try {
    const W = buf('W', 0, p.W), group = buf('groups', 0, Uint32Array.from(p.group));
    const zoff = p.scale.length, sz = new Float32Array(2 * zoff);
    sz.set(p.scale); sz.set(p.zero, zoff);
    const szBuf = buf('scales and zeros', 0, sz);
    const codes = buf('codes', rows * n * 4), Q = buf('q', rows * n * 4), E = buf('block errors', rows * blocksize * 4);
    const loss = buf('loss', 0, new Float32Array(rows)), range = buf('group range', 2 * rows * 4);
    const blockK = pl.get('gptq_block', () => GPTQ_BLOCK_WGSL);
    const lazyK = fast ? pl.get('gptq_lazy_tiled', () => GPTQ_LAZY_TILED_WGSL) : pl.get('gptq_lazy', () => GPTQ_LAZY_WGSL);
    const lazyTiles = (m: number) => (fast ? Math.ceil(m / LAZY_TILE) : tiles(m));
    const rangeK = pl.get('gptq_range', () => GPTQ_RANGE_WGSL);
    const scaleOut = p.scale.slice(), zeroOut = p.zero.slice();
    const dyn = p.dynamic;
    for (let i1 = 0; i1 < n; i1 += blocksize) {
      const i2 = Math.min(i1 + blocksize, n), count = i2 - i1;
      if (dyn) {
        for (let c = i1; c < i2; c++) {
          const g = dyn.starts[c]!;
          if (g < 0) continue;
          gpu.dispatch(rangeK, [rows, n, c, Math.min(dyn.size, n - c)], [W, range], rowGroups(rows));
          const mm = new Float32Array(await gpu.read(range, 2 * rows * 4));
          const prm = dyn.params(mm.subarray(0, rows), mm.subarray(rows));
          scaleOut.set(prm.scale, g * rows); zeroOut.set(prm.zero, g * rows);
          gpu.write(szBuf, prm.scale, g * rows * 4); gpu.write(szBuf, prm.zero, (zoff + g * rows) * 4);
        }
      }
      gpu.dispatch(blockK, [rows, n, n - 1, i1, count, maxq, 0, zoff], [W, X, group, szBuf, codes, Q, E, loss], rowGroups(rows));
      if (i2 < n) gpu.dispatch(lazyK, [rows, n, n - 1, i1, count, i2], [W, X, E], [lazyTiles(n - i2), lazyTiles(rows)]);
    }
    const codes32 = new Uint32Array(await gpu.read(codes, rows * n * 4));
    const q = new Float32Array(await gpu.read(Q, rows * n * 4));
    const rowLoss = new Float32Array(await gpu.read(loss, rows * 4));
    let total = 0;
    for (const v of rowLoss) total += v;
    return { codes: Uint8Array.from(codes32), Q: q, scale: scaleOut, zero: zeroOut, loss: total };
  } finally {
    gpu.destroy(...made);
  }
}
