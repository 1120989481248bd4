/// <reference types="@webgpu/types" />
/** Dispatch of the Gram family (gram.wgsl.ts) and the host's float64 finish of its two-float sums. */
import type { GpuDevice } from '../device.js';
import { GRAM_WG, GRAM_WGSL } from './gram.wgsl.js';

/** The device side of a Gram accumulator: hi and lo float32 planes of S [K, K] (upper triangle valid). */
export interface GramBuffers { readonly hi: GPUBuffer; readonly lo: GPUBuffer; readonly K: number }

/** Zeroed hi/lo planes; each checked against the binding limit (with its size) before it exists. */
export function gramBuffers(gpu: GpuDevice, K: number): GramBuffers {
  const bytes = K * K * 4;
  const hi = gpu.storage(`gram accumulator [${K}, ${K}] (hi)`, bytes);
  const lo = gpu.storage(`gram accumulator [${K}, ${K}] (lo)`, bytes);
  return { hi, lo, K }; // new buffers are zero-initialised (WebGPU guarantees it)
}

/** S += xᵀx for x[T, K]. */
export function gram(gpu: GpuDevice, x: GPUBuffer, T: number, g: GramBuffers): void {
  if (T === 0) return;
  const groups = Math.ceil(g.K / GRAM_WG);
  gpu.dispatch(gpu.pipelines.get('gram', () => GRAM_WGSL), [T, g.K, 0], [x, g.hi, g.lo], [groups, groups]);
}

/** S = hi + lo in float64, mirrored to a full symmetric [K, K]; destroys the planes. */
export async function readGram(gpu: GpuDevice, g: GramBuffers): Promise<Float64Array> {
  const { K } = g;
  try {
    const hi = new Float32Array(await gpu.read(g.hi, K * K * 4));
    const lo = new Float32Array(await gpu.read(g.lo, K * K * 4));
    const S = new Float64Array(K * K);
    for (let a = 0; a < K; a++) {
      for (let b = a; b < K; b++) {
        const v = hi[a * K + b]! + lo[a * K + b]!;
        S[a * K + b] = v;
        S[b * K + a] = v;
      }
    }
    return S;
  } finally {
    gpu.destroy(g.hi, g.lo);
  }
}
