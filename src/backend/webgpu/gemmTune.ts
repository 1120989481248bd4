/// <reference types="@webgpu/types" />
/**
 * LOWBIT_WEBGPU_GEMM=auto, the default on a hardware adapter: the fast GEMM's design (capabilities.ts:
 * GEMM_CHOICES) is chosen on the device itself, once per device, by timing every design it can run on one float32
 * linear (TUNE_SHAPE: LLaMA-3-8B's q_proj over a window of 2048 tokens) and taking the fastest (the first in
 * GEMM_CHOICES' order on a tie). Every design gives the same bits (test/backend/gemmDesigns.test.ts), so the choice
 * moves speed only, never a result. Device time (timestamp-query) where the device has it, else the wall clock
 * around a read; each design runs once to compile and warm, then the best of TUNE_RUNS, or of one run where the
 * first design's first timed run took over SLOW_S (68 GFLOP at TUNE_SHAPE: a slow GPU would spend seconds here).
 */
import type { GemmChoice, GpuCapabilities } from './capabilities.js';
import { GpuDevice } from './device.js';
import { linearDense } from './kernels/linear.js';

/** [M, N, K] timed on a hardware adapter; a software one (asked for `auto` by name) times SOFTWARE_TUNE_SHAPE. */
export const TUNE_SHAPE: readonly [number, number, number] = Object.freeze([2048, 4096, 4096] as [number, number, number]);
export const SOFTWARE_TUNE_SHAPE: readonly [number, number, number] = Object.freeze([512, 512, 512] as [number, number, number]);
const TUNE_RUNS = 3;
const SLOW_S = 0.05;

export interface GemmTune {
  /** the fastest design */
  readonly choice: GemmChoice;
  /** seconds of one product per design timed, in GEMM_CHOICES order */
  readonly seconds: Readonly<Partial<Record<GemmChoice, number>>>;
  readonly shape: readonly [number, number, number];
  readonly clock: 'device' | 'wall';
}

/** The designs' times on `device` for `shape` [M, N, K] (float32 x and W), and the fastest. */
export async function tuneGemm(device: GPUDevice, caps: GpuCapabilities, designs: readonly GemmChoice[], shape: readonly [number, number, number]): Promise<GemmTune> {
  if (designs.length === 0) throw new Error('tuneGemm: no design to time');
  const [M, N, K] = shape;
  const host = new GpuDevice(device, caps);
  const fill = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => (((i * 2654435761 + seed) >>> 0) % 2001 - 1000) / 1000);
  const x = host.upload('gemm tune x', fill(M * K, 1)), w = host.upload('gemm tune W', fill(N * K, 2)), y = host.storage('gemm tune y', M * N * 4);
  const seconds: Partial<Record<GemmChoice, number>> = {};
  let clock: 'device' | 'wall' = 'wall', runs = TUNE_RUNS;
  try {
    for (const [i, gemm] of designs.entries()) {
      const gpu = new GpuDevice(device, { ...caps, gemm });
      const once = () => linearDense(gpu, 'f32', x, w, y, { M, K, ldy: N }, N, 0);
      once();
      await gpu.read(y, 4);
      let best = Infinity;
      for (let r = 0; r < runs; r++) {
        if (gpu.timePasses()) {
          clock = 'device';
          once();
          best = Math.min(best, await gpu.gpuSeconds());
        } else {
          const t0 = performance.now();
          once();
          await gpu.read(y, 4);
          best = Math.min(best, (performance.now() - t0) / 1000);
        }
        if (i === 0 && r === 0 && best > SLOW_S) runs = 1;
      }
      seconds[gemm] = best;
    }
  } finally {
    host.destroy(x, w, y);
  }
  const choice = designs.reduce((a, b) => (seconds[b]! < seconds[a]! ? b : a));
  return Object.freeze({ choice, seconds: Object.freeze(seconds), shape, clock });
}

/** What the choice was made from, e.g. `fastest on this device of tiled 3.10 ms, …; 2048×4096×4096 f32, device time`. */
export function tuneTimes(t: GemmTune): string {
  const ms = (s: number) => `${(s * 1000).toPrecision(3)} ms`;
  return `fastest on this device of ${Object.entries(t.seconds).map(([g, s]) => `${g} ${ms(s)}`).join(', ')}; ${t.shape.join('×')} f32, ${t.clock} time`;
}

/** One line for benchmarks: the design and what it was chosen from, e.g. `double (fastest on this device of …)`. */
export function tuneNote(t: GemmTune): string {
  return `${t.choice} (${tuneTimes(t)})`;
}
