/// <reference types="@webgpu/types" />
/** Dispatch of the per-column family (columns.wgsl.ts): AWQ's mean |x| sums and its division by the scales. */
import type { GpuDevice } from '../device.js';
import { COLUMN_ABS_SUM_WGSL, COLUMNS_WG, DIV_COLUMNS_WGSL } from './columns.wgsl.js';

/**
 * Per-channel Σ |x| over the rows of each x[T_i, C] in turn, summed as the host's float64 loop sums it
 * (every addition emulated and rounded on the device), returned as float64 [C] after one read.
 */
export async function columnAbsSums(gpu: GpuDevice, xs: readonly { x: GPUBuffer; T: number }[], C: number): Promise<Float64Array> {
  const groups = Math.ceil(C / COLUMNS_WG);
  if (groups > 65535) throw new RangeError(`columnAbsMean: ${C} channels is above ${65535 * COLUMNS_WG}`);
  const acc = gpu.storage(`column |x| sums [${C}]`, Math.max(C, 1) * 8); // zeros, as every new buffer
  try {
    const pipe = gpu.pipelines.get('column_abs_sum', () => COLUMN_ABS_SUM_WGSL);
    for (const { x, T } of xs) if (T > 0 && C > 0) gpu.dispatch(pipe, [T, C], [x, acc], groups);
    return new Float64Array(await gpu.read(acc, C * 8));
  } finally {
    gpu.destroy(acc);
  }
}

/** y[t, c] = x[t, c] / s[c], correctly rounded, for n = T·C elements. */
export function divColumns(gpu: GpuDevice, x: GPUBuffer, s: GPUBuffer, y: GPUBuffer, n: number, C: number): void {
  if (n === 0) return;
  gpu.dispatch(gpu.pipelines.get('div_columns', () => DIV_COLUMNS_WGSL), [n, C], [x, s, y], Math.ceil(n / COLUMNS_WG));
}
