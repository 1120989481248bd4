/**
 * Float32 rows to ggml blocks of 32, two ways:
 *   - llama.cpp's own rule (ggml-quants.c quantize_row_q8_0_ref / _q4_0_ref / _q4_1_ref), in float32
 *     arithmetic as the C code does it: what `--requantize` writes;
 *   - a grid lowbit already solved (codes, scale, zero per group of 32), stored as it is:
 *     Q8_0 d·q with q = code − 128, Q4_0 d·(q − 8), Q4_1 d·q + m with m = −scale·zero.
 * Block layouts are dequant.ts's. Every input is [rows, cols] row-major with cols a multiple of 32.
 */
import { f16ToF32, f32ToF16 } from '../../tensor/codecs.js';
import { GgmlType } from './types.js';

export const QK = 32;
const f = Math.fround;

export type BlockType = GgmlType.Q8_0 | GgmlType.Q4_0 | GgmlType.Q4_1;
export const BLOCK_BYTES: Readonly<Record<BlockType, number>> = Object.freeze({ [GgmlType.Q8_0]: 34, [GgmlType.Q4_0]: 18, [GgmlType.Q4_1]: 20 });

function putF16(out: Uint8Array, at: number, h: number): void {
  out[at] = h & 0xff;
  out[at + 1] = h >> 8;
}

/** C's (int8_t) cast of a float: truncation toward zero. */
const trunc = Math.trunc;
/** C's roundf: half away from zero. */
const roundf = (x: number): number => Math.sign(x) * Math.floor(Math.abs(x) + 0.5);

function q8_0Block(x: Float32Array, o: number, out: Uint8Array, at: number): void {
  let amax = 0;
  for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[o + j]!));
  const d = f(amax / 127), id = d ? f(1 / d) : 0;
  putF16(out, at, f32ToF16(d));
  for (let j = 0; j < QK; j++) out[at + 2 + j] = roundf(f(x[o + j]! * id)) & 0xff;
}

function q4_0Block(x: Float32Array, o: number, out: Uint8Array, at: number): void {
  let amax = 0, max = 0;
  for (let j = 0; j < QK; j++) {
    const v = x[o + j]!;
    if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
  }
  const d = f(max / -8), id = d ? f(1 / d) : 0;
  putF16(out, at, f32ToF16(d));
  for (let j = 0; j < QK / 2; j++) {
    const x0 = f(x[o + j]! * id), x1 = f(x[o + QK / 2 + j]! * id);
    const q0 = Math.min(15, trunc(f(x0 + 8.5))), q1 = Math.min(15, trunc(f(x1 + 8.5)));
    out[at + 2 + j] = q0 | (q1 << 4);
  }
}

function q4_1Block(x: Float32Array, o: number, out: Uint8Array, at: number): void {
  let min = Infinity, max = -Infinity;
  for (let j = 0; j < QK; j++) {
    const v = x[o + j]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const d = f((max - min) / 15), id = d ? f(1 / d) : 0;
  putF16(out, at, f32ToF16(d));
  putF16(out, at + 2, f32ToF16(min));
  for (let j = 0; j < QK / 2; j++) {
    const x0 = f(f(x[o + j]! - min) * id), x1 = f(f(x[o + QK / 2 + j]! - min) * id);
    const q0 = Math.min(15, trunc(f(x0 + 0.5))), q1 = Math.min(15, trunc(f(x1 + 0.5)));
    out[at + 4 + j] = q0 | (q1 << 4);
  }
}

const RULES: Readonly<Record<BlockType, typeof q8_0Block>> = { [GgmlType.Q8_0]: q8_0Block, [GgmlType.Q4_0]: q4_0Block, [GgmlType.Q4_1]: q4_1Block };

/** `x` (any number of whole blocks) quantized with llama.cpp's reference rule for `type`. */
export function quantizeLlamaCpp(type: BlockType, x: Float32Array): Uint8Array {
  if (x.length % QK !== 0) throw new RangeError(`${GgmlType[type]}: ${x.length} values are not whole blocks of ${QK}`);
  const blocks = x.length / QK, bytes = BLOCK_BYTES[type];
  const out = new Uint8Array(blocks * bytes);
  for (let b = 0; b < blocks; b++) RULES[type](x, b * QK, out, b * bytes);
  return out;
}

/** A solved grid with groups of 32 consecutive columns: codes [rows, cols], scales/zeros [rows, cols/32]. */
export interface Grid32 {
  readonly rows: number;
  readonly cols: number;
  readonly codes: Uint8Array;
  readonly scales: Float32Array;
  readonly zeros: Uint8Array;
}

/** What storing a grid changed: per block, the fp16 d (and m) against the grid's float32 values. */
export interface GridEncoding {
  readonly data: Uint8Array;
  /** max over weights of |stored − grid| (0: the export is exact) */
  readonly maxAbsChange: number;
  /** blocks whose d or m is not the grid's value */
  readonly blocksChanged: number;
}

/**
 * The grid stored as `type` blocks, keeping every code: Q8_0 needs zero 128 (symmetric 8-bit), Q4_0 zero 8
 * (symmetric 4-bit); Q4_1 takes any zero. d = fp16(scale); Q4_1's m = fp16(−scale·zero). The caller checks the
 * bits and zeros (gridFits); the change each block's rounding made is measured weight by weight.
 */
export function encodeGrid(type: BlockType, g: Grid32): GridEncoding {
  const { rows, cols } = g, groups = cols / QK, bytes = BLOCK_BYTES[type];
  const out = new Uint8Array(rows * groups * bytes);
  let maxAbs = 0, changed = 0;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < groups; b++) {
      const s = g.scales[r * groups + b]!, z = g.zeros[r * groups + b]!;
      const at = (r * groups + b) * bytes, o = r * cols + b * QK;
      const dh = f32ToF16(s), d = f16ToF32(dh);
      putF16(out, at, dh);
      let m = 0;
      if (type === GgmlType.Q4_1) {
        const mh = f32ToF16(f(-s * z));
        m = f16ToF32(mh);
        putF16(out, at + 2, mh);
      }
      if (d !== s || (type === GgmlType.Q4_1 && m !== f(-s * z))) changed++;
      for (let j = 0; j < QK; j++) {
        const q = g.codes[o + j]!;
        const grid = f(s * (q - z));
        let stored: number;
        if (type === GgmlType.Q8_0) {
          out[at + 2 + j] = (q - 128) & 0xff;
          stored = f(d * (q - 128));
        } else if (type === GgmlType.Q4_0) {
          const k = j < QK / 2 ? j : j - QK / 2;
          out[at + 2 + k]! |= j < QK / 2 ? q : q << 4;
          stored = f(d * (q - 8));
        } else {
          const k = j < QK / 2 ? j : j - QK / 2;
          out[at + 4 + k]! |= j < QK / 2 ? q : q << 4;
          stored = f(d * q + m);
        }
        maxAbs = Math.max(maxAbs, Math.abs(stored - grid));
      }
    }
  }
  return { data: out, maxAbsChange: maxAbs, blocksChanged: changed };
}

/** Why a grid of `bits` with these zeros cannot be stored as `type` keeping its codes; undefined when it can. */
export function gridMismatch(type: BlockType, bits: number, zeros: Uint8Array): string | undefined {
  const want = type === GgmlType.Q8_0 ? 8 : 4;
  if (bits !== want) return `${bits}-bit codes do not fit ${GgmlType[type]} (${want}-bit)`;
  if (type === GgmlType.Q4_1) return undefined;
  const z = type === GgmlType.Q8_0 ? 128 : 8;
  const bad = zeros.findIndex((x) => x !== z);
  return bad < 0 ? undefined : `zero point ${zeros[bad]} (asymmetric grid): ${GgmlType[type]} is symmetric (zero ${z})${type === GgmlType.Q4_0 ? '; Q4_1 holds it' : ''}`;
}
