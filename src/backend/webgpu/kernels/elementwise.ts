/// <reference types="@webgpu/types" />
/** Pipeline keys and dispatch of the element-wise family (elementwise.wgsl.ts). */
import { f32Bits, type GpuDevice } from '../device.js';
import type { WeightDtype } from './common.wgsl.js';
import { ELEM_WG, ROPE_WGSL, SCALE_WGSL, SILU_MUL_BACKWARD_WGSL, binaryWgsl, embeddingWgsl, type BinaryOp } from './elementwise.wgsl.js';

export function binary(gpu: GpuDevice, op: BinaryOp, a: GPUBuffer, b: GPUBuffer, y: GPUBuffer, n: number): void {
  const pipe = gpu.pipelines.get(op, () => binaryWgsl(op));
  gpu.dispatch(pipe, [n], [a, b, y], Math.ceil(n / ELEM_WG));
}

export function rope(gpu: GpuDevice, x: GPUBuffer, cos: GPUBuffer, sin: GPUBuffer, y: GPUBuffer, T: number, H: number, headDim: number): void {
  const half = headDim >> 1;
  const pipe = gpu.pipelines.get('rope', () => ROPE_WGSL);
  gpu.dispatch(pipe, [T, H, half], [x, cos, sin, y], Math.ceil((T * H * half) / ELEM_WG));
}

/** Gathers the rows of one part of a table (rows r0..r0+rows) for the ids that fall in it. */
export function embeddingPart(gpu: GpuDevice, dtype: WeightDtype, ids: GPUBuffer, table: GPUBuffer, y: GPUBuffer, n: number, D: number, r0: number, rows: number): void {
  const pipe = gpu.pipelines.get(`embedding_${dtype}`, () => embeddingWgsl(dtype));
  gpu.dispatch(pipe, [n, D, r0, rows], [ids, y, table], Math.ceil((n * D) / ELEM_WG));
}

/** y = x · s, s a float64 passed as two floats (hi, lo). */
export function scale(gpu: GpuDevice, x: GPUBuffer, y: GPUBuffer, n: number, s: number): void {
  const hi = Math.fround(s), lo = Math.fround(s - hi);
  gpu.dispatch(gpu.pipelines.get('scale', () => SCALE_WGSL), [n, f32Bits(hi), f32Bits(lo)], [x, y], Math.ceil(n / ELEM_WG));
}

export function siluMulBackward(gpu: GpuDevice, gate: GPUBuffer, up: GPUBuffer, dy: GPUBuffer, dGate: GPUBuffer, dUp: GPUBuffer, n: number): void {
  const pipe = gpu.pipelines.get('silu_mul_backward', () => SILU_MUL_BACKWARD_WGSL);
  gpu.dispatch(pipe, [n], [gate, up, dy, dGate, dUp], Math.ceil(n / ELEM_WG));
}
