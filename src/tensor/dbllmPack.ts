/**
 * The stored kind `dbllm`: DB-LLM's Flexible Dual Binarization (quant/methods/dbllm.ts). A layer
 * [rows, cols] in groups of g input columns holds two binary matrices B1, B2 ∈ {0, 1} and, per row
 * and group, two scales α1, α2:  w = α1·b1 + α2·b2  (one float32 rounding; 2 bits per weight).
 *
 * Parts, `<layer>.<part>` in safetensors:
 *   planes  u8  [2, rows, cols/8]  plane 0 = B1, plane 1 = B2; column c of a row at bit c&7 of byte c>>3
 *   alphas  f32 [rows, cols/g, 2]  α1, α2 of each row and group
 * The group size is cols / (alphas' second dimension); cols must be a multiple of 8.
 */
import type { PackedKind, PartInfo } from './kinds.js';
import { partInfos, type KindLayer } from './packed.js';
import { Tensor } from './tensor.js';

export interface DbllmParts {
  readonly rows: number;
  readonly cols: number;
  readonly groupSize: number;
  /** [2, rows, cols/8] */
  readonly planes: Uint8Array;
  /** [rows, groups, 2] */
  readonly alphas: Float32Array;
}

/** The value of bits (b1, b2) under scales α1, α2, in float32. */
export function fdbValue(b1: number, b2: number, a1: number, a2: number): number {
  return b1 ? (b2 ? Math.fround(a1 + a2) : a1) : (b2 ? a2 : 0); // (0, 0) is +0 whatever the scales' signs
}

export function dbllmTensors(p: DbllmParts): Record<string, Tensor> {
  return {
    planes: new Tensor('u8', [2, p.rows, p.cols / 8], p.planes),
    alphas: new Tensor('f32', [p.rows, p.cols / p.groupSize, 2], p.alphas),
  };
}

/** Sets bit (plane, r, c) of planes [2, rows, cols/8]. */
export function setPlaneBit(planes: Uint8Array, rows: number, cols: number, plane: number, r: number, c: number): void {
  planes[(plane * rows + r) * (cols >> 3) + (c >> 3)]! |= 1 << (c & 7);
}

const PARTS = ['planes', 'alphas'] as const;

function shapeOf(parts: Readonly<Record<string, PartInfo>>): { rows: number; cols: number; groups: number } {
  const { planes, alphas } = parts as Record<(typeof PARTS)[number], PartInfo>;
  const dims = (p: PartInfo) => `[${p.shape.join(', ')}]`;
  if (planes.dtype !== 'u8' || planes.shape.length !== 3 || planes.shape[0] !== 2 || planes.shape[1]! < 1 || planes.shape[2]! < 1) {
    throw new Error(`planes is ${planes.dtype} ${dims(planes)}; it must be u8 [2, rows, cols/8]`);
  }
  const rows = planes.shape[1]!, cols = 8 * planes.shape[2]!;
  if (alphas.dtype !== 'f32' || alphas.shape.length !== 3 || alphas.shape[0] !== rows || alphas.shape[2] !== 2 || alphas.shape[1]! < 1) {
    throw new Error(`alphas is ${alphas.dtype} ${dims(alphas)}; it must be f32 [${rows}, groups, 2]`);
  }
  const groups = alphas.shape[1]!;
  if (cols % groups !== 0) throw new Error(`alphas has ${groups} groups, which do not divide the ${cols} columns of planes ${dims(planes)}`);
  return { rows, cols, groups };
}

class DbllmLayer implements KindLayer {
  readonly kind = 'dbllm';
  readonly coreRows: number;
  readonly coreCols: number;
  constructor(readonly rows: number, readonly cols: number, private readonly g: number, private readonly planes: Uint8Array, readonly parameters: Float32Array) {
    this.coreRows = rows;
    this.coreCols = cols;
  }

  decodeRows(r0: number, nr: number, out: Float32Array): void {
    const { rows, cols, g, planes, parameters: A } = this;
    const B = cols >> 3, nb = cols / g, table = new Float32Array(4);
    for (let i = 0; i < nr; i++) {
      const r = r0 + i, p0 = r * B, p1 = (rows + r) * B, oo = i * cols;
      for (let b = 0; b < nb; b++) {
        const a1 = A[(r * nb + b) * 2]!, a2 = A[(r * nb + b) * 2 + 1]!;
        table[0] = 0; table[1] = fdbValue(0, 1, a1, a2); table[2] = fdbValue(1, 0, a1, a2); table[3] = fdbValue(1, 1, a1, a2);
        for (let c = b * g; c < (b + 1) * g; c++) {
          const byte = c >> 3, bit = c & 7;
          out[oo + c] = table[(((planes[p0 + byte]! >> bit) & 1) << 1) | ((planes[p1 + byte]! >> bit) & 1)]!;
        }
      }
    }
  }
}

export const DBLLM_KIND: PackedKind = {
  name: 'dbllm',
  parts: PARTS,
  shape(parts) {
    const { rows, cols } = shapeOf(parts);
    return [rows, cols];
  },
  open(parts) {
    const info = partInfos(parts, PARTS);
    const { rows, cols, groups } = shapeOf(info);
    return new DbllmLayer(rows, cols, cols / groups, parts.planes!.data as Uint8Array, parts.alphas!.toF32());
  },
};
