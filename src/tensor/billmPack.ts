/**
 * The stored kind `billm`: BiLLM's binarized layers (quant/methods/billm.ts) as lowbit keeps them. A
 * layer [rows, cols] is cut into nb = cols / g blocks of g input columns (g = the --group block size).
 * In each block some whole columns are salient (the same for every row) and are binarized twice (a
 * residual, order 2); the other weights are split per element into two groups, each binarized once.
 * Every binarization is b = α·s + μ with its own per-row μ and α and a sign s ∈ {−1, 0, +1}
 * (torch.sign: s = 0 where the weight equals μ exactly, which the reference keeps).
 *
 * Parts, `<layer>.<part>` in safetensors:
 *   planes      u8   [2, rows, ceil(cols/8)]  two bit planes, column c of a row at bit c&7 of byte c>>3:
 *                    salient weight:     plane 0 = sign of order 1, plane 1 = sign of order 2 (1: +, 0: −);
 *                    non-salient weight: plane 0 = its sign, plane 1 = its group (0: group 1, the small
 *                    salience side of the break point; 1: group 2, the large side)
 *   salient     bool [nb, g]    1 where the block's column is salient (one byte per column, so that the
 *                    header alone gives the block size: cols bytes per layer)
 *   params      f32 or f16 [rows, nb, 8]  per row and block: μ, α of group 1, of group 2, of the salient
 *                    order 1, of the salient order 2 (0, 0 where a set is empty in that row); f16 when the
 *                    layer was quantized with --scale-dtype f16 (the values were rounded before use)
 *   zero_signs  i32  [z]   the signs that are 0, ascending, as 2·(r·cols + c) + plane
 * Decoding, in float32 as the reference's tensors: non-salient w = fround(s·α_g + μ_g); salient
 * w = fround(fround(s1·α1 + μ1) + fround(s2·α2 + μ2)). Storage: 2 bits per weight for the planes, 8
 * parameters per row per block (f32: 256/g bits per weight, f16: 128/g), cols bytes of masks, 4 bytes
 * per zero sign.
 */
import type { PackedKind, PartInfo } from './kinds.js';
import { partInfos, type KindLayer } from './packed.js';
import { Tensor } from './tensor.js';
import { encodeHalf } from './codecs.js';

/** per row per block: μ, α of group 1, group 2, salient order 1, salient order 2 */
export const BILLM_PARAMS = 8;
export const P_G1 = 0, P_G2 = 2, P_S1 = 4, P_S2 = 6;

/** One binarized value, as the reference's `sign · scale + mean` in float32. */
export function binValue(s: number, alpha: number, mu: number): number {
  return Math.fround(s * alpha + mu);
}

/** A salient weight: the two orders summed in float32. */
export function salientValue(s1: number, a1: number, m1: number, s2: number, a2: number, m2: number): number {
  return Math.fround(binValue(s1, a1, m1) + binValue(s2, a2, m2));
}

export const planeBytes = (cols: number): number => Math.ceil(cols / 8);

/** The largest layer whose zero-sign positions fit an int32. */
export const BILLM_MAX_WEIGHTS = 2 ** 30 - 1;

/** The parts of a BiLLM layer, ready to write. */
export interface BillmParts {
  readonly rows: number;
  readonly cols: number;
  readonly blockSize: number;
  readonly planes: Uint8Array;
  readonly salient: Uint8Array;
  /** float32 values; stored as f16 when `paramsDtype` is 'f16' (they must then be fp16 values) */
  readonly params: Float32Array;
  readonly paramsDtype: 'f32' | 'f16';
  readonly zeroSigns: Int32Array;
}

/** The parts as tensors; f16 params must already be fp16 values (rounded before they were used). */
export function billmTensors(p: BillmParts): Record<string, Tensor> {
  const nb = p.cols / p.blockSize;
  return {
    planes: new Tensor('u8', [2, p.rows, planeBytes(p.cols)], p.planes),
    salient: new Tensor('bool', [nb, p.blockSize], p.salient),
    params: p.paramsDtype === 'f16'
      ? new Tensor('f16', [p.rows, nb, BILLM_PARAMS], encodeHalf('f16', p.params))
      : new Tensor('f32', [p.rows, nb, BILLM_PARAMS], p.params),
    zero_signs: new Tensor('i32', [p.zeroSigns.length], p.zeroSigns),
  };
}

const PARTS = ['planes', 'salient', 'params', 'zero_signs'] as const;

function shapeOf(parts: Readonly<Record<string, PartInfo>>): { rows: number; cols: number; nb: number; g: number } {
  const { planes, salient, params, zero_signs: zs } = parts as Record<(typeof PARTS)[number], PartInfo>;
  const dims = (p: PartInfo) => `[${p.shape.join(', ')}]`;
  if (planes.dtype !== 'u8' || planes.shape.length !== 3 || planes.shape[0] !== 2) throw new Error(`planes is ${planes.dtype} ${dims(planes)}; it must be u8 [2, rows, ceil(cols/8)]`);
  if (salient.dtype !== 'bool' && salient.dtype !== 'u8') throw new Error(`salient is ${salient.dtype}; it must be bool [blocks, block size]`);
  if (salient.shape.length !== 2 || salient.shape[0]! < 1 || salient.shape[1]! < 1) throw new Error(`salient has shape ${dims(salient)}; it must be [blocks, block size]`);
  const rows = planes.shape[1]!, nb = salient.shape[0]!, g = salient.shape[1]!, cols = nb * g;
  if (rows < 1) throw new Error('planes has no rows');
  if (planes.shape[2] !== planeBytes(cols)) throw new Error(`planes has shape ${dims(planes)}; for ${cols} columns (salient ${dims(salient)}) it must be [2, ${rows}, ${planeBytes(cols)}]`);
  if (rows * cols > BILLM_MAX_WEIGHTS) throw new Error(`${rows}x${cols} is too large for the billm layout (at most ${BILLM_MAX_WEIGHTS} weights)`);
  if ((params.dtype !== 'f32' && params.dtype !== 'f16') || params.shape.length !== 3 || params.shape[0] !== rows || params.shape[1] !== nb || params.shape[2] !== BILLM_PARAMS) {
    throw new Error(`params is ${params.dtype} ${dims(params)}; it must be f32 or f16 [${rows}, ${nb}, ${BILLM_PARAMS}]`);
  }
  if (zs.dtype !== 'i32' || zs.shape.length !== 1) throw new Error(`zero_signs is ${zs.dtype} ${dims(zs)}; it must be i32 [count]`);
  return { rows, cols, nb, g };
}

/** A BiLLM layer opened from its parts: rows decoded on demand. */
class BillmLayer implements KindLayer {
  readonly kind = 'billm';
  readonly coreRows: number;
  readonly coreCols: number;
  private readonly table = new Float32Array(8);
  constructor(readonly rows: number, readonly cols: number, private readonly g: number, private readonly planes: Uint8Array,
    private readonly salient: Uint8Array, readonly parameters: Float32Array, private readonly zeroSigns: Int32Array) {
    this.coreRows = rows;
    this.coreCols = cols;
  }

  decodeRows(r0: number, nr: number, out: Float32Array): void {
    const { cols, g, planes, salient, parameters: P, table } = this;
    const nb = cols / g, B = planeBytes(cols), plane1 = this.rows * B;
    for (let i = 0; i < nr; i++) {
      const r = r0 + i, po = r * B, oo = i * cols;
      for (let b = 0; b < nb; b++) {
        const p = (r * nb + b) * BILLM_PARAMS;
        // code = salient·4 + plane1·2 + plane0
        table[0] = binValue(-1, P[p + P_G1 + 1]!, P[p + P_G1]!);
        table[1] = binValue(1, P[p + P_G1 + 1]!, P[p + P_G1]!);
        table[2] = binValue(-1, P[p + P_G2 + 1]!, P[p + P_G2]!);
        table[3] = binValue(1, P[p + P_G2 + 1]!, P[p + P_G2]!);
        for (let s2 = 0; s2 < 2; s2++) {
          for (let s1 = 0; s1 < 2; s1++) {
            table[4 + 2 * s2 + s1] = salientValue(2 * s1 - 1, P[p + P_S1 + 1]!, P[p + P_S1]!, 2 * s2 - 1, P[p + P_S2 + 1]!, P[p + P_S2]!);
          }
        }
        for (let k = 0, c = b * g; k < g; k++, c++) {
          const byte = po + (c >> 3), bit = c & 7;
          const code = (salient[c]! << 2) | (((planes[plane1 + byte]! >> bit) & 1) << 1) | ((planes[byte]! >> bit) & 1);
          out[oo + c] = table[code]!;
        }
      }
    }
    this.patchZeroSigns(r0, nr, out);
  }

  /** The weights of rows [r0, r0 + nr) that have a zero sign, recomputed with s = 0. */
  private patchZeroSigns(r0: number, nr: number, out: Float32Array): void {
    const z = this.zeroSigns, { cols, g, planes, salient, parameters: P } = this;
    const nb = cols / g, B = planeBytes(cols), plane1 = this.rows * B;
    const lo = 2 * r0 * cols, hi = 2 * (r0 + nr) * cols;
    let a = 0, b = z.length;
    while (a < b) { const m = (a + b) >>> 1; if (z[m]! < lo) a = m + 1; else b = m; }
    for (let i = a; i < z.length && z[i]! < hi; i++) {
      const pos = z[i]! >>> 1;
      let zero0 = (z[i]! & 1) === 0, zero1 = !zero0;
      if (zero0 && i + 1 < z.length && z[i + 1] === z[i]! + 1) { zero1 = true; i++; }
      const r = Math.floor(pos / cols), c = pos - r * cols, byte = r * B + (c >> 3), bit = c & 7;
      const p = (r * nb + Math.floor(c / g)) * BILLM_PARAMS;
      const s1 = zero0 ? 0 : 2 * ((planes[byte]! >> bit) & 1) - 1;
      const bit1 = (planes[plane1 + byte]! >> bit) & 1;
      if (salient[c]) {
        const s2 = zero1 ? 0 : 2 * bit1 - 1;
        out[(r - r0) * cols + c] = salientValue(s1, P[p + P_S1 + 1]!, P[p + P_S1]!, s2, P[p + P_S2 + 1]!, P[p + P_S2]!);
      } else {
        const q = bit1 ? P_G2 : P_G1;
        out[(r - r0) * cols + c] = binValue(s1, P[p + q + 1]!, P[p + q]!);
      }
    }
  }
}

export const BILLM_KIND: PackedKind = {
  name: 'billm',
  parts: PARTS,
  shape(parts) {
    const { rows, cols } = shapeOf(parts);
    return [rows, cols];
  },
  open(parts) {
    const info = partInfos(parts, PARTS);
    const { rows, cols, g } = shapeOf(info);
    const salient = parts.salient!.data as Uint8Array;
    for (let c = 0; c < cols; c++) if (salient[c]! > 1) throw new Error(`salient[${c}] is ${salient[c]}, not 0 or 1`);
    const z = parts.zero_signs!.data as Int32Array, n2 = 2 * rows * cols;
    for (let i = 0; i < z.length; i++) {
      const v = z[i]!;
      if (!(v >= 0 && v < n2) || (i > 0 && v <= z[i - 1]!)) throw new Error(`zero_signs[${i}] = ${v}: the entries must ascend within 0..${n2 - 1}`);
      if ((v & 1) === 1 && !salient[(v >>> 1) % cols]) throw new Error(`zero_signs[${i}] = ${v} marks plane 1 of a non-salient weight, which holds a group, not a sign`);
    }
    return new BillmLayer(rows, cols, g, parts.planes!.data as Uint8Array, salient, parts.params!.toF32(), z);
  },
};
