/**
 * The stored kinds of bitsandbytes' NormalFloat-4 (quant/methods/nf4.ts) and IR-QLoRA's ICQ
 * (quant/methods/icq.ts): a linear layer [rows = out, cols = in] flattened row-major, as bitsandbytes
 * flattens the weight, and cut into blocks of 64 consecutive weights, the last one possibly shorter.
 * Parts, each `<layer>.<part>` in safetensors:
 *
 *   codes       u8  [rows, cols/2]  two 4-bit NF4 codes a byte, weight 2i in the high nibble, 2i + 1 in the
 *                                   low one (bitsandbytes' kQuantizeBlockwise packing: `q[2j] << 4 | q[2j+1]`)
 *   absmax      f32 [blocks]        kind nf4, icq: each block's absmax
 *               u8  [blocks]        kind nf4dq, icqdq: the absmax codes on the 8-bit dynamic map (double quantization)
 *   absmax2     f32 [ceil(blocks/256)]  nf4dq, icqdq: absmax of (absmax − offset) per 256 absmax values
 *   offset      f32 [1]             nf4dq, icqdq: the mean of the absmax values
 *   tau_quant   u8  [blocks]        icq, icqdq: each block's shift τ, coded on the 8-bit dynamic map
 *   tau_absmax  f32 [ceil(blocks/256)]  icq, icqdq: absmax of τ per group of 256 blocks
 *
 * A weight i of block b = ⌊i/64⌋ decodes, every step a float32 rounding, as bitsandbytes does:
 *   absmax_b = absmax[b]                                        (nf4, icq)
 *            = fround(fround(DYNAMIC_MAP[absmax[b]] · absmax2[⌊b/256⌋]) + offset)   (nf4dq, icqdq:
 *              dequantize_blockwise, then `absmax += offset`)
 *   w_i      = fround(NF4_LEVELS[code_i] · absmax_b)            (dequantize_4bit)
 *   ICQ adds τ back (IR-QLoRA utils.py IRQLoraLinear4bit.forward):
 *   τ_b      = fround(DYNAMIC_MAP[tau_quant[b]] · tau_absmax[⌊b/256⌋]),  w_i = fround(w_i + τ_b)
 * so decoding gives the quantizer's Q bit for bit. The two tables are constants of the code, as in
 * bitsandbytes (a checkpoint does not repeat them): the 16 NF4 levels of `get_4bit_type('nf4')` and
 * the 256 values of `create_dynamic_map(signed=True)`.
 *
 * Why four kinds and not one with optional parts: a kind's parts are a fixed list (tensor/kinds.ts),
 * and the plain and double-quantized absmax differ in dtype and in the parts beside them; one small
 * factory gives all four, so they share the checks and the decoder.
 */
import type { KindLayer } from './packed.js';
import type { PackedKind, PartInfo } from './kinds.js';
import { Tensor } from './tensor.js';

/** Weights per NF4 block (QLoRA's and bitsandbytes' default blocksize). */
export const NF4_BLOCK = 64;
/** absmax values per block of the double quantization (bitsandbytes quantize_4bit: `quantize_blockwise(..., blocksize=256)`), and NF4 blocks per τ group (IR-QLoRA --blocksize2). */
export const NESTED_BLOCK = 256;

/**
 * NF4's 16 levels, bitsandbytes csrc/kernels.cu `nf4_dequantization_lut` = functional.py
 * `get_4bit_type('nf4')` (create_normal_map(offset=0.9677083, use_extra_value=True)), as float32.
 */
export const NF4_LEVELS = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/**
 * bitsandbytes' signed 8-bit dynamic map, functional.py `create_dynamic_map(signed=True,
 * max_exponent_bits=7, total_bits=8)`, sorted: 127 negative values, 0 at index 127, 127 positive
 * values, 1 at index 255. Transcribed from the float32 tensor that function returns under
 * torch 2.13.0+cpu (scripts/nf4-dynamic-map.py prints it): torch.linspace's float32 rounding is not
 * a plain formula, so the table is data; test/quant/nf4.test.ts checks it against the formula in
 * float64 (within 2 float32 ulps) and its shape.
 */
export const DYNAMIC_MAP = Float32Array.from([
  -0.99296874, -0.9789063, -0.96484375, -0.9507812, -0.93671876, -0.92265624, -0.9085938, -0.89453125, -0.8804687, -0.86640626, -0.85234374, -0.8382813,
  -0.82421875, -0.8101562, -0.79609376, -0.78203124, -0.7679688, -0.75390625, -0.7398437, -0.72578126, -0.7117188, -0.6976563, -0.68359375, -0.6695312,
  -0.65546876, -0.6414063, -0.6273438, -0.61328125, -0.5992187, -0.58515626, -0.5710938, -0.5570313, -0.54296875, -0.5289062, -0.5148437, -0.50078124,
  -0.4867187, -0.47265625, -0.45859373, -0.44453126, -0.43046874, -0.41640624, -0.40234375, -0.38828123, -0.37421876, -0.36015624, -0.34609374, -0.33203125,
  -0.31796873, -0.30390626, -0.28984374, -0.27578127, -0.26171875, -0.24765624, -0.23359375, -0.21953125, -0.20546874, -0.19140625, -0.17734376, -0.16328125,
  -0.14921875, -0.13515624, -0.12109375, -0.107031256, -0.09859375, -0.09578126, -0.092968754, -0.09015625, -0.08734375, -0.08453125, -0.08171876, -0.07890625,
  -0.07609375, -0.07328125, -0.070468746, -0.067656256, -0.06484375, -0.06203125, -0.059218753, -0.05640625, -0.05359375, -0.05078125, -0.04796875, -0.04515625,
  -0.042343747, -0.03953125, -0.036718752, -0.03390625, -0.03109375, -0.028281251, -0.02546875, -0.02265625, -0.019843752, -0.01703125, -0.01421875, -0.01140625,
  -0.00971875, -0.009156249, -0.00859375, -0.00803125, -0.00746875, -0.00690625, -0.00634375, -0.00578125, -0.0052187503, -0.0046562497, -0.00409375, -0.0035312497,
  -0.00296875, -0.00240625, -0.00184375, -0.0012812499, -0.0009437501, -0.00083125, -0.00071875006, -0.0006062501, -0.00049375003, -0.00038125002, -0.00026875004, -0.00015625001,
  -8.875e-05, -6.625e-05, -4.375e-05, -2.1249998e-05, -7.75e-06, -3.2500002e-06, -5.5000004e-07, 0, 5.5000004e-07, 3.2500002e-06, 7.75e-06, 2.1249998e-05,
  4.375e-05, 6.625e-05, 8.875e-05, 0.00015625001, 0.00026875004, 0.00038125002, 0.00049375003, 0.0006062501, 0.00071875006, 0.00083125, 0.0009437501, 0.0012812499,
  0.00184375, 0.00240625, 0.00296875, 0.0035312497, 0.00409375, 0.0046562497, 0.0052187503, 0.00578125, 0.00634375, 0.00690625, 0.00746875, 0.00803125,
  0.00859375, 0.009156249, 0.00971875, 0.01140625, 0.01421875, 0.01703125, 0.019843752, 0.02265625, 0.02546875, 0.028281251, 0.03109375, 0.03390625,
  0.036718752, 0.03953125, 0.042343747, 0.04515625, 0.04796875, 0.05078125, 0.05359375, 0.05640625, 0.059218753, 0.06203125, 0.06484375, 0.067656256,
  0.070468746, 0.07328125, 0.07609375, 0.07890625, 0.08171876, 0.08453125, 0.08734375, 0.09015625, 0.092968754, 0.09578126, 0.09859375, 0.107031256,
  0.12109375, 0.13515624, 0.14921875, 0.16328125, 0.17734376, 0.19140625, 0.20546874, 0.21953125, 0.23359375, 0.24765624, 0.26171875, 0.27578127,
  0.28984374, 0.30390626, 0.31796873, 0.33203125, 0.34609374, 0.36015624, 0.37421876, 0.38828123, 0.40234375, 0.41640624, 0.43046874, 0.44453126,
  0.45859373, 0.47265625, 0.4867187, 0.50078124, 0.5148437, 0.5289062, 0.54296875, 0.5570313, 0.5710938, 0.58515626, 0.5992187, 0.61328125,
  0.6273438, 0.6414063, 0.65546876, 0.6695312, 0.68359375, 0.6976563, 0.7117188, 0.72578126, 0.7398437, 0.75390625, 0.7679688, 0.78203124,
  0.79609376, 0.8101562, 0.82421875, 0.8382813, 0.85234374, 0.86640626, 0.8804687, 0.89453125, 0.9085938, 0.92265624, 0.93671876, 0.9507812,
  0.96484375, 0.9789063, 0.99296874, 1,
]);

/**
 * The largest error of the dynamic map on values in [-1, 1], relative to the block's absmax: half its widest
 * gap, about 0.9/64/2 = 0.00703 (between neighbours of the last decade; −1 is as far from the lowest value,
 * −0.99296875). Double quantization changes an absmax by at most this times its group's absmax2, plus float32
 * rounding.
 */
export const NF4_DQ_ERROR = DYNAMIC_MAP.reduce((m, v, k) => (k === 0 ? Math.max(m, v + 1) : Math.max(m, (v - DYNAMIC_MAP[k - 1]!) / 2)), 0);

/**
 * absmax value b from its dynamic-map code, fround(fround(map[q] · absmax2[⌊b/256⌋]) + offset); or, without
 * an offset, τ_b = fround(map[q] · absmax2[⌊b/256⌋]) (ICQ adds nothing, and a −0 must stay −0).
 */
export function dequantNested(q: Uint8Array, absmax2: Float32Array, offset?: number): Float32Array {
  const out = new Float32Array(q.length);
  for (let b = 0; b < q.length; b++) {
    const v = DYNAMIC_MAP[q[b]!]! * absmax2[Math.floor(b / NESTED_BLOCK)]!;
    out[b] = offset === undefined ? v : Math.fround(v) + offset;
  }
  return out;
}

export const nf4Blocks = (n: number): number => Math.ceil(n / NF4_BLOCK);
export const nestedBlocks = (blocks: number): number => Math.ceil(blocks / NESTED_BLOCK);

/** One quantized layer as the quantizers leave it. */
export interface Nf4Layer {
  readonly rows: number;
  readonly cols: number;
  /** one NF4 code (0..15) per weight, row-major [rows, cols] */
  readonly codes: Uint8Array;
  /** plain: each block's absmax; or double-quantized: codes on the dynamic map, their absmax2 and offset */
  readonly absmax: Float32Array | { readonly q: Uint8Array; readonly absmax2: Float32Array; readonly offset: number };
  /** ICQ's per-block shift: codes on the dynamic map and each group's absmax */
  readonly tau?: { readonly q: Uint8Array; readonly absmax: Float32Array };
}

export type Nf4KindName = 'nf4' | 'nf4dq' | 'icq' | 'icqdq';

/** The kind a layer is stored as. */
export function nf4KindName(doubleQuant: boolean, tau: boolean): Nf4KindName {
  return tau ? (doubleQuant ? 'icqdq' : 'icq') : (doubleQuant ? 'nf4dq' : 'nf4');
}

/** Two codes a byte, the first in the high nibble. */
export function packNibbles(codes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i++) {
    const q = codes[i]!;
    if (q > 15) throw new Error(`code ${q} at ${i} does not fit 4 bits`);
    out[i >> 1]! |= i & 1 ? q : q << 4;
  }
  return out;
}

/** The parts of a quantized layer (see the layout above). */
export function packNf4(l: Nf4Layer): Record<string, Tensor> {
  const { rows, cols } = l;
  if (cols % 2 !== 0) throw new Error(`the nf4 layout packs two codes a byte along a row and needs an even input width, got ${cols}`);
  const blocks = nf4Blocks(rows * cols);
  const parts: Record<string, Tensor> = { codes: new Tensor('u8', [rows, cols / 2], packNibbles(l.codes)) };
  if (l.absmax instanceof Float32Array) parts.absmax = new Tensor('f32', [blocks], l.absmax);
  else {
    parts.absmax = new Tensor('u8', [blocks], l.absmax.q);
    parts.absmax2 = new Tensor('f32', [nestedBlocks(blocks)], l.absmax.absmax2);
    parts.offset = new Tensor('f32', [1], Float32Array.of(l.absmax.offset));
  }
  if (l.tau) {
    parts.tau_quant = new Tensor('u8', [blocks], l.tau.q);
    parts.tau_absmax = new Tensor('f32', [nestedBlocks(blocks)], l.tau.absmax);
  }
  return parts;
}

const shapeOf = (p: PartInfo) => `${p.dtype} [${p.shape.join(', ')}]`;

function makeKind(name: Nf4KindName): PackedKind {
  const dq = name === 'nf4dq' || name === 'icqdq', icq = name === 'icq' || name === 'icqdq';
  const parts = ['codes', 'absmax', ...(dq ? ['absmax2', 'offset'] : []), ...(icq ? ['tau_quant', 'tau_absmax'] : [])];
  const vector = (p: PartInfo, dtype: string, n: number, what: string) => {
    if (p.dtype !== dtype || p.shape.length !== 1 || p.shape[0] !== n) throw new Error(`${what} is ${shapeOf(p)}; it must be ${dtype} [${n}]`);
  };
  function shape(p: Readonly<Record<string, PartInfo>>, bits: number): [number, number] {
    if (bits !== 4) throw new Error(`a ${name} layer holds 4-bit codes, but the checkpoint says ${bits} bits`);
    const codes = p.codes!;
    if (codes.dtype !== 'u8' || codes.shape.length !== 2 || !(codes.shape[0]! > 0 && codes.shape[1]! > 0)) throw new Error(`codes is ${shapeOf(codes)}; it must be u8 [rows, in/2]`);
    const rows = codes.shape[0]!, cols = 2 * codes.shape[1]!, blocks = nf4Blocks(rows * cols);
    vector(p.absmax!, dq ? 'u8' : 'f32', blocks, 'absmax');
    if (dq) { vector(p.absmax2!, 'f32', nestedBlocks(blocks), 'absmax2'); vector(p.offset!, 'f32', 1, 'offset'); }
    if (icq) { vector(p.tau_quant!, 'u8', blocks, 'tau_quant'); vector(p.tau_absmax!, 'f32', nestedBlocks(blocks), 'tau_absmax'); }
    return [rows, cols];
  }
  function open(t: Readonly<Record<string, Tensor>>, bits: number): KindLayer {
    const [rows, cols] = shape(Object.fromEntries(Object.entries(t).map(([k, v]) => [k, { dtype: v.dtype, shape: v.shape }])), bits);
    const finite = (x: Float32Array, what: string) => { for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) throw new Error(`${what}[${i}] is ${x[i]}; it must be finite`); };
    const codes = t.codes!.data as Uint8Array;
    let absmax: Float32Array;
    if (dq) {
      const absmax2 = t.absmax2!.toF32(), offset = t.offset!.toF32()[0]!;
      finite(absmax2, 'absmax2'); finite(Float32Array.of(offset), 'offset');
      absmax = dequantNested(t.absmax!.data as Uint8Array, absmax2, offset);
    } else absmax = t.absmax!.toF32();
    finite(absmax, 'absmax');
    let tau: Float32Array | undefined;
    if (icq) {
      const tauAbsmax = t.tau_absmax!.toF32();
      finite(tauAbsmax, 'tau_absmax');
      tau = dequantNested(t.tau_quant!.data as Uint8Array, tauAbsmax);
    }
    const parameters = tau ? Float32Array.from([...absmax, ...tau]) : absmax;
    return {
      kind: name, rows, cols, coreRows: rows, coreCols: cols, parameters,
      // a block's 16 values (level · absmax, + τ for ICQ) are looked up by nibble: rows start at even
      // weights (even widths) and blocks at multiples of 64, so bytes never straddle a block
      decodeRows(r0, nr, out) {
        const i0 = r0 * cols, i1 = (r0 + nr) * cols, table = new Float32Array(16);
        for (let i = i0; i < i1;) {
          const b = Math.floor(i / NF4_BLOCK), end = Math.min(i1, (b + 1) * NF4_BLOCK), am = absmax[b]!;
          if (tau) { const s = tau[b]!; for (let k = 0; k < 16; k++) table[k] = Math.fround(NF4_LEVELS[k]! * am) + s; }
          else for (let k = 0; k < 16; k++) table[k] = NF4_LEVELS[k]! * am;
          for (let o = i - i0; i < end; i += 2, o += 2) {
            const byte = codes[i >> 1]!;
            out[o] = table[byte >> 4]!;
            out[o + 1] = table[byte & 15]!;
          }
        }
      },
    };
  }
  return { name, parts, shape, open };
}

export const NF4_KIND = makeKind('nf4');
export const NF4DQ_KIND = makeKind('nf4dq');
export const ICQ_KIND = makeKind('icq');
export const ICQDQ_KIND = makeKind('icqdq');
