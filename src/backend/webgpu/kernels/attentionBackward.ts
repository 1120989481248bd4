/// <reference types="@webgpu/types" />
/**
 * Pipeline keys (per head size, kernel and tile size) and dispatch of attention's backward: the tiled
 * kernels (attentionBackwardFast.wgsl.ts) with the fast kernels, each where its tile fits, the
 * reference (attentionBackward.wgsl.ts) otherwise. Both give the same bits.
 */
import { f32Bits, MAX_GROUPS_X, type GpuDevice } from '../device.js';
import { ATTN_BWD_WG, attentionKeysWgsl, attentionRowsWgsl } from './attentionBackward.wgsl.js';
import { BWD_BK, BWD_BQ, attentionKeysFastWgsl, attentionRowsFastWgsl, bwdTiles, type BwdTiles } from './attentionBackwardFast.wgsl.js';

export interface AttentionBackwardShape { T: number; S: number; nHeads: number; nKvHeads: number; headDim: number; offset: number }

/** dq, dk, dv for q[T, H·hd], k/v[S, KVH·hd], dout[T, H·hd]: the rows kernel, then the keys kernel. */
export function attentionBackward(gpu: GpuDevice, q: GPUBuffer, k: GPUBuffer, v: GPUBuffer, dout: GPUBuffer,
  dq: GPUBuffer, dk: GPUBuffer, dv: GPUBuffer, s: AttentionBackwardShape): void {
  const params = [s.T, s.S, s.nHeads, s.nKvHeads, s.offset, f32Bits(1 / Math.sqrt(s.headDim))];
  const stats = gpu.storage('attentionBackward row statistics', s.T * s.nHeads * 3 * 4);
  const hd = s.headDim;
  const tiles = gpu.caps.kernels === 'fast' ? tiledTiles(s, gpu.caps.limits.maxComputeWorkgroupStorageSize ?? 16384) : { keys: 0, queries: 0 };
  if (tiles.keys > 0) {
    const rows = gpu.pipelines.get(`attention_bwd_rows_fast_hd${hd}_k${tiles.keys}`, () => attentionRowsFastWgsl(hd, tiles.keys));
    gpu.dispatch(rows, params, [q, k, v, dout, dq, stats], [Math.ceil(s.T / BWD_BQ), s.nHeads]);
  } else {
    const rows = gpu.pipelines.get(`attention_bwd_rows_hd${hd}`, () => attentionRowsWgsl(hd));
    gpu.dispatch(rows, params, [q, k, v, dout, dq, stats], Math.ceil((s.T * s.nHeads) / ATTN_BWD_WG));
  }
  if (tiles.queries > 0) {
    const keys = gpu.pipelines.get(`attention_bwd_keys_fast_hd${hd}_q${tiles.queries}`, () => attentionKeysFastWgsl(hd, tiles.queries));
    gpu.dispatch(keys, params, [q, k, v, dout, stats, dk, dv], [Math.ceil(s.S / BWD_BK), s.nKvHeads]);
  } else {
    const keys = gpu.pipelines.get(`attention_bwd_keys_hd${hd}`, () => attentionKeysWgsl(hd));
    gpu.dispatch(keys, params, [q, k, v, dout, stats, dk, dv], Math.ceil((s.S * s.nKvHeads) / ATTN_BWD_WG));
  }
  gpu.destroy(stats); // after the batch that uses it is submitted
}

/**
 * The tiles of the two tiled kernels for this shape on an adapter with `wgBytes` of workgroup memory
 * (bwdTiles), 0 for a kernel that must be the reference instead: where not even a one-row tile fits
 * (at 16 KiB, head sizes above 2048 for the rows kernel, above 2046 for the keys kernel) or its
 * workgroup grid exceeds a dispatch dimension (the tiled grids are [blocks, heads], not folded).
 */
export function tiledTiles(s: AttentionBackwardShape, wgBytes: number): BwdTiles {
  const t = bwdTiles(s.headDim, wgBytes);
  const rowsFit = Math.ceil(s.T / BWD_BQ) <= MAX_GROUPS_X && s.nHeads <= MAX_GROUPS_X;
  const keysFit = Math.ceil(s.S / BWD_BK) <= MAX_GROUPS_X && s.nKvHeads <= MAX_GROUPS_X;
  return { keys: rowsFit ? t.keys : 0, queries: keysFit ? t.queries : 0 };
}
