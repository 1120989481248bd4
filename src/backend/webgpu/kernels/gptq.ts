/// <reference types="@webgpu/types" />
/**
 * GPTQ's float32 solve on the device (gptq.wgsl.ts): `gptqSolve` runs the kernels for one layer and
 * reads back codes, q, the dynamic groups' parameters and the loss. Buffers that cannot be one storage
 * binding are refused with their size before anything runs (GpuDevice.fits).
 */
import { MAX_GROUPS_X, type GpuDevice } from '../device.js';
import type { GptqSolveInput, GptqSolveOutput } from '../../backend.js';
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

export async function gptqSolve(gpu: GpuDevice, p: GptqSolveInput): Promise<GptqSolveOutput | undefined> {
  const { rows, cols: n, blocksize, maxq } = p;
  const what = (x: string) => `gptq --device-solve: ${x}`;
  // every buffer checked against one binding before anything is made or runs
  const sq = `[${n}, ${n}]`, wShape = `[${rows}, ${n}]`;
  for (const [name, bytes] of [[`H ${sq}`, n * n * 4], [`its inverse factor ${sq}`, n * n * 4], [`W ${wShape}`, rows * n * 4],
    [`the codes ${wShape}`, rows * n * 4], [`the block errors [${rows}, ${blocksize}]`, rows * blocksize * 4]] as const) gpu.fits(what(name), bytes);
  if (tiles(n) > MAX_GROUPS_X || tiles(rows) > MAX_GROUPS_X) throw new RangeError(what(`${rows}x${n} is beyond the dispatch grid`));
  const pl = gpu.pipelines, fast = gpu.caps.kernels === 'fast';
  const made: GPUBuffer[] = [];
  const buf = (name: string, bytes: number, data?: ArrayBufferView): GPUBuffer => {
    const b = data ? gpu.upload(what(name), data) : gpu.storage(what(name), bytes);
    made.push(b);
    return b;
  };
  try {
    // J·H·J: the flat array reversed in place on the device (no host pass over n² entries)
    const A = buf('H', 0, p.H), X = buf('inverse factor', n * n * 4), status = buf('status', 4, new Uint32Array(1));
    const half = Math.floor((n * n) / 2);
    gpu.dispatch(pl.get('gptq_reverse', () => REVERSE_WGSL), [n * n], [A], rowGroups(half));
    if (fast) {
      if (!(await factorBlocked(gpu, n, A, X, status, buf))) return undefined;
    } else if (!(await factorReference(gpu, n, A, X, status))) return undefined;
    for (const b of made.splice(0)) if (b !== X) gpu.destroy(b);
    made.push(X);

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
