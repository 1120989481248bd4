/// <reference types="@webgpu/types" />
/**
 * Dispatch of the log-softmax family (logsoftmax.wgsl.ts) and the host's float64 finish: the
 * per-row [max, hi, lo, picked logit] read back, lse = max + log(hi + lo).
 */
import type { GpuDevice } from '../device.js';
import { LOGSOFTMAX_WGSL } from './logsoftmax.wgsl.js';

export interface RowParts { max: number; sum: number; pickedLogit: number }

/** Per row of logits[T, C]: its max, Σ exp(x − max) (float64 from the two-float pair), and x[t, pick[t]]. */
export async function logSoftmaxRows(gpu: GpuDevice, logits: GPUBuffer, pick: Uint32Array, T: number, C: number): Promise<RowParts[]> {
  if (T === 0) return [];
  const pickBuf = gpu.upload('logsoftmax columns', pick);
  const out = gpu.storage('logsoftmax parts', T * 16);
  gpu.dispatch(gpu.pipelines.get('logsoftmax', () => LOGSOFTMAX_WGSL), [T, C, 0], [logits, pickBuf, out], T); // 0: the zero that keeps TwoSum's error terms
  try {
    const r = new Float32Array(await gpu.read(out, T * 16));
    const rows: RowParts[] = [];
    for (let t = 0; t < T; t++) rows.push({ max: r[4 * t]!, sum: r[4 * t + 1]! + r[4 * t + 2]!, pickedLogit: r[4 * t + 3]! });
    return rows;
  } finally {
    pickBuf.destroy();
    out.destroy();
  }
}
