/// <reference types="@webgpu/types" />
/** Pipeline key (per head size) and dispatch of the attention family (attention.wgsl.ts). */
import { f32Bits, type GpuDevice } from '../device.js';
import { ATTENTION_WG, attentionWgsl } from './attention.wgsl.js';

export interface AttentionShape { T: number; nHeads: number; nKvHeads: number; headDim: number; offset: number }

export function attention(gpu: GpuDevice, q: GPUBuffer, k: GPUBuffer, v: GPUBuffer, y: GPUBuffer, s: AttentionShape): void {
  const pipe = gpu.pipelines.get(`attention_hd${s.headDim}`, () => attentionWgsl(s.headDim));
  gpu.dispatch(pipe, [s.T, s.nHeads, s.nKvHeads, s.offset, f32Bits(1 / Math.sqrt(s.headDim))], [q, k, v, y], Math.ceil((s.T * s.nHeads) / ATTENTION_WG));
}
