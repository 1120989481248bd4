/// <reference types="@webgpu/types" />
/** Dispatch of the activation-statistics family (stats.wgsl.ts). */
import type { GpuDevice } from '../device.js';
import { COLUMN_ABS_MAX_WGSL, STATS_WG } from './stats.wgsl.js';

/** acc[c] = max(acc[c], max_t |x[t, c]|) for x[T, C]. */
export function columnAbsMax(gpu: GpuDevice, x: GPUBuffer, acc: GPUBuffer, T: number, C: number): void {
  if (T === 0 || C === 0) return;
  const groups = Math.ceil(C / STATS_WG);
  if (groups > 65535) throw new RangeError(`columnAbsMax: ${C} channels is above ${65535 * STATS_WG}`);
  gpu.dispatch(gpu.pipelines.get('column_abs_max', () => COLUMN_ABS_MAX_WGSL), [T, C], [x, acc], groups);
}
