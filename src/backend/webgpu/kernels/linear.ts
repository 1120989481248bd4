/// <reference types="@webgpu/types" />
/** Pipeline keys and dispatch of the linear family (linear.wgsl.ts). */
import type { GpuDevice } from '../device.js';
import type { WeightDtype } from './common.wgsl.js';
import { LINEAR_AWQ_WGSL, LINEAR_GPTQ_WGSL, LINEAR_TILE, linearDenseWgsl } from './linear.wgsl.js';

export interface LinearShape { M: number; K: number; ldy: number }

/** y[:, n0..n0+N) = x · panelᵀ for a dense weight panel of N rows. */
export function linearDense(gpu: GpuDevice, dtype: WeightDtype, x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, s: LinearShape, N: number, n0: number): void {
  const pipe = gpu.pipelines.get(`linear_${dtype}`, () => linearDenseWgsl(dtype));
  gpu.dispatch(pipe, [s.M, N, s.K, s.ldy, n0, 0, 0, 0, 0], [x, y, w], groups(s.M, N));
}

export interface GptqBuffers { qweight: GPUBuffer; qzeros: GPUBuffer; scales: GPUBuffer; gIdx: GPUBuffer; bits: number; groups: number; zw: number }

export function linearGptq(gpu: GpuDevice, x: GPUBuffer, q: GptqBuffers, y: GPUBuffer, s: LinearShape, N: number): void {
  const pipe = gpu.pipelines.get('linear_gptq', () => LINEAR_GPTQ_WGSL);
  gpu.dispatch(pipe, [s.M, N, s.K, s.ldy, 0, q.bits, q.groups, q.zw, 0], [x, y, q.qweight, q.qzeros, q.scales, q.gIdx], groups(s.M, N));
}

export interface AwqBuffers { qweight: GPUBuffer; qzeros: GPUBuffer; scales: GPUBuffer; groupSize: number }

export function linearAwq(gpu: GpuDevice, x: GPUBuffer, q: AwqBuffers, y: GPUBuffer, s: LinearShape, N: number): void {
  const pipe = gpu.pipelines.get('linear_awq', () => LINEAR_AWQ_WGSL);
  gpu.dispatch(pipe, [s.M, N, s.K, s.ldy, 0, 4, 0, 0, q.groupSize], [x, y, q.qweight, q.qzeros, q.scales], groups(s.M, N));
}

function groups(M: number, N: number): [number, number] {
  return [Math.ceil(N / LINEAR_TILE), Math.ceil(M / LINEAR_TILE)];
}
