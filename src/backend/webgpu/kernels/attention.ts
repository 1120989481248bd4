/// <reference types="@webgpu/types" />
/**
 * Pipeline key (per head size and kernel) and dispatch of the attention family (attention.wgsl.ts):
 * the tiled (flash-style) kernel with the fast kernels, the per-row reference otherwise.
 */
import { f32Bits, MAX_GROUPS_X, type GpuDevice } from '../device.js';
import { ATTENTION_WG, FLASH_BQ, attentionFlashWgsl, attentionWgsl } from './attention.wgsl.js';

export interface AttentionShape { T: number; nHeads: number; nKvHeads: number; headDim: number; offset: number }

export function attention(gpu: GpuDevice, q: GPUBuffer, k: GPUBuffer, v: GPUBuffer, y: GPUBuffer, s: AttentionShape): void {
  const params = [s.T, s.nHeads, s.nKvHeads, s.offset, f32Bits(1 / Math.sqrt(s.headDim))];
  const blocks = Math.ceil(s.T / FLASH_BQ);
  if (gpu.caps.kernels === 'fast' && blocks <= MAX_GROUPS_X && s.nHeads <= MAX_GROUPS_X) {
    const pipe = gpu.pipelines.get(`attention_flash_hd${s.headDim}`, () => attentionFlashWgsl(s.headDim));
    gpu.dispatch(pipe, params, [q, k, v, y], [blocks, s.nHeads]);
    return;
  }
  const pipe = gpu.pipelines.get(`attention_hd${s.headDim}`, () => attentionWgsl(s.headDim));
  gpu.dispatch(pipe, params, [q, k, v, y], Math.ceil((s.T * s.nHeads) / ATTENTION_WG));
}
