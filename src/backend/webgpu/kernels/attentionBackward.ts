/// <reference types="@webgpu/types" />
/** Pipeline keys (per head size) and dispatch of attention's backward (attentionBackward.wgsl.ts). */
import { f32Bits, type GpuDevice } from '../device.js';
import { ATTN_BWD_WG, attentionKeysWgsl, attentionRowsWgsl } from './attentionBackward.wgsl.js';

export interface AttentionBackwardShape { T: number; S: number; nHeads: number; nKvHeads: number; headDim: number; offset: number }

/** dq, dk, dv for q[T, H·hd], k/v[S, KVH·hd], dout[T, H·hd]: the rows kernel, then the keys kernel. */
export function attentionBackward(gpu: GpuDevice, q: GPUBuffer, k: GPUBuffer, v: GPUBuffer, dout: GPUBuffer,
  dq: GPUBuffer, dk: GPUBuffer, dv: GPUBuffer, s: AttentionBackwardShape): void {
  const params = [s.T, s.S, s.nHeads, s.nKvHeads, s.offset, f32Bits(1 / Math.sqrt(s.headDim))];
  const stats = gpu.storage('attentionBackward row statistics', s.T * s.nHeads * 3 * 4);
  const rows = gpu.pipelines.get(`attention_bwd_rows_hd${s.headDim}`, () => attentionRowsWgsl(s.headDim));
  gpu.dispatch(rows, params, [q, k, v, dout, dq, stats], Math.ceil((s.T * s.nHeads) / ATTN_BWD_WG));
  const keys = gpu.pipelines.get(`attention_bwd_keys_hd${s.headDim}`, () => attentionKeysWgsl(s.headDim));
  gpu.dispatch(keys, params, [q, k, v, dout, stats, dk, dv], Math.ceil((s.S * s.nKvHeads) / ATTN_BWD_WG));
  gpu.destroy(stats); // after the batch that uses it is submitted
}
