/// <reference types="@webgpu/types" />
/**
 * Buffers and dispatch on one GPUDevice: storage buffers checked against the binding limit before
 * anything is created, uploads padded to whole words, reads through a mapped staging buffer.
 * Validation errors and device loss are recorded when they arrive and thrown, as one line, by the
 * next read: nothing after them is trusted. A lost device or one out of memory is a DeviceError (a
 * LowbitError: the CLI's one line, exit 2, nothing written); a validation or internal error is a bug,
 * a plain Error.
 *
 * Dispatches are batched: each is recorded into one pending command encoder (one compute pass for
 * consecutive dispatches; copies end the pass and are recorded in between), its uniform parameters
 * a 256-byte slice of one reused uniform buffer (the bind group is that slice at binding 0, then the
 * storage buffers in order). The batch is submitted at every ordering point: before a read (whose
 * staging copy it ends with), before any queue.writeBuffer (a write runs before every command
 * buffer submitted after it, so it would overtake recorded work), before destroying a buffer the
 * batch uses, when BATCH_CAP dispatches are recorded, and at the end of the current task (a
 * microtask), so that recorded work never waits for a read that does not come.
 */
import type { GpuCapabilities } from './capabilities.js';
import { PipelineCache } from './pipelines.js';
import { DeviceError, UsageError } from '../../errors.js';

const MiB = 1024 * 1024;
/** Workgroups per dispatch dimension beyond which a dispatch is folded into y (WebGPU's minimum limit). */
export const MAX_GROUPS_X = 65535;
/** Dispatches recorded before the batch is submitted regardless. */
export const BATCH_CAP = 256;
/** Bytes of the uniform buffer per dispatch: WebGPU's minUniformBufferOffsetAlignment at most (64 u32 parameters). */
const PARAM_SLOT = 256;
/** Compute passes one timePasses() session can time. */
const TIMED_PASSES = 1024;

/** Dispatches of this thread over all its devices (LOWBIT_WEBGPU_LOSE_AFTER counts them). */
let threadDispatches = 0;

function fmtBytes(n: number): string {
  return n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${n} bytes`;
}

export class GpuDevice {
  readonly pipelines: PipelineCache;
  private failure: { message: string; device: boolean } | undefined;
  /** The batch being recorded: its encoder, open compute pass, dispatch count and the buffers it uses. */
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private recorded = 0;
  private readonly used = new Set<GPUBuffer>();
  /** Buffers freed while the batch used them, destroyed when it is submitted. */
  private doomed: GPUBuffer[] = [];
  private flushQueued = false;
  /** One uniform buffer for every batch (rewritten after the previous batch's submit, so the queue orders them), and its host copy. */
  private readonly uniform: GPUBuffer;
  private readonly params = new Uint32Array((BATCH_CAP * PARAM_SLOT) / 4);
  /** Timestamp queries of the passes being timed (timePasses). */
  private timing: { set: GPUQuerySet; resolve: GPUBuffer; passes: number } | undefined;
  /** The storage buffers made by `storage` and not yet destroyed, their bytes, and the peak of those bytes. */
  private readonly live = new Set<GPUBuffer>();
  private liveBytes = 0;
  private peakBytes = 0;
  /** Batches submitted and dispatches recorded since the device was made (benchmarks print them). */
  submits = 0;
  dispatches = 0;

  constructor(readonly device: GPUDevice, readonly caps: GpuCapabilities) {
    this.pipelines = new PipelineCache(device);
    this.uniform = device.createBuffer({ label: 'dispatch parameters', size: BATCH_CAP * PARAM_SLOT, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    device.addEventListener('uncapturederror', (e) => {
      const error = (e as GPUUncapturedErrorEvent).error;
      const oom = error.constructor?.name === 'GPUOutOfMemoryError';
      this.failure ??= oom
        ? { message: `webgpu: the device ran out of memory: ${firstLine(error.message)}`, device: true }
        : { message: `WebGPU error: ${firstLine(error.message)}`, device: false };
    });
    void device.lost.then((info) => {
      this.failure ??= { message: `webgpu: the device was lost (${info.reason}): ${firstLine(info.message)}; nothing after it was trusted or written`, device: true };
    });
  }

  /** Throws the first recorded device error, if any: a DeviceError for a lost device or one out of memory. */
  check(): void {
    const f = this.failure;
    if (f) throw f.device ? new DeviceError(f.message) : new Error(f.message);
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
    const buf = this.device.createBuffer({
      label: what, size: Math.max(4, Math.ceil(bytes / 4) * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    this.live.add(buf);
    this.liveBytes += buf.size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    return buf;
  }

  /** Bytes of the storage buffers alive now, and the most alive at once since the device was made (or resetPeak). */
  memory(): { liveBytes: number; peakBytes: number } {
    return { liveBytes: this.liveBytes, peakBytes: this.peakBytes };
  }

  resetPeak(): void {
    this.peakBytes = this.liveBytes;
  }

  /** Writes `data` at byte `offset` of `buf`, padding a tail that is not a whole word. */
  write(buf: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength) as Uint8Array<ArrayBuffer>;
    if (bytes.length === 0) return;
    this.flush(); // queue.writeBuffer would otherwise run before the recorded, unsubmitted work
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

  /** Records a buffer copy in the batch, after the dispatches recorded before it. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (bytes === 0) return;
    const enc = this.batch();
    this.endPass();
    enc.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.used.add(src).add(dst);
  }

  /**
   * Destroys buffers: at once when the batch does not use them, else right after the batch is
   * submitted (destroying a buffer that submitted work uses is safe; one that recorded work uses is not).
   */
  destroy(...bufs: GPUBuffer[]): void {
    for (const b of bufs) {
      if (this.live.delete(b)) this.liveBytes -= b.size;
      if (this.used.has(b)) this.doomed.push(b);
      else b.destroy();
    }
  }

  /** Submits the recorded batch, if any. */
  flush(): void {
    const enc = this.encoder;
    if (!enc) return;
    this.endPass();
    if (this.recorded > 0) this.device.queue.writeBuffer(this.uniform, 0, this.params, 0, (this.recorded * PARAM_SLOT) / 4);
    this.device.queue.submit([enc.finish()]);
    this.submits++;
    this.encoder = undefined;
    this.recorded = 0;
    this.used.clear();
    for (const b of this.doomed) b.destroy();
    this.doomed = [];
  }

  private batch(): GPUCommandEncoder {
    if (!this.encoder) {
      this.encoder = this.device.createCommandEncoder();
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => { this.flushQueued = false; this.flush(); });
      }
    }
    return this.encoder;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = undefined;
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
    if (params.length > PARAM_SLOT / 4) throw new RangeError(`webgpu: ${params.length} dispatch parameters, above the ${PARAM_SLOT / 4} a slot holds`);
    const enc = this.batch();
    const slot = this.recorded++;
    const base = (slot * PARAM_SLOT) / 4;
    this.params.fill(0, base, base + PARAM_SLOT / 4);
    for (let i = 0; i < params.length; i++) this.params[base + i] = params[i]! >>> 0;
    const bind = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: this.uniform, offset: slot * PARAM_SLOT, size: PARAM_SLOT } },
        ...buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: b } })),
      ],
    });
    this.pass ??= enc.beginComputePass(this.timestampWrites());
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bind);
    this.pass.dispatchWorkgroups(gx, gy);
    this.dispatches++;
    if (++threadDispatches === this.caps.loseAfter) this.device.destroy(); // tests: a device lost mid-run
    for (const b of buffers) this.used.add(b);
    if (this.recorded === BATCH_CAP) this.flush();
  }

  /**
   * Benchmarks: from now on every compute pass (at most TIMED_PASSES) writes its begin and end
   * timestamps; gpuSeconds() then returns the device time of those passes and stops. Needs the
   * 'timestamp-query' feature (requested when the adapter has it); false without it.
   */
  timePasses(): boolean {
    if (!this.device.features.has('timestamp-query')) return false;
    this.flush();
    this.timing ??= {
      set: this.device.createQuerySet({ type: 'timestamp', count: 2 * TIMED_PASSES }),
      resolve: this.device.createBuffer({ size: 16 * TIMED_PASSES, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
      passes: 0,
    };
    this.timing.passes = 0;
    return true;
  }

  /** Seconds the timed passes ran on the device (sum of end − begin), after the work recorded so far. */
  async gpuSeconds(): Promise<number> {
    const t = this.timing;
    if (!t) throw new Error('gpuSeconds: timePasses() was not called');
    const enc = this.batch();
    this.endPass();
    if (t.passes > 0) enc.resolveQuerySet(t.set, 0, 2 * t.passes, t.resolve, 0);
    const n = t.passes;
    const staging = this.device.createBuffer({ size: 16 * TIMED_PASSES, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    enc.copyBufferToBuffer(t.resolve, 0, staging, 0, 16 * TIMED_PASSES);
    this.timing = undefined;
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const ns = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    t.set.destroy();
    t.resolve.destroy();
    this.check();
    let total = 0;
    for (let i = 0; i < n; i++) total += Number(ns[2 * i + 1]! - ns[2 * i]!);
    return total / 1e9;
  }

  private timestampWrites(): GPUComputePassDescriptor | undefined {
    const t = this.timing;
    if (!t || t.passes >= TIMED_PASSES) return undefined;
    const i = t.passes++;
    return { timestampWrites: { querySet: t.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } };
  }

  /** The first `bytes` of `buf`, after all work recorded before (the batch is submitted with the read's copy). */
  async read(buf: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    this.check();
    if (bytes === 0) return new ArrayBuffer(0);
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.copy(buf, 0, staging, 0, size);
    this.flush();
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
