/**
 * The stored kind `quip`: a QuIP layer (quant/methods/quip.ts) as what makes it small, and the code
 * that rebuilds its weights from those parts.
 *
 * Parts of `<layer>` (lowbit's own layout; the names are those the quantized-checkpoint reader
 * recognises as a packed layer's parts):
 *   qweight  i32 [rows, ceil(cols·b/32)]  the b-bit LDLQ codes q ∈ 0..2^b−1, row by row; code c of a row
 *                                         at bit c·b of the row's words (least significant bit first;
 *                                         a code may straddle two words; padding bits are 0)
 *   scales   f32 [1 + cols]               scales[0] = s, the grid's scale (2.4·RMS of the transformed
 *                                         weight); scales[1 + j] = D_j, the column rescaling
 *   g_idx    i32 [8]                      the transform record: [version 1, seed (uint32 as int32),
 *                                         fp16 casts 0/1, b, aU, bU, aV, bV] — U (rows) and V (cols)
 *                                         are redrawn from the seed (tensor/quipTransform.ts), the
 *                                         factor sizes a·b = n are stored as a check
 * Cost: b bits per weight plus 32·(cols + 1) + 256 bits per layer (e.g. 2.008 bits per weight at
 * 2 bits for a 4096×4096 layer; 2.27 for the bundled model's 128×128 layers).
 *
 * The weight is rebuilt as the reference's postproc computes it (method.py postproc, vector_balance.py
 * quantize_weight_vecbal, qfn 'b'):
 *   G[r, c] = g(q[r, c]), g(q) = ((q / maxq)·2 − 1)·s in float32, then `.half()`;
 *   W = fp16( fp16(Uᵀ·G·V) ⊘ D ), the products in float64 (the reference: float32 GEMMs), each result
 *   rounded to float32 and then to fp16 — or, with the fp16 casts off (`--no-quip-fp16`), kept in float32.
 * Because of those fp16 roundings of the back-transformed weight, the rotations cannot be moved onto the
 * activations without changing the result, so the layer's core *is* the rebuilt weight: the KindLayer has
 * no input/output transforms, and decodeRows serves rows of W. W's rows all depend on every code (U mixes
 * all rows), so the layer is rebuilt whole when its first panel is asked for and kept only until its last
 * panel has been served (one layer at a time: the model is never materialised as floats). The quantizer
 * computes its Q with this same code, so what eval multiplies by is Q bit for bit.
 */
import type { KindLayer } from './packed.js';
import type { PackedKind, PartInfo } from './kinds.js';
import { Tensor } from './tensor.js';
import { f16ToF32, f32ToF16 } from './codecs.js';
import { applyButterfly, butterflyFactors, butterflyProblem, randomButterfly, transposed, type Butterfly } from './quipTransform.js';

export const QUIP_KIND_NAME = 'quip';
export const QUIP_RECORD_VERSION = 1;
const RECORD_LENGTH = 8;
/** bits the kind stores (the reference's opt.py --wbits choices below 16) */
export const QUIP_BITS: readonly number[] = [2, 3, 4];

const F32 = new Float32Array(1), U32 = new Uint32Array(F32.buffer);

/**
 * x rounded to float32, then to fp16 (round to nearest even), as torch's `.to(torch.float16)` of a float32
 * value: f16ToF32(f32ToF16(x)), with the normal fp16 range done on the float32 bits directly (the hot path
 * of the fp16 casts; test/quant/quip.test.ts checks it against the codecs).
 */
export function half(x: number): number {
  F32[0] = x;
  let b = U32[0]!;
  const e = (b >>> 23) & 0xff;
  if (e >= 113 && e <= 142) { // |x| in [2^-14, 2^16): 10 mantissa bits kept, ties to even
    b = (b + 0xfff + ((b >>> 13) & 1)) & 0xffffe000;
    if (((b >>> 23) & 0xff) > 142) return b >>> 31 ? -Infinity : Infinity; // rounded up to 65536: fp16 overflows
    U32[0] = b;
    return F32[0]!;
  }
  return f16ToF32(f32ToF16(x));
}

/** Words per row of `qweight`. */
export const quipWords = (cols: number, bits: number): number => Math.ceil((cols * bits) / 32);

/** Codes [rows, cols] (0..2^bits−1) packed row by row into int32 words. */
export function packQuipCodes(codes: Uint8Array, rows: number, cols: number, bits: number): Int32Array {
  const W = quipWords(cols, bits), out = new Int32Array(rows * W);
  for (let r = 0; r < rows; r++) {
    const o = r * W;
    for (let c = 0; c < cols; c++) {
      const q = codes[r * cols + c]!, pos = c * bits, w = pos >>> 5, off = pos & 31;
      out[o + w]! |= q << off;
      if (off + bits > 32) out[o + w + 1]! |= q >>> (32 - off);
    }
  }
  return out;
}

/** The codes of rows [r0, r0 + nr) (inverse of packQuipCodes). */
export function unpackQuipCodes(qweight: Int32Array, cols: number, bits: number, r0: number, nr: number, out = new Uint8Array(nr * cols)): Uint8Array {
  const W = quipWords(cols, bits), mask = (1 << bits) - 1;
  for (let r = 0; r < nr; r++) {
    const o = (r0 + r) * W;
    for (let c = 0; c < cols; c++) {
      const pos = c * bits, w = pos >>> 5, off = pos & 31;
      let v = qweight[o + w]! >>> off;
      if (off + bits > 32) v |= qweight[o + w + 1]! << (32 - off);
      out[r * cols + c] = v & mask;
    }
  }
  return out;
}

/** The 2^bits grid values g(q) = ((q/maxq)·2 − 1)·s in float32, then fp16 when `fp16` (vector_balance.py:528-530). */
export function quipGridValues(bits: number, s: number, fp16: boolean): Float32Array {
  const maxq = 2 ** bits - 1, f = Math.fround;
  return Float32Array.from({ length: maxq + 1 }, (_, q) => {
    const g = f(f(f(f(q / maxq) * 2) - 1) * s);
    return fp16 ? half(g) : g;
  });
}

/** Everything a QuIP layer stores, decoded. */
export interface QuipLayerParts {
  readonly rows: number;
  readonly cols: number;
  readonly bits: number;
  readonly qweight: Int32Array;
  readonly scale: number;
  readonly D: Float32Array;
  readonly seed: number;
  readonly fp16: boolean;
}

/** The stored tensors of a QuIP layer. */
export function quipTensors(p: QuipLayerParts): Record<string, Tensor> {
  const { rows, cols, bits } = p;
  const [aU, bU] = butterflyFactors(rows), [aV, bV] = butterflyFactors(cols);
  const scales = new Float32Array(cols + 1);
  scales[0] = p.scale;
  scales.set(p.D, 1);
  return {
    qweight: new Tensor('i32', [rows, quipWords(cols, bits)], p.qweight),
    scales: new Tensor('f32', [cols + 1], scales),
    g_idx: new Tensor('i32', [RECORD_LENGTH], Int32Array.of(QUIP_RECORD_VERSION, p.seed | 0, p.fp16 ? 1 : 0, bits, aU, bU, aV, bV)),
  };
}

/** U (out × out, stream 1) and V (in × in, stream 2) of a layer. */
export function quipTransforms(rows: number, cols: number, seed: number): { U: Butterfly; V: Butterfly } {
  return { U: randomButterfly(rows, seed, 1), V: randomButterfly(cols, seed, 2) };
}

/**
 * The layer's weight [rows, cols] from its parts: W = r(r(Uᵀ·G·V) ⊘ D) with r = fp16 rounding (via
 * float32) when p.fp16, float32 rounding otherwise. Deterministic: the butterflies run as fixed-order
 * TypeScript loops, so every call gives the same bits.
 */
export function rebuildQuipWeight(p: QuipLayerParts, t: { U: Butterfly; V: Butterfly } = quipTransforms(p.rows, p.cols, p.seed)): Float32Array {
  const { rows, cols, bits } = p;
  const g = quipGridValues(bits, p.scale, p.fp16);
  const codes = unpackQuipCodes(p.qweight, cols, bits, 0, rows);
  const G = new Float64Array(rows * cols);
  for (let i = 0; i < G.length; i++) G[i] = g[codes[i]!]!;
  applyButterfly(t.V, G, rows, true);       // G·V
  const T = transposed(G, rows, cols);      // (G·V)ᵀ [cols, rows]
  applyButterfly(t.U, T, cols, true);       // rows Uᵀ·(column of G·V): (Uᵀ·G·V)ᵀ
  const out = new Float32Array(rows * cols), f = Math.fround, D = p.D;
  for (let c = 0; c < cols; c++) {
    const d = D[c]!, o = c * rows;
    for (let r = 0; r < rows; r++) {
      const y = T[o + r]!;
      out[r * cols + c] = p.fp16 ? half(half(y) / d) : f(f(y) / d);
    }
  }
  return out;
}

/** An opened QuIP layer: the core is the rebuilt weight (see the file comment). */
class QuipLayer implements KindLayer {
  readonly kind = QUIP_KIND_NAME;
  readonly rows: number;
  readonly cols: number;
  readonly coreRows: number;
  readonly coreCols: number;
  readonly parameters: Float32Array;
  private transforms: { U: Butterfly; V: Butterfly } | undefined;
  private current: Float32Array | undefined;
  constructor(private readonly p: QuipLayerParts, scales: Float32Array) {
    this.rows = this.coreRows = p.rows;
    this.cols = this.coreCols = p.cols;
    this.parameters = scales;
  }
  materialize(): Float32Array {
    this.transforms ??= quipTransforms(this.p.rows, this.p.cols, this.p.seed);
    return rebuildQuipWeight(this.p, this.transforms);
  }
  decodeRows(r0: number, nr: number, out: Float32Array): void {
    if (!Number.isInteger(r0) || !Number.isInteger(nr) || r0 < 0 || nr < 0 || r0 + nr > this.rows) {
      throw new RangeError(`decodeRows: rows [${r0}, ${r0 + nr}) of a ${this.rows}-row layer`);
    }
    const w = this.current ?? (this.current = this.materialize());
    out.set(w.subarray(r0 * this.cols, (r0 + nr) * this.cols));
    if (r0 + nr === this.rows) this.current = undefined; // the last panel: drop the rebuilt layer
  }
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

export const QUIP_KIND: PackedKind = {
  name: QUIP_KIND_NAME,
  parts: ['qweight', 'scales', 'g_idx'],
  shape(parts: Readonly<Record<string, PartInfo>>, bits: number): [number, number] {
    const q = parts.qweight!, s = parts.scales!, g = parts.g_idx!;
    if (!QUIP_BITS.includes(bits)) throw new Error(`a quip layer holds ${QUIP_BITS.join(', ')}-bit codes, the config says ${bits} bits`);
    if (q.dtype !== 'i32' || q.shape.length !== 2) throw new Error(`qweight must be i32 [rows, words], got ${q.dtype} ${shapeText(q.shape)}`);
    if (s.dtype !== 'f32' || s.shape.length !== 1 || s.shape[0]! < 2) throw new Error(`scales must be f32 [1 + in_features], got ${s.dtype} ${shapeText(s.shape)}`);
    if (g.dtype !== 'i32' || g.shape.length !== 1 || g.shape[0] !== RECORD_LENGTH) throw new Error(`g_idx (the transform record) must be i32 [${RECORD_LENGTH}], got ${g.dtype} ${shapeText(g.shape)}`);
    const rows = q.shape[0]!, cols = s.shape[0]! - 1;
    if (q.shape[1] !== quipWords(cols, bits)) {
      throw new Error(`qweight ${shapeText(q.shape)} does not hold ${cols} ${bits}-bit codes per row (${quipWords(cols, bits)} words)`);
    }
    for (const [what, n] of [['out_features', rows], ['in_features', cols]] as const) {
      const why = butterflyProblem(n);
      if (why) throw new Error(`${what}: ${why}`);
    }
    return [rows, cols];
  },
  open(parts: Readonly<Record<string, Tensor>>, bits: number): KindLayer {
    const info = (t: Tensor): PartInfo => ({ dtype: t.dtype, shape: t.shape });
    const [rows, cols] = QUIP_KIND.shape({ qweight: info(parts.qweight!), scales: info(parts.scales!), g_idx: info(parts.g_idx!) }, bits);
    const rec = parts.g_idx!.data as Int32Array, scales = parts.scales!.data as Float32Array;
    const [version, seed, fp16, b, aU, bU, aV, bV] = rec as unknown as number[];
    if (version !== QUIP_RECORD_VERSION) throw new Error(`transform record version ${version} (lowbit reads version ${QUIP_RECORD_VERSION})`);
    if (fp16 !== 0 && fp16 !== 1) throw new Error(`transform record: fp16 flag ${fp16} is not 0 or 1`);
    if (b !== bits) throw new Error(`transform record says ${b} bits, the config ${bits}`);
    const [eU0, eU1] = butterflyFactors(rows), [eV0, eV1] = butterflyFactors(cols);
    if (aU !== eU0 || bU !== eU1 || aV !== eV0 || bV !== eV1) {
      throw new Error(`transform record: factors ${aU}×${bU}, ${aV}×${bV} are not the butterfly factors of ${rows} (${eU0}×${eU1}) and ${cols} (${eV0}×${eV1})`);
    }
    for (let i = 0; i < scales.length; i++) {
      const v = scales[i]!;
      if (!(v > 0 && v < Infinity)) throw new Error(`scales[${i}] = ${v}: ${i === 0 ? 'the grid scale s' : `the column rescaling D[${i - 1}]`} must be positive and finite`);
    }
    return new QuipLayer({
      rows, cols, bits, qweight: parts.qweight!.data as Int32Array, scale: scales[0]!, D: scales.subarray(1), seed: seed! >>> 0, fp16: fp16 === 1,
    }, scales);
  },
};
