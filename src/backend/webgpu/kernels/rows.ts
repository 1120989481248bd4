/// <reference types="@webgpu/types" />
/** Pipeline keys and dispatch of the row-wise family (rows.wgsl.ts): rmsnorm, its backward and quantizeRows. */
import { f32Bits, type GpuDevice } from '../device.js';
import type { WeightDtype } from './common.wgsl.js';
import { QUANTIZE_ROWS_WGSL, rmsnormBackwardWgsl, rmsnormWgsl } from './rows.wgsl.js';

export function rmsnorm(gpu: GpuDevice, x: GPUBuffer, gamma: GPUBuffer, gammaDtype: WeightDtype, y: GPUBuffer, rows: number, D: number, eps: number): void {
  const pipe = gpu.pipelines.get(`rmsnorm_${gammaDtype}`, () => rmsnormWgsl(gammaDtype));
  gpu.dispatch(pipe, [rows, D, f32Bits(eps)], [x, y, gamma], rows);
}

export function quantizeRows(gpu: GpuDevice, x: GPUBuffer, y: GPUBuffer, rows: number, D: number, bits: number): void {
  const pipe = gpu.pipelines.get('quantize_rows', () => QUANTIZE_ROWS_WGSL);
  gpu.dispatch(pipe, [rows, D, f32Bits(2 ** (bits - 1) - 1)], [x, y], rows);
}

export function rmsnormBackward(gpu: GpuDevice, x: GPUBuffer, gamma: GPUBuffer, gammaDtype: WeightDtype, dy: GPUBuffer, dx: GPUBuffer, rows: number, D: number, eps: number): void {
  const pipe = gpu.pipelines.get(`rmsnorm_backward_${gammaDtype}`, () => rmsnormBackwardWgsl(gammaDtype));
  gpu.dispatch(pipe, [rows, D, f32Bits(eps)], [x, dx, gamma, dy], rows);
}
