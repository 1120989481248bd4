/// <reference types="@webgpu/types" />
/**
 * Pipeline keys and dispatch of the linear family (linear.wgsl.ts, linearFast.wgsl.ts). The body is
 * chosen per call from the shape and the backend's kernel choice (capabilities: kernels): the
 * reference tile, or with the fast kernels the GEMV for M ≤ GEMV_MAX_M and otherwise the tiled
 * kernel, 128 rows or columns per tile where the shape has them and workgroup memory allows, its K loop
 * the device's GEMM design (LOWBIT_WEBGPU_GEMM; every design gives the same bits).
 */
import type { GpuDevice } from '../device.js';
import type { WeightDtype } from './common.wgsl.js';
import { AWQ_W_AT, GPTQ_W_AT, LINEAR_TILE, REFERENCE_VARIANT, denseWAt, linearWithDecoder, variantKey, type LinearVariant } from './linear.wgsl.js';
import { GEMV_MAX_M, GEMV_ROWS, tileBytes, type ShuffleLanes, type TileShape } from './linearFast.wgsl.js';
import type { GemmChoice } from '../capabilities.js';

export interface LinearShape { M: number; K: number; ldy: number }

/** The body for y[M, N] = x[M, K]·Wᵀ on this device. */
export function linearVariant(gpu: GpuDevice, M: number, N: number, K: number): LinearVariant {
  if (gpu.caps.kernels === 'reference') return REFERENCE_VARIANT;
  if (M <= GEMV_MAX_M) return { body: 'gemv' };
  return { body: 'tiled', tile: tileFor(gpu, M, N), x4: K % 4 === 0 };
}

/**
 * The K loop of each GEMM design (capabilities: GEMM_CHOICES): its pipeline and K step. `double` takes
 * BK 16 where two 128×128 slices fit the workgroup memory (32 KiB: lavapipe, most GPUs), else BK 8.
 * `shuffle` steps BK 16 where a 64×64 tile's buffers and flags fit (else 8), with the device's lane group up to
 * BK (tileFor; caps.subgroups.shuffleLanes).
 */
export function gemmDesign(choice: GemmChoice, wgBytes: number): Pick<TileShape, 'bk' | 'pipe'> {
  switch (choice) {
    case 'tiled': return { bk: 16, pipe: 'single' };
    case 'shuffle': return { bk: tileBytes({ bm: 64, bn: 64, bk: 16, pipe: 'shuffle' }) <= wgBytes ? 16 : 8, pipe: 'shuffle' };
    case 'tiled8': return { bk: 8, pipe: 'single' };
    case 'prefetch': return { bk: 16, pipe: 'prefetch' };
    case 'double': return { bk: tileBytes({ bm: 128, bn: 128, bk: 16, pipe: 'double' }) <= wgBytes ? 16 : 8, pipe: 'double' };
  }
}

/**
 * The fast tiled GEMM's tile for R×C outputs in the device's GEMM design: 128 along a side longer than
 * 64 where a 128×128 tile's workgroup memory fits.
 */
export function tileFor(gpu: GpuDevice, R: number, C: number): TileShape {
  const wgBytes = gpu.caps.limits.maxComputeWorkgroupStorageSize ?? 16384;
  const d = { ...gemmDesign(gpu.caps.gemm, wgBytes), ...(gpu.caps.gemm === 'shuffle' ? { lanes: shuffleLanes(gpu, wgBytes) } : {}) };
  const big = (n: number) => n > 64 && tileBytes({ bm: 128, bn: 128, ...d }) <= wgBytes ? 128 : 64;
  return { bm: big(R), bn: big(C), ...d };
}

/** The `shuffle` design's lane group: the device's (4 without one), at most its K step. */
function shuffleLanes(gpu: GpuDevice, wgBytes: number): ShuffleLanes {
  return Math.min(gpu.caps.subgroups?.shuffleLanes ?? 4, gemmDesign('shuffle', wgBytes).bk) as ShuffleLanes;
}

/** y[:, n0..n0+N) = x · panelᵀ for a dense weight panel of N rows. */
export function linearDense(gpu: GpuDevice, dtype: WeightDtype, x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, s: LinearShape, N: number, n0: number): void {
  run(gpu, dtype, () => denseWAt(dtype), [s.M, N, s.K, s.ldy, n0, 0, 0, 0, 0], [x, y, w], s.M, N, s.K);
}

export interface GptqBuffers { qweight: GPUBuffer; qzeros: GPUBuffer; scales: GPUBuffer; gIdx: GPUBuffer; bits: number; groups: number; zw: number }

export function linearGptq(gpu: GpuDevice, x: GPUBuffer, q: GptqBuffers, y: GPUBuffer, s: LinearShape, N: number): void {
  run(gpu, 'gptq', () => GPTQ_W_AT, [s.M, N, s.K, s.ldy, 0, q.bits, q.groups, q.zw, 0], [x, y, q.qweight, q.qzeros, q.scales, q.gIdx], s.M, N, s.K);
}

export interface AwqBuffers { qweight: GPUBuffer; qzeros: GPUBuffer; scales: GPUBuffer; groupSize: number }

export function linearAwq(gpu: GpuDevice, x: GPUBuffer, q: AwqBuffers, y: GPUBuffer, s: LinearShape, N: number): void {
  run(gpu, 'awq', () => AWQ_W_AT, [s.M, N, s.K, s.ldy, 0, 4, 0, 0, q.groupSize], [x, y, q.qweight, q.qzeros, q.scales], s.M, N, s.K);
}

/**
 * Runs the linear kernel of decoder `name` (its WGSL from `wAt`, composed by linearWithDecoder) with
 * the body linearVariant picks: params [M, N, K, ldy, n0, bits, groups, zw, gsize], buffers x, y,
 * then the decoder's from binding 3. Exported for decoders defined outside this file.
 */
export function runLinear(gpu: GpuDevice, name: string, wAt: () => string, params: number[], bufs: GPUBuffer[], M: number, N: number, K: number, variant = linearVariant(gpu, M, N, K)): void {
  const key = `linear_${name}_${variantKey(variant)}`;
  const pipe = gpu.pipelines.get(key, () => linearWithDecoder(wAt(), variant));
  gpu.dispatch(pipe, params, bufs, groups(variant, M, N));
}
const run = runLinear;

function groups(v: LinearVariant, M: number, N: number): number | [number, number] {
  if (v.body === 'gemv') return Math.ceil(N / GEMV_ROWS);
  if (v.body === 'tiled') return [Math.ceil(N / v.tile.bn), Math.ceil(M / v.tile.bm)];
  return [Math.ceil(N / LINEAR_TILE), Math.ceil(M / LINEAR_TILE)];
}
