/// <reference types="@webgpu/types" />
/**
 * A QuIP layer kept packed on the device (quipRebuild.wgsl.ts rebuilds its weight there). The device
 * holds what the checkpoint stores: the codes (qweight words as stored) and one small buffer of the
 * 2^b grid values and D, so b bits per weight plus 4·(2^b + cols) bytes a layer. The two butterflies,
 * drawn once from the seed at upload in the layout the kernel reads, take 4·(2n + 2n(a + b)) bytes per
 * transform as two-float entries (4096 = 64·64: 4 MiB; 11008 = 688·16: 58 MiB). They cannot be drawn
 * on the device: they are float64 Householder QR factors of Gaussian matrices (tensor/quipTransform.ts)
 * and WGSL has no float64. quipButterfliesOnDevice decides where they live: on the device with the
 * layer (uploaded once, counted in its bytes) when they take at most QUIP_BUTTERFLY_RATIO times the
 * codes' bytes, else on the host, uploaded for each rebuild (a 4096×4096 layer keeps them at 2 bits
 * and up, an 11008×4096 one from 3 bits; the 64- to 384-wide layers of the bundled model, 6–17 times their
 * codes, do not).
 *
 * rebuildQuip makes the dense float32 W [rows, cols] in transient buffers (two (hi, lo) plane pairs; W
 * is written over one of the planes) and returns W, the rest freed after the batch that uses them;
 * quipCache.ts keeps rebuilt weights for the multiplies that follow.
 *
 * quipDeviceProblem says when a layer stays on the host path (weights.ts: rebuilt on the host at
 * upload and held as float32): a rotation block above QUIP_DEVICE_MAX_BLOCK (a prime dimension above
 * it is one dense n×n block: n multiply-adds per weight per stage), or a plane or the butterflies
 * larger than one storage binding.
 */
import type { GpuDevice } from '../device.js';
import type { KindLayer } from '../../../tensor/packed.js';
import { QUIP_KIND_NAME, quipGridValues, quipTransforms, quipWords } from '../../../tensor/quipPack.js';
import { butterflyFactors, type Butterfly } from '../../../tensor/quipTransform.js';
import { QUIP_NONE, QUIP_WG, quipStageWgsl, type QuipStage } from './quipRebuild.wgsl.js';

/** The largest rotation block rebuilt on the device. */
export const QUIP_DEVICE_MAX_BLOCK = 1024;

/** The butterflies stay on the device when their bytes are at most this many times the codes'. */
export const QUIP_BUTTERFLY_RATIO = 4;

/** Whether a layer's butterflies (blobBytes) stay on the device beside its codes (codesBytes). */
export function quipButterfliesOnDevice(blobBytes: number, codesBytes: number): boolean {
  return blobBytes <= QUIP_BUTTERFLY_RATIO * codesBytes;
}

/** Word offsets of one butterfly's data in the uploaded blob. */
interface ButterflyAt { readonly n: number; readonly a: number; readonly b: number; readonly gather: number; readonly scatter: number; readonly b1: [number, number]; readonly b0: [number, number] }

/** A QuIP layer on the device. */
export interface QuipBuffers {
  readonly rows: number;
  readonly cols: number;
  readonly bits: number;
  readonly fp16: boolean;
  readonly qweight: GPUBuffer;
  /** the grid values (2^bits f32), then D (cols f32) */
  readonly consts: GPUBuffer;
  /** device bytes the layer holds (qweight + consts, + the butterflies when they live on the device) */
  readonly bytes: number;
  /** both butterflies as the kernel reads them: on the device, or in host memory (uploaded for each rebuild) */
  readonly butterflies: GPUBuffer | Uint32Array;
  readonly V: ButterflyAt;
  readonly U: ButterflyAt;
}

/** Words one butterfly takes in the blob: its two index vectors and its blocks' hi and lo planes. */
const butterflyWords = (n: number, a: number, b: number) => 2 * n + 2 * n * (a + b);

/** Why a layer of this shape is rebuilt on the host instead, or undefined when the device can. */
export function quipDeviceProblem(gpu: GpuDevice, rows: number, cols: number, bits: number): string | undefined {
  const [aU, bU] = butterflyFactors(rows), [aV, bV] = butterflyFactors(cols);
  const big = Math.max(aU, bU, aV, bV);
  if (big > QUIP_DEVICE_MAX_BLOCK) return `a ${big}×${big} rotation block (above ${QUIP_DEVICE_MAX_BLOCK})`;
  const blob = 4 * (butterflyWords(rows, aU, bU) + butterflyWords(cols, aV, bV));
  for (const [what, bytes] of [['a plane of the weight', 4 * rows * cols], ['the butterflies', blob], ['the codes', 4 * rows * quipWords(cols, bits)]] as const) {
    if (bytes > gpu.caps.maxBinding) return `${what} (${bytes} bytes) above one storage binding`;
  }
  return undefined;
}

/**
 * Writes t into blob from word `at`: gather (Pout⁻¹), scatter (Pin), then B1's and B0's hi and lo planes
 * (hi = fround(x), lo = fround(x − hi), x the host's float64 entry).
 */
function putButterfly(blob: Uint32Array, at: number, t: Butterfly): ButterflyAt {
  const { n, a, b } = t;
  const f = new Float32Array(blob.buffer, blob.byteOffset, blob.length);
  const gather = at, scatter = at + n;
  for (let i = 0; i < n; i++) { blob[gather + t.pout[i]!] = i; blob[scatter + i] = t.pin[i]!; }
  let o = scatter + n;
  const pair = (B: Float64Array): [number, number] => {
    const hi = o, lo = o + B.length;
    for (let i = 0; i < B.length; i++) { const h = Math.fround(B[i]!); f[hi + i] = h; f[lo + i] = B[i]! - h; }
    o = lo + B.length;
    return [hi, lo];
  };
  const b1 = pair(t.B1), b0 = pair(t.B0);
  return { n, a, b, gather, scatter, b1, b0 };
}

/** The layer on the device; undefined for a layer that is not QuIP's, was opened without its parts, or has a problem above. */
export function uploadQuip(gpu: GpuDevice, what: string, k: KindLayer): QuipBuffers | undefined {
  if (k.kind !== QUIP_KIND_NAME || !k.parts) return undefined;
  const { rows, cols } = k;
  // the parts were checked when the layer was opened (QUIP_KIND.open)
  const rec = k.parts.g_idx!.data as Int32Array, scales = k.parts.scales!.data as Float32Array;
  const seed = rec[1]! >>> 0, fp16 = rec[2] === 1, bits = rec[3]!;
  if (quipDeviceProblem(gpu, rows, cols, bits)) return undefined;
  const { U, V } = quipTransforms(rows, cols, seed);
  const blob = new Uint32Array(butterflyWords(cols, V.a, V.b) + butterflyWords(rows, U.a, U.b));
  const Vat = putButterfly(blob, 0, V), Uat = putButterfly(blob, butterflyWords(cols, V.a, V.b), U);
  const consts = new Float32Array((1 << bits) + cols);
  consts.set(quipGridValues(bits, scales[0]!, fp16));
  consts.set(scales.subarray(1), 1 << bits);
  const q = k.parts.qweight!.data as Int32Array;
  const qweight = gpu.upload(`${what} qweight`, q), cbuf = gpu.upload(`${what} grid and D`, consts);
  const place = gpu.caps.quipButterflies ?? (quipButterfliesOnDevice(blob.byteLength, q.byteLength) ? 'device' : 'host');
  const butterflies = place === 'device' ? gpu.upload(`${what} butterflies`, blob) : blob;
  return {
    rows, cols, bits, fp16, qweight, consts: cbuf,
    bytes: qweight.size + cbuf.size + (butterflies instanceof Uint32Array ? 0 : butterflies.size),
    butterflies, V: Vat, U: Uat,
  };
}

export function destroyQuip(gpu: GpuDevice, q: QuipBuffers): void {
  gpu.destroy(q.qweight, q.consts, ...(q.butterflies instanceof Uint32Array ? [] : [q.butterflies]));
}

/** One stage's dispatch: m vectors of t.n entries at (sv, sj). */
function stage(gpu: GpuDevice, kind: QuipStage, q: QuipBuffers, t: ButterflyAt, run: boolean, m: number, sv: number, sj: number, bufs: GPUBuffer[]): void {
  const pipe = gpu.pipelines.get(`quip_${kind}`, () => quipStageWgsl(kind));
  const [hi, lo] = run ? t.b1 : t.b0;
  const params = [
    0, m, t.n, sv, sj, t.a, t.b, run ? 1 : 0, run ? t.gather : QUIP_NONE, run ? QUIP_NONE : t.scatter, hi, lo,
    quipWords(q.cols, q.bits), q.bits, 1 << q.bits, q.fp16 ? 1 : 0,
  ];
  gpu.dispatch(pipe, params, bufs, Math.ceil((m * t.n) / QUIP_WG));
}

/**
 * Rebuilds W [rows, cols] (float32, row-major) on the device: records the four stages and returns W,
 * a storage buffer the caller frees; the other buffers are freed after the batch that uses them
 * (device.ts destroy).
 */
export function rebuildQuip(gpu: GpuDevice, q: QuipBuffers): GPUBuffer {
  const { rows, cols } = q, n = rows * cols;
  const what = `QuIP weight [${rows}, ${cols}] rebuild`;
  const made: GPUBuffer[] = [];
  let w: GPUBuffer | undefined;
  try {
    const aux = q.butterflies instanceof Uint32Array ? gpu.upload(`${what}: butterflies`, q.butterflies) : q.butterflies;
    if (aux !== q.butterflies) made.push(aux);
    const plane = (name: string) => { const b = gpu.storage(`${what}: ${name}`, 4 * n); made.push(b); return b; };
    const aHi = plane('A hi'), aLo = plane('A lo'), bHi = plane('B hi'), bLo = plane('B lo');
    // G·V: V's stages along each row (vectors = rows: sv = cols, sj = 1), the first reading the codes
    stage(gpu, 'codes', q, q.V, true, rows, cols, 1, [q.qweight, q.consts, aux, aHi, aLo]);
    stage(gpu, 'pairs', q, q.V, false, rows, cols, 1, [aux, aHi, aLo, bHi, bLo]);
    // Uᵀ·(G·V): U's stages down each column (vectors = columns: sv = 1, sj = cols), the last one rounding into W (over B hi)
    stage(gpu, 'pairs', q, q.U, true, cols, 1, cols, [aux, bHi, bLo, aHi, aLo]);
    stage(gpu, 'final', q, q.U, false, cols, 1, cols, [q.consts, aux, aHi, aLo, bHi]);
    w = bHi;
    return w;
  } finally {
    gpu.destroy(...made.filter((b) => b !== w));
  }
}
