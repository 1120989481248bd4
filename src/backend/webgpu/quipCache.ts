/// <reference types="@webgpu/types" />
/**
 * Rebuilt QuIP weights kept for the multiplies that follow (kernels/quipRebuild.ts makes them). Block
 * streaming (model/stream.ts) multiplies each of a block's linears once per evaluation window, and
 * training runs a layer's linearT after its linear: without a cache every one of those multiplies
 * rebuilds the dense W. The cache holds the float32 W of the layers used last, keyed by the layer's
 * QuipBuffers, least recently used first out, within a byte budget (caps.quipCacheBytes:
 * LOWBIT_WEBGPU_QUIP_CACHE_MIB, default 1 GiB, one LLaMA-7B/8B block's seven linears; 0 keeps nothing, the
 * weight is rebuilt for every multiply). A weight larger than the budget is rebuilt and freed each time.
 * Under LRU a block whose linears together exceed the budget gets no reuse (each window walks them in
 * the same order, so each is evicted before its next use): raise the budget for such models.
 *
 * A kept W is the buffer the rebuild wrote, read again: multiplies through the cache give the same
 * bits as without it. Entries are freed on eviction and when the layer is freed (drop), through
 * GpuDevice.destroy, which defers a buffer the recorded batch still reads until that batch is submitted.
 */
import type { GpuDevice } from './device.js';
import { rebuildQuip, type QuipBuffers } from './kernels/quipRebuild.js';

export interface QuipCacheStats {
  /** weights kept now and their bytes */
  readonly entries: number;
  readonly bytes: number;
  readonly budget: number;
  /** multiplies that found their weight kept / that rebuilt it, since the cache was made */
  readonly hits: number;
  readonly misses: number;
}

export class QuipWeightCache {
  /** Kept weights in order of last use, least recent first (a Map iterates in insertion order). */
  private readonly kept = new Map<QuipBuffers, GPUBuffer>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;

  constructor(private readonly gpu: GpuDevice, readonly budget: number) {
    if (!(Number.isInteger(budget) && budget >= 0)) throw new RangeError(`QuIP weight cache: a budget of ${budget} bytes; expected a whole number, 0 or more`);
  }

  /** Calls use(W) with the layer's dense float32 weight: the kept one, or rebuilt now (and kept when it fits the budget). */
  with(q: QuipBuffers, use: (w: GPUBuffer) => void): void {
    const hit = this.kept.get(q);
    if (hit) {
      this.hits++;
      this.kept.delete(q);
      this.kept.set(q, hit);
      use(hit);
      return;
    }
    this.misses++;
    const size = 4 * q.rows * q.cols;
    if (size > this.budget) { // rebuilt for this multiply only
      const w = rebuildQuip(this.gpu, q);
      try { use(w); } finally { this.gpu.destroy(w); }
      return;
    }
    // evicted before the rebuild, so that they and its planes are not alive at once
    for (const [old, w] of this.kept) {
      if (this.bytes + size <= this.budget) break;
      this.forget(old, w);
    }
    const w = rebuildQuip(this.gpu, q);
    this.kept.set(q, w);
    this.bytes += w.size;
    use(w);
  }

  /** Frees the layer's kept weight, if any (the layer is being freed). */
  drop(q: QuipBuffers): void {
    const w = this.kept.get(q);
    if (w) this.forget(q, w);
  }

  stats(): QuipCacheStats {
    return { entries: this.kept.size, bytes: this.bytes, budget: this.budget, hits: this.hits, misses: this.misses };
  }

  private forget(q: QuipBuffers, w: GPUBuffer): void {
    this.kept.delete(q);
    this.bytes -= w.size;
    this.gpu.destroy(w);
  }
}
