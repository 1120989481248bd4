/// <reference types="@webgpu/types" />
/** Dispatch of the search family (search.wgsl.ts): AWQ's scaled candidate weights and the squared-difference loss. */
import { f32Bits, type GpuDevice } from '../device.js';
import { SCALED_QUANT_WGSL, SEARCH_WG, SQ_DIFF_WG, SQ_DIFF_WGSL } from './search.wgsl.js';

/** llm-awq's smallest range (max − min) of a group, float32 as the host's MIN_RANGE. */
const MIN_RANGE = Math.fround(1e-5);
/** Workgroups per squared-difference sum: at most this many partial pairs per pair of arrays. */
const SQ_DIFF_GROUPS = 256;

/** y[rows, cols] = Q(w·diag(s))·diag(s)⁻¹ for one row part of a weight (groups of gs columns within a row). */
export function scaledQuant(gpu: GpuDevice, w: GPUBuffer, s: GPUBuffer, y: GPUBuffer, rows: number, cols: number, gs: number, bits: number, f16: boolean): void {
  const groups = rows * (cols / gs);
  const pipe = gpu.pipelines.get('scaled_quant', () => SCALED_QUANT_WGSL);
  gpu.dispatch(pipe, [rows, cols, gs, 2 ** bits - 1, f16 ? 1 : 0, f32Bits(MIN_RANGE)], [w, s, y], Math.ceil(groups / SEARCH_WG));
}

/**
 * Σ over every pair of Σ_i (a_i − b_i)², the pairs' partial sums made on the device and added in float64
 * on the host in a fixed order (one read for all pairs). Each pair: two float32 buffers of n elements.
 */
export async function sumSquaredDiff(gpu: GpuDevice, pairs: readonly { a: GPUBuffer; b: GPUBuffer; n: number }[]): Promise<number> {
  const groups = pairs.map((q) => Math.max(1, Math.min(SQ_DIFF_GROUPS, Math.ceil(q.n / SQ_DIFF_WG))));
  const total = groups.reduce((x, g) => x + g, 0);
  if (total === 0) return 0;
  const parts = gpu.storage('squared-difference partial sums', total * 8);
  try {
    const pipe = gpu.pipelines.get('sq_diff', () => SQ_DIFF_WGSL);
    let at = 0;
    pairs.forEach((q, i) => {
      const g = groups[i]!;
      gpu.dispatch(pipe, [q.n, 0, 2 * at, g * SQ_DIFF_WG], [q.a, q.b, parts], g);
      at += g;
    });
    const v = new Float32Array(await gpu.read(parts, total * 8));
    let sum = 0;
    for (let i = 0; i < v.length; i += 2) sum += v[i]! + v[i + 1]!;
    return sum;
  } finally {
    gpu.destroy(parts);
  }
}
