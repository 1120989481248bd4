/// <reference types="@webgpu/types" />
/**
 * Dispatch of AWQ's clip search (clip.wgsl.ts): per group of gs columns and chunk of rows, the candidates
 * (and the unchanged group) in one buffer, one GEMM of the group's sampled tokens against all of them
 * (the backend's linear kernel), the errors and the first strict minimum per row, written to a [rows,
 * groups] step buffer on the device that is read once at the end.
 */
import { f32Bits, type GpuDevice } from '../device.js';
import type { Part } from '../weights.js';
import { linearDense } from './linear.js';
import { CLIP_ARGMIN_WGSL, CLIP_ERR_WGSL, CLIP_QUANT_WGSL, CLIP_WG, GATHER_COLS_WGSL } from './clip.wgsl.js';

/** llm-awq's smallest range (max − min) of a group, float32 as the host's MIN_RANGE. */
const MIN_RANGE = Math.fround(1e-5);
/** The most bytes one chunk's GEMM output [n, (steps + 1)·R] takes (below the binding limit where that is lower). */
const CHUNK_BYTES = 128 * 2 ** 20;

export interface ClipShape {
  /** sampled tokens */
  n: number;
  rows: number;
  cols: number;
  gs: number;
  /** shrink steps: maxv holds [steps, rows, cols / gs] clamp bounds */
  steps: number;
  bits: number;
  f16: boolean;
}

/** Rows per chunk: the GEMM output [n, (steps + 1)·R] and the candidates [(steps + 1)·R, gs] within CHUNK_BYTES and one binding. */
export function clipChunkRows(gpu: GpuDevice, s: ClipShape): number {
  const budget = Math.min(CHUNK_BYTES, gpu.caps.maxBinding);
  const R = Math.min(s.rows, Math.floor(budget / ((s.steps + 1) * 4 * Math.max(s.n, s.gs))));
  // below one row: the size refusal names what did not fit
  if (R < 1) gpu.fits(`clip search output [${s.n}, ${s.steps + 1}]`, s.n * (s.steps + 1) * 4);
  return Math.max(1, R);
}

/** The chunk's candidates into cand [(steps + 1)·R, gs]: rows r0..r0+R of part `w` (row0.. of the whole weight), group g. */
function clipQuant(gpu: GpuDevice, w: GPUBuffer, maxv: GPUBuffer, cand: GPUBuffer, s: ClipShape, g: number, r0: number, row0: number, R: number): void {
  const pipe = gpu.pipelines.get('clip_quant', () => CLIP_QUANT_WGSL);
  gpu.dispatch(pipe, [R, s.cols, s.gs, g, r0, row0, s.rows, s.steps, 2 ** s.bits - 1, s.f16 ? 1 : 0, f32Bits(MIN_RANGE), 0],
    [w, maxv, cand], Math.ceil((s.steps + 1) * R / CLIP_WG));
}

/** Buffers one search reuses for every group and chunk. */
interface Scratch { xg: GPUBuffer; cand: GPUBuffer; out: GPUBuffer; errs: GPUBuffer; R: number }

function scratch(gpu: GpuDevice, s: ClipShape): Scratch {
  const R = clipChunkRows(gpu, s), k = s.steps + 1;
  return {
    R,
    xg: gpu.storage(`clip search tokens [${s.n}, ${s.gs}]`, s.n * s.gs * 4),
    cand: gpu.storage(`clip search candidates [${k * R}, ${s.gs}]`, k * R * s.gs * 4),
    out: gpu.storage(`clip search output [${s.n}, ${k * R}]`, s.n * k * R * 4),
    errs: gpu.storage(`clip search errors [${s.steps * R}, 2]`, s.steps * R * 8),
  };
}

/** Every (group, row chunk) of the weight's parts, the group's tokens gathered into xg first. */
function forChunks(gpu: GpuDevice, x: GPUBuffer, parts: readonly Part[], s: ClipShape, b: Scratch,
  f: (g: number, p: Part, r0: number, R: number) => void): void {
  const gather = gpu.pipelines.get('clip_gather_cols', () => GATHER_COLS_WGSL);
  for (let g = 0; g < s.cols / s.gs; g++) {
    gpu.dispatch(gather, [s.n, s.cols, s.gs, g * s.gs], [x, b.xg], Math.ceil(s.n * s.gs / CLIP_WG));
    for (const p of parts) for (let r0 = 0; r0 < p.rows; r0 += b.R) f(g, p, r0, Math.min(b.R, p.rows - r0));
  }
}

/**
 * The chosen shrink step per (row, group) of the weight (float32 row parts), for the sampled tokens x
 * [n, cols] and the clamp bounds maxv [steps, rows, groups]: the first step whose candidate changes the
 * group's partial products on the tokens least (two-float squared error summed over the tokens).
 */
export async function clipSearch(gpu: GpuDevice, x: GPUBuffer, parts: readonly Part[], maxv: GPUBuffer, s: ClipShape): Promise<Uint8Array> {
  const groups = s.cols / s.gs, k = s.steps + 1;
  const steps = gpu.storage(`clip search steps [${s.rows}, ${groups}]`, s.rows * groups * 4);
  const b = scratch(gpu, s);
  try {
    const err = gpu.pipelines.get('clip_err', () => CLIP_ERR_WGSL), argmin = gpu.pipelines.get('clip_argmin', () => CLIP_ARGMIN_WGSL);
    forChunks(gpu, x, parts, s, b, (g, p, r0, R) => {
      clipQuant(gpu, p.buffer, maxv, b.cand, s, g, r0, p.start + r0, R);
      linearDense(gpu, 'f32', b.xg, b.cand, b.out, { M: s.n, K: s.gs, ldy: k * R }, k * R, 0);
      gpu.dispatch(err, [s.n, R, s.steps, 0], [b.out, b.errs], Math.ceil(s.steps * R / CLIP_WG));
      gpu.dispatch(argmin, [R, s.steps, p.start + r0, groups, g], [b.errs, steps], Math.ceil(R / CLIP_WG));
    });
    return Uint8Array.from(new Uint32Array(await gpu.read(steps, s.rows * groups * 4)));
  } finally {
    gpu.destroy(steps, b.xg, b.cand, b.out, b.errs);
  }
}

/** Tests: every candidate the search makes, as [steps, rows, cols] (step s's clamped and quantized weight). */
export async function clipCandidates(gpu: GpuDevice, x: GPUBuffer, parts: readonly Part[], maxv: GPUBuffer, s: ClipShape): Promise<Float32Array> {
  const all = new Float32Array(s.steps * s.rows * s.cols);
  const b = scratch(gpu, s);
  const reads: Promise<void>[] = [];
  try {
    forChunks(gpu, x, parts, s, b, (g, p, r0, R) => {
      clipQuant(gpu, p.buffer, maxv, b.cand, s, g, r0, p.start + r0, R);
      // read records its copy now, before the next chunk overwrites the scratch
      reads.push(gpu.read(b.cand, s.steps * R * s.gs * 4).then((buf) => {
        const c = new Float32Array(buf);
        for (let st = 0; st < s.steps; st++) {
          for (let r = 0; r < R; r++) {
            all.set(c.subarray((st * R + r) * s.gs, (st * R + r + 1) * s.gs), (st * s.rows + p.start + r0 + r) * s.cols + g * s.gs);
          }
        }
      }));
    });
    await Promise.all(reads);
    return all;
  } finally {
    gpu.destroy(b.xg, b.cand, b.out, b.errs);
  }
}
