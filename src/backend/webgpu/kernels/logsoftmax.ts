/// <reference types="@webgpu/types" />
/**
 * Dispatch of the log-softmax family (logsoftmax.wgsl.ts: the rows' parts, and crossEntropyGrad, the
 * gradient of their NLL) and the host's float64 finish: the
 * per-row [max, hi, lo, picked logit] read back, lse = max + log(hi + lo).
 */
import type { GpuDevice } from '../device.js';
import { CROSS_ENTROPY_GRAD_WGSL, LOGSOFTMAX_WGSL } from './logsoftmax.wgsl.js';

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
    gpu.destroy(pickBuf, out);
  }
}

/** crossEntropyGrad's kernel: d[T, V] from logits, the rows' float64 lse (sent as hi/lo pairs), targets and weights. */
export function crossEntropyGrad(gpu: GpuDevice, logits: GPUBuffer, lse: Float64Array, targets: Int32Array, weights: Float32Array, d: GPUBuffer, T: number, V: number): void {
  if (T === 0 || V === 0) return;
  const pairs = new Float32Array(2 * T);
  lse.forEach((v, t) => { const hi = Math.fround(v); pairs[2 * t] = hi; pairs[2 * t + 1] = Number.isFinite(hi) ? Math.fround(v - hi) : 0; });
  const bufs = [
    gpu.upload('crossEntropyGrad lse', pairs),
    gpu.upload('crossEntropyGrad targets', Uint32Array.from(targets, (k) => Math.max(k, 0))),
    gpu.upload('crossEntropyGrad weights', weights),
  ];
  gpu.dispatch(gpu.pipelines.get('cross_entropy_grad', () => CROSS_ENTROPY_GRAD_WGSL), [T, V], [logits, ...bufs, d], Math.ceil((T * V) / 256));
  gpu.destroy(...bufs); // after the batch that uses them is submitted
}
