/// <reference types="@webgpu/types" />
/**
 * Dispatch of the Gram family (gram.wgsl.ts, the reference; gramFast.wgsl.ts, the tiled kernel the fast
 * kernel choice runs: the same sums bit for bit) and the host's float64 finish of its two-float sums.
 */
import type { GpuDevice } from '../device.js';
import { GRAM_WG, GRAM_WGSL } from './gram.wgsl.js';
import { GRAM_TILE, gramF32Wgsl, gramFastWgsl, type GramProductError } from './gramFast.wgsl.js';
import { tileFor } from './linear.js';
import { tileKey } from './linearFast.wgsl.js';

/** Rows a0..a0 + rows − 1 of S as hi and lo float32 planes [rows, K] (entries b ≥ a valid). */
export interface GramBand { readonly hi: GPUBuffer; readonly lo: GPUBuffer; readonly a0: number; readonly rows: number }

/**
 * The device side of a Gram accumulator: S [K, K] in bands of whole rows, each plane within one storage
 * binding (a 14336-wide Hessian is 784 MiB per plane: one band on a 2 GiB binding, seven on lavapipe's 128 MiB).
 */
export interface GramBuffers { readonly bands: readonly GramBand[]; readonly K: number }

/** Zeroed hi/lo bands; a row that cannot fit one binding is refused (with its size) before anything exists. */
export function gramBuffers(gpu: GpuDevice, K: number, maxBinding = gpu.caps.maxBinding): GramBuffers {
  const per = Math.max(1, Math.floor(maxBinding / (K * 4)));
  const bands: GramBand[] = [];
  try {
    for (let a0 = 0; a0 < K; a0 += per) {
      const rows = Math.min(per, K - a0);
      const what = `gram accumulator [${K}, ${K}] rows ${a0}..${a0 + rows - 1}`;
      const hi = gpu.storage(`${what} (hi)`, rows * K * 4);
      const lo = gpu.storage(`${what} (lo)`, rows * K * 4);
      bands.push({ hi, lo, a0, rows }); // new buffers are zero-initialised (WebGPU guarantees it)
    }
  } catch (e) {
    for (const b of bands) gpu.destroy(b.hi, b.lo);
    throw e;
  }
  return { bands, K };
}

/**
 * How the fast kernel takes TwoProduct's error on this device: one fma where the probe found it fused,
 * the fma text with an exact emulation where a test asks (caps.fmaEmulated), else the split products.
 */
export function gramProductError(gpu: GpuDevice): GramProductError {
  return gpu.caps.fmaFused ? 'fma' : gpu.caps.fmaEmulated ? 'fmaEmulated' : 'split';
}

/** S += xᵀx for x[T, K], by the device's kernel choice (the reference kernel's text is the same on every device). */
export function gram(gpu: GpuDevice, x: GPUBuffer, T: number, g: GramBuffers): void {
  if (T === 0) return;
  const fast = gpu.caps.kernels === 'fast';
  const tile = fast ? GRAM_TILE : GRAM_WG; // entries per workgroup along each side
  const err = gramProductError(gpu);
  const pipe = fast ? gpu.pipelines.get(`gram_fast_${err}`, () => gramFastWgsl(err)) : gpu.pipelines.get('gram', () => GRAM_WGSL);
  for (const b of g.bands) {
    // columns from the band's first row on (b ≥ a), its rows
    const c0 = Math.floor(b.a0 / tile) * tile;
    gpu.dispatch(pipe, [T, g.K, 0, b.a0, b.rows, c0], [x, b.hi, b.lo], [Math.ceil((g.K - c0) / tile), Math.ceil(b.rows / tile)]);
  }
}

/** S += xᵀx for x[T, K] at precision 'f32': one float32 GEMM (the fast tiled one), added exactly into S (gramFast.wgsl.ts). */
export function gramF32(gpu: GpuDevice, x: GPUBuffer, T: number, g: GramBuffers): void {
  if (T === 0) return;
  for (const b of g.bands) {
    const tile = tileFor(gpu, b.rows, g.K);
    const pipe = gpu.pipelines.get(`gram_f32_${tileKey(tile)}`, () => gramF32Wgsl(tile));
    const c0 = Math.floor(b.a0 / tile.bn) * tile.bn;
    gpu.dispatch(pipe, [T, g.K, 0, b.a0, b.rows, c0], [x, b.hi, b.lo], [Math.ceil((g.K - c0) / tile.bn), Math.ceil(b.rows / tile.bm)]);
  }
}

const MIRROR_TILE = 64;

/** S = hi + lo in float64, mirrored to a full symmetric [K, K]; destroys the planes. */
export async function readGram(gpu: GpuDevice, g: GramBuffers): Promise<Float64Array> {
  const { K } = g;
  try {
    const S = new Float64Array(K * K);
    for (const band of g.bands) {
      const hi = new Float32Array(await gpu.read(band.hi, band.rows * K * 4));
      const lo = new Float32Array(await gpu.read(band.lo, band.rows * K * 4));
      // 64×64 tiles, so that the mirrored writes stay in cache (0.88 → about 0.5 s at K = 14336)
      for (let r0 = 0; r0 < band.rows; r0 += MIRROR_TILE) {
        const r1 = Math.min(r0 + MIRROR_TILE, band.rows);
        for (let b0 = band.a0 + r0; b0 < K; b0 += MIRROR_TILE) {
          const b1 = Math.min(b0 + MIRROR_TILE, K);
          for (let r = r0; r < r1; r++) {
            const a = band.a0 + r;
            for (let b = Math.max(b0, a); b < b1; b++) {
              const v = hi[r * K + b]! + lo[r * K + b]!;
              S[a * K + b] = v;
              S[b * K + a] = v;
            }
          }
        }
      }
    }
    return S;
  } finally {
    for (const b of g.bands) gpu.destroy(b.hi, b.lo);
  }
}
