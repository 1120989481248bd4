/// <reference types="@webgpu/types" />
/**
 * Buffers and dispatch on one GPUDevice: storage buffers checked against the binding limit before
 * anything is created, uploads padded to whole words, a compute pass per dispatch (the bind group is
 * its uniform parameters at binding 0, then the storage buffers in order), reads through a mapped
 * staging buffer. Validation errors and device loss are recorded when they arrive and thrown, as
 * one line, by the next read: nothing after them is trusted.
 */
import type { GpuCapabilities } from './capabilities.js';
import { PipelineCache } from './pipelines.js';
import { UsageError } from '../../errors.js';

const MiB = 1024 * 1024;
/** Workgroups per dispatch dimension beyond which a dispatch is folded into y (WebGPU's minimum limit). */
export const MAX_GROUPS_X = 65535;

function fmtBytes(n: number): string {
  return n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${n} bytes`;
}

export class GpuDevice {
  readonly pipelines: PipelineCache;
  private failure: string | undefined;

  constructor(readonly device: GPUDevice, readonly caps: GpuCapabilities) {
    this.pipelines = new PipelineCache(device);
    device.addEventListener('uncapturederror', (e) => { this.failure ??= `WebGPU error: ${firstLine((e as GPUUncapturedErrorEvent).error.message)}`; });
    void device.lost.then((info) => { this.failure ??= `the WebGPU device was lost (${info.reason}): ${firstLine(info.message)}`; });
  }

  /** Throws the first recorded device error, if any. */
  check(): void {
    if (this.failure) throw new Error(this.failure);
  }

  /**
   * A UsageError (one line, exit 2 in the CLI) naming `what` and its size when `bytes` cannot be one
   * storage binding on this adapter, checked before the buffer exists or any kernel runs on it.
   */
  fits(what: string, bytes: number): void {
    if (bytes > this.caps.maxBinding) {
      throw new UsageError(`webgpu: ${what} needs ${fmtBytes(bytes)}, above this adapter's maxStorageBufferBindingSize of ${fmtBytes(this.caps.maxBinding)}`);
    }
  }

  /** A storage buffer of at least `bytes` (rounded up to whole words, at least one). */
  storage(what: string, bytes: number): GPUBuffer {
    this.fits(what, bytes);
    return this.device.createBuffer({
      label: what, size: Math.max(4, Math.ceil(bytes / 4) * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
  }

  /** Writes `data` at byte `offset` of `buf`, padding a tail that is not a whole word. */
  write(buf: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength) as Uint8Array<ArrayBuffer>;
    if (bytes.length === 0) return;
    const whole = bytes.length & ~3;
    if (whole > 0) this.device.queue.writeBuffer(buf, offset, bytes, 0, whole);
    if (whole < bytes.length) {
      const tail = new Uint8Array(4);
      tail.set(bytes.subarray(whole));
      this.device.queue.writeBuffer(buf, offset + whole, tail);
    }
  }

  /** A storage buffer holding `data`. */
  upload(what: string, data: ArrayBufferView): GPUBuffer {
    const buf = this.storage(what, data.byteLength);
    this.write(buf, data);
    return buf;
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (bytes === 0) return;
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.device.queue.submit([enc.finish()]);
  }

  /**
   * Runs `pipeline` over `groups` workgroups (folded into x·y when above MAX_GROUPS_X; kernels
   * rebuild the flat index from num_workgroups). `params` are u32 words (floats as their bits).
   */
  dispatch(pipeline: GPUComputePipeline, params: readonly number[], buffers: readonly GPUBuffer[], groups: number | [number, number]): void {
    const [gx, gy] = typeof groups === 'number'
      ? (groups <= MAX_GROUPS_X ? [groups, 1] : [MAX_GROUPS_X, Math.ceil(groups / MAX_GROUPS_X)])
      : groups;
    if (gx === 0 || gy === 0) return;
    if (gy > MAX_GROUPS_X) throw new UsageError(`webgpu: a dispatch of ${gx}×${gy} workgroups exceeds the ${MAX_GROUPS_X} per dimension`);
    const words = new Uint32Array(Math.max(4, Math.ceil(params.length / 4) * 4));
    words.set(params.map((p) => p >>> 0));
    const uniform = this.device.createBuffer({ size: words.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.device.queue.writeBuffer(uniform, 0, words);
    const bind = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: uniform } }, ...buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: b } }))],
    });
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(gx, gy);
    pass.end();
    this.device.queue.submit([enc.finish()]);
    uniform.destroy(); // freed once the submitted work is done
  }

  /** The first `bytes` of `buf`, after all submitted work. */
  async read(buf: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    this.check();
    if (bytes === 0) return new ArrayBuffer(0);
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(buf, 0, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      this.check();
      throw new Error(`webgpu: reading a buffer failed: ${firstLine((e as Error).message)}`);
    }
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    staging.destroy();
    this.check();
    return out;
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

/** The bits of a float32, for a u32 uniform word. */
export function f32Bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0]!;
}
