/// <reference types="@webgpu/types" />
/** Pipeline keys and dispatch of the backward matrix products (gemmT.wgsl.ts): linearT and matmulTN, fast or reference. */
import type { GpuDevice } from '../device.js';
import type { GptqBuffers, AwqBuffers } from './linear.js';
import { GEMMT_TILE, MATMUL_TN_WGSL, linearTFastWgsl, linearTWgsl, matmulTNFastWgsl, type LinearTVariant } from './gemmT.wgsl.js';
import { tileFor } from './linear.js';
import { tileKey } from './linearFast.wgsl.js';

/** dy[M, ldy] and the output dx[M, K]. */
export interface LinearTShape { M: number; K: number; ldy: number }

/**
 * dx (+)= dy[:, n0..n0+N) · panel for a dense weight panel of N rows ([N, K], stored dtype);
 * `accumulate` adds into dx (every part after the first).
 */
export function linearTDense(gpu: GpuDevice, dtype: 'f32' | 'f16' | 'bf16', dy: GPUBuffer, w: GPUBuffer, dx: GPUBuffer, s: LinearTShape, N: number, n0: number, accumulate: boolean): void {
  run(gpu, dtype, [s.M, N, s.K, s.ldy, n0, 0, 0, 0, 0, accumulate ? 1 : 0], [dy, dx, w], s);
}

export function linearTGptq(gpu: GpuDevice, dy: GPUBuffer, q: GptqBuffers, dx: GPUBuffer, s: LinearTShape, N: number): void {
  run(gpu, 'gptq', [s.M, N, s.K, s.ldy, 0, q.bits, q.groups, q.zw, 0, 0], [dy, dx, q.qweight, q.qzeros, q.scales, q.gIdx], s);
}

export function linearTAwq(gpu: GpuDevice, dy: GPUBuffer, q: AwqBuffers, dx: GPUBuffer, s: LinearTShape, N: number): void {
  run(gpu, 'awq', [s.M, N, s.K, s.ldy, 0, 4, 0, 0, q.groupSize, 0], [dy, dx, q.qweight, q.qzeros, q.scales], s);
}

/** out[N, K] = a[M, N]ᵀ · b[M, K], float32. */
export function matmulTN(gpu: GpuDevice, a: GPUBuffer, b: GPUBuffer, out: GPUBuffer, M: number, N: number, K: number): void {
  const params = [M, N, K, 0, 0, 0, 0, 0, 0, 0];
  if (gpu.caps.kernels === 'fast') {
    const tile = tileFor(gpu, N, K);
    const pipe = gpu.pipelines.get(`matmul_tn_${tileKey(tile)}`, () => matmulTNFastWgsl(tile));
    gpu.dispatch(pipe, params, [a, out, b], [Math.ceil(K / tile.bn), Math.ceil(N / tile.bm)]);
    return;
  }
  const pipe = gpu.pipelines.get('matmul_tn', () => MATMUL_TN_WGSL);
  gpu.dispatch(pipe, params, [a, out, b], [Math.ceil(K / GEMMT_TILE), Math.ceil(N / GEMMT_TILE)]);
}

/** linearT through the fast tiled GEMM (output [M, K]) or the reference, by the device's kernel choice. */
function run(gpu: GpuDevice, v: LinearTVariant, params: number[], bufs: GPUBuffer[], s: LinearTShape): void {
  if (gpu.caps.kernels === 'fast') {
    const tile = tileFor(gpu, s.M, s.K);
    const pipe = gpu.pipelines.get(`linear_t_${v}_${tileKey(tile)}`, () => linearTFastWgsl(v, tile));
    gpu.dispatch(pipe, params, bufs, [Math.ceil(s.K / tile.bn), Math.ceil(s.M / tile.bm)]);
    return;
  }
  const pipe = gpu.pipelines.get(`linear_t_${v}`, () => linearTWgsl(v));
  gpu.dispatch(pipe, params, bufs, [Math.ceil(s.K / GEMMT_TILE), Math.ceil(s.M / GEMMT_TILE)]);
}
