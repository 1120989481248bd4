/**
 * The stored kind `pbllm` (PB-LLM, quant/methods/pbllm.ts): a linear layer [rows = out, cols = in]
 * whose weights are either binarized per (row, column group) to μ ± α or, where salient, on an
 * asymmetric per-row grid of `highBit` bits. Parts, each `<layer>.<part>` in safetensors:
 *
 *   signs    u8 [rows, cols/8]  bit plane, bit c % 8 of byte c / 8 (least significant first)
 *   salient  u8 [rows, cols/8]  bitmap in the same layout
 *   codes    u8 [n]             the salient weights' grid codes, row-major in the bitmap's order
 *   mu       f32 | f16 [rows, groups]  μ of each (row, column group): the binarizer's centre
 *   alpha    f32 | f16 [rows, groups]  α of each (row, column group): its half-distance, ≥ 0
 *   scale    f32 | f16 [rows]   the per-row grid's scale
 *   zero     u8 [rows]          the per-row grid's zero point
 *
 * A weight (r, c) of group g = c / (cols / groups) decodes, from its two bits, as
 *   salient 0, sign 1 → fround(μ + α)     salient 0, sign 0 → fround(μ − α)
 *   salient 1, sign 0 → fround(scale · (code − zero)), code the next entry of `codes`
 *   salient 1, sign 1 → μ                 (a binarized weight exactly at μ: the reference's
 *                                          torch.sign(0) = 0; almost never happens)
 * which is the quantizer's arithmetic in float32, so decoding gives its Q bit for bit.
 *
 * Why a bitmap and not sparse indices: the salient set is 10–15% of the weights (low fraction 0.9
 * or 6/7), so a bitmap costs 1 bit per weight where int16 column indices would cost 1.6–2.3 (and
 * uint8 in-group offsets plus per-group counts about as much as the bitmap); the bitmap is also
 * the clearer layout: both planes decode row by row with the same byte and bit. Ties reuse the
 * sign bit of a salient position, which is otherwise unused, so they need no part of their own.
 * Codes are a byte each whatever the salient grid's bits (8 in every PB-LLM setting). The input
 * width must be a multiple of 8 (every LLaMA shape is), so that the planes give it exactly.
 */
import { f16ToF32, f32ToF16 } from './codecs.js';
import type { KindLayer } from './packed.js';
import type { PackedKind, PartInfo } from './kinds.js';
import { Tensor } from './tensor.js';

export const PBLLM_PARTS = ['signs', 'salient', 'codes', 'mu', 'alpha', 'scale', 'zero'] as const;

/** A quantized PB-LLM layer as the quantizer leaves it (everything row-major). */
export interface PbllmLayer {
  readonly rows: number;
  readonly cols: number;
  /** 1 = binarized, 0 = salient [rows, cols] */
  readonly binarized: Uint8Array;
  /** salient: the grid code; binarized: 0 (μ − α), 1 (exactly at μ), 2 (μ + α) [rows, cols] */
  readonly codes: Uint8Array;
  readonly mu: Float32Array;    // [rows, groups]
  readonly alpha: Float32Array; // [rows, groups]
  readonly scale: Float32Array; // [rows]
  readonly zero: Uint8Array;    // [rows]
  /** 'f16': μ, α and the scale are fp16 values (the quantizer rounded them) and are stored as such */
  readonly paramDtype: 'f32' | 'f16';
}

function floats(x: Float32Array, shape: number[], dtype: 'f32' | 'f16', what: string): Tensor {
  if (dtype === 'f32') return new Tensor('f32', shape, x);
  const h = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    h[i] = f32ToF16(x[i]!);
    if (f16ToF32(h[i]!) !== x[i]) throw new Error(`${what} ${x[i]} is not an fp16 value: the layer was not solved with fp16 parameters`);
  }
  return new Tensor('f16', shape, h);
}

/** The parts of a quantized layer (see the layout above). */
export function packPbllm(l: PbllmLayer): Record<string, Tensor> {
  const { rows, cols } = l;
  if (cols % 8 !== 0) throw new Error(`the pbllm layout needs an input width that is a multiple of 8, got ${cols}`);
  const B = cols / 8, groups = l.mu.length / rows;
  const signs = new Uint8Array(rows * B), salient = new Uint8Array(rows * B);
  let n = 0;
  for (let i = 0; i < rows * cols; i++) if (!l.binarized[i]) n++;
  const codes = new Uint8Array(n);
  n = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c, byte = r * B + (c >> 3), bit = 1 << (c & 7), code = l.codes[i]!;
      if (!l.binarized[i]) { salient[byte]! |= bit; codes[n++] = code; }
      else if (code === 2) signs[byte]! |= bit;
      else if (code === 1) { signs[byte]! |= bit; salient[byte]! |= bit; }
      else if (code !== 0) throw new Error(`binarized weight [${r}, ${c}] has code ${code}; only 0, 1 and 2 exist`);
    }
  }
  return {
    signs: new Tensor('u8', [rows, B], signs),
    salient: new Tensor('u8', [rows, B], salient),
    codes: new Tensor('u8', [codes.length], codes.subarray(0, n)),
    mu: floats(l.mu, [rows, groups], l.paramDtype, 'μ'),
    alpha: floats(l.alpha, [rows, groups], l.paramDtype, 'α'),
    scale: floats(l.scale, [rows], l.paramDtype, 'scale'),
    zero: new Tensor('u8', [rows], l.zero),
  };
}

/** Set bits of each byte. */
const POPCOUNT = Uint8Array.from({ length: 256 }, (_, b) => { let n = 0; for (let x = b; x; x >>= 1) n += x & 1; return n; });

const shapeOf = (p: PartInfo) => `[${p.shape.join(', ')}]`;

function shape(parts: Readonly<Record<string, PartInfo>>): [number, number] {
  const { signs, salient, codes, mu, alpha, scale, zero } = parts as Record<(typeof PBLLM_PARTS)[number], PartInfo>;
  const need = (ok: boolean, msg: string) => { if (!ok) throw new Error(msg); };
  need(signs.dtype === 'u8' && signs.shape.length === 2 && signs.shape[0]! > 0 && signs.shape[1]! > 0,
    `signs is ${signs.dtype} ${shapeOf(signs)}; it must be u8 [rows, in/8]`);
  const rows = signs.shape[0]!, B = signs.shape[1]!, cols = 8 * B;
  need(salient.dtype === 'u8' && salient.shape.length === 2 && salient.shape[0] === rows && salient.shape[1] === B,
    `salient is ${salient.dtype} ${shapeOf(salient)}; it must be u8 [${rows}, ${B}] as signs`);
  need(codes.dtype === 'u8' && codes.shape.length === 1 && codes.shape[0]! <= rows * cols,
    `codes is ${codes.dtype} ${shapeOf(codes)}; it must be u8 [n] with n ≤ ${rows * cols}`);
  need((mu.dtype === 'f32' || mu.dtype === 'f16') && mu.shape.length === 2 && mu.shape[0] === rows && mu.shape[1]! > 0 && cols % mu.shape[1]! === 0,
    `mu is ${mu.dtype} ${shapeOf(mu)}; it must be f32 or f16 [${rows}, groups] with groups dividing ${cols}`);
  need(alpha.dtype === mu.dtype && alpha.shape.length === 2 && alpha.shape[0] === rows && alpha.shape[1] === mu.shape[1],
    `alpha is ${alpha.dtype} ${shapeOf(alpha)}; it must be ${mu.dtype} ${shapeOf(mu)} as mu`);
  need(scale.dtype === mu.dtype && scale.shape.length === 1 && scale.shape[0] === rows, `scale is ${scale.dtype} ${shapeOf(scale)}; it must be ${mu.dtype} [${rows}]`);
  need(zero.dtype === 'u8' && zero.shape.length === 1 && zero.shape[0] === rows, `zero is ${zero.dtype} ${shapeOf(zero)}; it must be u8 [${rows}]`);
  return [rows, cols];
}

function open(parts: Readonly<Record<string, Tensor>>): KindLayer {
  const info = Object.fromEntries(Object.entries(parts).map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]));
  const [rows, cols] = shape(info);
  const signs = parts.signs!.data as Uint8Array, salient = parts.salient!.data as Uint8Array, codes = parts.codes!.data as Uint8Array;
  const mu = parts.mu!.toF32(), alpha = parts.alpha!.toF32(), scale = parts.scale!.toF32(), zero = parts.zero!.data as Uint8Array;
  const B = cols / 8, groups = mu.length / rows, G = cols / groups;
  // where each row's codes start: the salient positions whose sign bit is 0
  const rowStart = new Int32Array(rows + 1);
  for (let r = 0; r < rows; r++) {
    let n = 0;
    for (let b = r * B; b < (r + 1) * B; b++) n += POPCOUNT[salient[b]! & ~signs[b]! & 0xff]!;
    rowStart[r + 1] = rowStart[r]! + n;
  }
  if (rowStart[rows] !== codes.length) throw new Error(`the salient bitmap has ${rowStart[rows]} coded weights but codes holds ${codes.length}`);
  for (let i = 0; i < mu.length; i++) {
    if (!Number.isFinite(mu[i]!) || !(alpha[i]! >= 0 && alpha[i]! < Infinity)) {
      throw new Error(`row ${Math.floor(i / groups)} group ${i % groups}: μ = ${mu[i]}, α = ${alpha[i]} (μ must be finite, α finite and ≥ 0)`);
    }
  }
  for (let r = 0; r < rows; r++) if (!(scale[r]! > 0 && scale[r]! < Infinity)) throw new Error(`row ${r}: scale ${scale[r]} must be finite and > 0`);
  // the two binarized values of each (row, group), as the quantizer rounds them
  const hi = new Float32Array(mu.length), lo = new Float32Array(mu.length);
  for (let i = 0; i < mu.length; i++) { hi[i] = mu[i]! + alpha[i]!; lo[i] = mu[i]! - alpha[i]!; }
  const parameters = new Float32Array(2 * mu.length + rows);
  parameters.set(mu); parameters.set(alpha, mu.length); parameters.set(scale, 2 * mu.length);
  return {
    kind: 'pbllm', rows, cols, coreRows: rows, coreCols: cols, parameters,
    decodeRows(r0, nr, out) {
      for (let r = r0; r < r0 + nr; r++) {
        const o = (r - r0) * cols, s = scale[r]!, z = zero[r]!;
        let k = rowStart[r]!;
        for (let c = 0; c < cols; c++) {
          const b = r * B + (c >> 3), bit = 1 << (c & 7), p = r * groups + Math.floor(c / G);
          const sign = signs[b]! & bit;
          if (!(salient[b]! & bit)) out[o + c] = sign ? hi[p]! : lo[p]!;
          else out[o + c] = sign ? mu[p]! : Math.fround(s * (codes[k++]! - z));
        }
      }
    },
  };
}

export const PBLLM_KIND: PackedKind = { name: 'pbllm', parts: PBLLM_PARTS, shape: (p) => shape(p), open: (p) => open(p) };
