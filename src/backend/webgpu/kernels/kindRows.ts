/**
 * Rows r0..r1 of a stored layer's parts as the parts of a layer of r1 − r0 rows of the same kind, so
 * that a layer whose parts exceed one storage binding is uploaded in parts of whole rows, each decoded
 * by the unchanged w_at (kindDecoders.wgsl.ts) and multiplied on its own, as dense row parts are
 * (weights.ts). Per-layer constants stay whole (NF4's absmax2, offset and tau_absmax, which the
 * decoder indexes from the part's first block b0; BiLLM's salient columns; GPTQ's g_idx).
 */
import { Tensor } from '../../../tensor/tensor.js';

export type Parts = Readonly<Record<string, Tensor>>;

export const NF4_KINDS: ReadonlySet<string> = new Set(['nf4', 'nf4dq', 'icq', 'icqdq']);
/** GPTQ v1 codes with float zero points, seen as parts (qweight [words, N], scales and zerosF [groups, N], g_idx [K]). */
export const GPTQ_FLOAT_ZEROS = 'gptq-float-zeros';

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** A part's first row must be a multiple of this (NF4: a part starts on a block of 64 weights). */
export function rowAlign(kind: string, cols: number): number {
  return NF4_KINDS.has(kind) ? 64 / gcd(cols, 64) : 1;
}

const sub = (t: Tensor, shape: number[], a: number, b: number) => new Tensor(t.dtype, shape, t.data.subarray(a, b));

/** Rows [r0, r1) of plane-major bytes [planes, rows, B]. */
function planeRows(t: Tensor, planes: number, rows: number, B: number, r0: number, r1: number): Tensor {
  const nr = r1 - r0, out = new Uint8Array(planes * nr * B), d = t.data as Uint8Array;
  for (let p = 0; p < planes; p++) out.set(d.subarray((p * rows + r0) * B, (p * rows + r1) * B), p * nr * B);
  return new Tensor(t.dtype, [planes, nr, B], out);
}

/** Columns [c0, c1) of a row-major [R, C] tensor. */
function columns(t: Tensor, R: number, C: number, c0: number, c1: number): Tensor {
  const n = c1 - c0, d = t.data as Float32Array, out = new (d.constructor as new (n: number) => Float32Array)(R * n);
  for (let r = 0; r < R; r++) out.set(d.subarray(r * C + c0, r * C + c1), r * n);
  return new Tensor(t.dtype, [R, n], out);
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, b) => { let n = 0; for (let x = b; x; x >>= 1) n += x & 1; return n; });
/** PB-LLM's coded (salient, sign 0) weights in bytes [a, b) of the planes. */
function coded(signs: Uint8Array, salient: Uint8Array, a: number, b: number): number {
  let n = 0;
  for (let i = a; i < b; i++) n += POPCOUNT[salient[i]! & ~signs[i]! & 0xff]!;
  return n;
}

/** The parts of rows [r0, r1) (r0 a multiple of rowAlign). */
export function sliceRows(kind: string, t: Parts, rows: number, cols: number, r0: number, r1: number): Parts {
  const nr = r1 - r0;
  if (NF4_KINDS.has(kind)) {
    const b0 = (r0 * cols) / 64, b1 = Math.ceil((r1 * cols) / 64);
    const out: Record<string, Tensor> = { ...t, codes: sub(t.codes!, [nr, cols / 2], (r0 * cols) / 2, (r1 * cols) / 2), absmax: sub(t.absmax!, [b1 - b0], b0, b1) };
    if (t.tau_quant) out.tau_quant = sub(t.tau_quant, [b1 - b0], b0, b1);
    return out;
  }
  if (kind === 'dbllm') {
    const groups = t.alphas!.shape[1]!;
    return { planes: planeRows(t.planes!, 2, rows, cols / 8, r0, r1), alphas: sub(t.alphas!, [nr, groups, 2], r0 * groups * 2, r1 * groups * 2) };
  }
  if (kind === 'pbllm') {
    const B = cols / 8, groups = t.mu!.shape[1]!, signs = t.signs!.data as Uint8Array, salient = t.salient!.data as Uint8Array;
    const k0 = coded(signs, salient, 0, r0 * B), k1 = k0 + coded(signs, salient, r0 * B, r1 * B);
    return {
      signs: sub(t.signs!, [nr, B], r0 * B, r1 * B), salient: sub(t.salient!, [nr, B], r0 * B, r1 * B), codes: sub(t.codes!, [k1 - k0], k0, k1),
      mu: sub(t.mu!, [nr, groups], r0 * groups, r1 * groups), alpha: sub(t.alpha!, [nr, groups], r0 * groups, r1 * groups),
      scale: sub(t.scale!, [nr], r0, r1), zero: sub(t.zero!, [nr], r0, r1),
    };
  }
  if (kind === 'billm') {
    const B = Math.ceil(cols / 8), nb = t.params!.shape[1]!, P = t.params!.shape[2]!;
    const z = t.zero_signs!.data as Int32Array, lo = 2 * r0 * cols, hi = 2 * r1 * cols;
    const zs = Int32Array.from(z.filter((v) => v >= lo && v < hi), (v) => v - lo);
    return {
      planes: planeRows(t.planes!, 2, rows, B, r0, r1), salient: t.salient!,
      params: sub(t.params!, [nr, nb, P], r0 * nb * P, r1 * nb * P), zero_signs: new Tensor('i32', [zs.length], zs),
    };
  }
  if (kind === GPTQ_FLOAT_ZEROS) {
    const words = t.qweight!.shape[0]!, groups = t.scales!.shape[0]!;
    return {
      qweight: columns(t.qweight!, words, rows, r0, r1), scales: columns(t.scales!, groups, rows, r0, r1),
      zerosF: columns(t.zerosF!, groups, rows, r0, r1), g_idx: t.g_idx!,
    };
  }
  throw new Error(`sliceRows: no row slicing for kind ${kind}`);
}
