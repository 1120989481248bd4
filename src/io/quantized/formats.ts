/**
 * The layouts a quantized linear layer is stored in, each a writer/reader pair:
 *   gptq  AutoGPTQ v1: `<layer>.qweight/.qzeros/.scales/.g_idx` (tensor/gptqPack.ts), uniform-grid codes, 1–8 bits, act-order
 *         (+ `<layer>.qzeros_float`, float32 zero points, under lowbit_float_zeros: QA-LoRA's merge)
 *   awq   AutoAWQ GEMM: `<layer>.qweight/.qzeros/.scales` (tensor/awqPack.ts), uniform-grid codes, 4 bits, sequential groups
 *   <kind> a method-specific stored kind of tensor/kinds.ts (QuIP, PB-LLM, BiLLM): `<layer>.<part>` for each of its parts
 * `shape` checks a layer's parts against each other from the file's header alone (no data read);
 * `read` returns the packed weight a backend multiplies by; `pack` gives the tensors to write.
 */
import { FormatError } from '../../errors.js';
import { packAwq } from '../../tensor/awqPack.js';
import { f16ToF32, f32ToF16 } from '../../tensor/codecs.js';
import { packGptq } from '../../tensor/gptqPack.js';
import { PACKED_KINDS, type PackedKind, type PartInfo } from '../../tensor/kinds.js';
import type { GptqPacked, PackedWeight, QuantizedMatrix, ScaleDtype, StoredLayer } from '../../tensor/packed.js';
import { Tensor } from '../../tensor/tensor.js';
import { fileOf, type TensorInfo, type TensorSource } from '../source.js';

/** 'gptq', 'awq', or the name of a stored kind of tensor/kinds.ts. */
export type FormatName = string;

export interface PackedFormat {
  readonly name: FormatName;
  /** suffixes of a layer's stored parts; `qweight` marks a packed layer */
  readonly parts: readonly string[];
  /** suffixes of parts a layer holds only under a configuration flag (GPTQ: `qzeros_float` with lowbit_float_zeros) */
  readonly optionalParts?: readonly string[];
  /** [rows, cols] of `<base>.weight`, from the parts' headers, checked (a FormatError naming the file) */
  shape(inner: TensorSource, infos: ReadonlyMap<string, TensorInfo>, base: string, bits: number, groupSize: number, floatZeros?: boolean): [number, number];
  /** the packed weight of `<base>`, checked against its shape */
  read(inner: TensorSource, base: string, bits: number, groupSize: number, floatZeros?: boolean): PackedWeight;
  /** the tensors of one quantized layer, scales stored in `scaleDtype` */
  pack(base: string, stored: StoredLayer, rows: number, cols: number, bits: number, groupSize: number, scaleDtype: ScaleDtype): { name: string; tensor: Tensor }[];
}

/** The uniform-grid codes of a stored layer (what the GPTQ and AWQ layouts hold). */
function uniform(base: string, stored: StoredLayer): QuantizedMatrix {
  if (stored.kind !== 'uniform' || !('grid' in stored)) throw new Error(`${base}: a ${stored.kind} layer cannot be stored in a uniform-grid layout`);
  return stored.grid;
}

const words = (n: number, bits: number): number => Math.ceil((n * bits) / 32);
const SCALE_DTYPES = ['f16', 'f32'];

/**
 * A [groups, rows] scales tensor in `dtype`. fp16 storage of scales that were not solved in fp16
 * would change the weights: that is an explicit export (export.ts), never a side effect of writing.
 */
export function scalesTensor(scales: Float32Array, groups: number, rows: number, dtype: ScaleDtype): Tensor {
  if (dtype === 'f32') return new Tensor('f32', [groups, rows], scales);
  const h = new Uint16Array(scales.length);
  for (let i = 0; i < scales.length; i++) {
    h[i] = f32ToF16(scales[i]!);
    if (f16ToF32(h[i]!) !== scales[i]) throw new Error(`scale ${scales[i]} is not an fp16 value: the layer was not solved with fp16 scales`);
  }
  return new Tensor('f16', [groups, rows], h);
}

/** The parts of `base` with their dtypes checked; a missing part names the qweight's file. */
function parts(inner: TensorSource, infos: ReadonlyMap<string, TensorInfo>, base: string, kind: FormatName, names: readonly string[]): TensorInfo[] {
  return names.map((p) => {
    const name = `${base}.${p}`;
    const t = infos.get(name);
    if (!t) throw new FormatError(fileOf(inner, `${base}.qweight`), `${base} has a qweight but no ${p}`);
    const want = p === 'scales' ? SCALE_DTYPES : ['i32'];
    if (!want.includes(t.dtype)) throw new FormatError(fileOf(inner, name), `tensor "${name}" is ${t.storedAs}, a ${kind.toUpperCase()} ${p} is ${want.join(' or ').toUpperCase()}`);
    return t;
  });
}

function bad(inner: TensorSource, t: TensorInfo, what: string, want: string): never {
  throw new FormatError(fileOf(inner, t.name), `tensor "${t.name}" has shape [${t.shape.join(', ')}]; for ${what} it must be ${want}`);
}

/** The part holding a GPTQ layer's float zero points (QA-LoRA's merge, tensor/gptqZeroShift.ts): float32 [groups, out]. */
export const FLOAT_ZEROS_PART = 'qzeros_float';

/**
 * `<base>.qzeros_float` checked against the flag: required, float32 [groups, rows], when the
 * configuration says lowbit_float_zeros; a FormatError when it is there without the flag (a reader
 * that follows the flag would otherwise ignore it).
 */
function floatZerosShape(inner: TensorSource, infos: ReadonlyMap<string, TensorInfo>, base: string, groups: number, rows: number, floatZeros: boolean): void {
  const name = `${base}.${FLOAT_ZEROS_PART}`, t = infos.get(name);
  if (!floatZeros) {
    if (t) throw new FormatError(fileOf(inner, name), `tensor "${name}" holds float zero points, but the quantization config does not say lowbit_float_zeros: true`);
    return;
  }
  if (!t) throw new FormatError(fileOf(inner, `${base}.qweight`), `${base} has no ${name}: the quantization config says lowbit_float_zeros, so every GPTQ layer stores its float zero points`);
  if (t.dtype !== 'f32') throw new FormatError(fileOf(inner, name), `tensor "${name}" is ${t.storedAs}; float zero points are F32`);
  if (t.shape.length !== 2 || t.shape[0] !== groups || t.shape[1] !== rows) bad(inner, t, 'float zero points', `[${groups}, ${rows}] (as ${base}.scales)`);
}

const GPTQ_FORMAT: PackedFormat = {
  name: 'gptq',
  parts: ['qweight', 'qzeros', 'scales', 'g_idx'],
  optionalParts: [FLOAT_ZEROS_PART],
  shape(inner, infos, base, bits, _groupSize, floatZeros = false) {
    const [qweight, qzeros, scales, gIdx] = parts(inner, infos, base, 'gptq', this.parts) as [TensorInfo, TensorInfo, TensorInfo, TensorInfo];
    const what = `${bits}-bit GPTQ`;
    if (qweight.shape.length !== 2 || qweight.shape[1] === 0) bad(inner, qweight, what, '[ceil(in·bits/32), out]');
    if (gIdx.shape.length !== 1) bad(inner, gIdx, what, '[in]');
    const rows = qweight.shape[1]!, cols = gIdx.shape[0]!;
    if (qweight.shape[0] !== words(cols, bits)) bad(inner, qweight, what, `[${words(cols, bits)}, ${rows}] (g_idx has ${cols} columns)`);
    if (scales.shape.length !== 2 || scales.shape[1] !== rows || scales.shape[0] === 0) bad(inner, scales, what, `[groups, ${rows}]`);
    const groups = scales.shape[0]!;
    if (qzeros.shape.length !== 2 || qzeros.shape[0] !== groups || qzeros.shape[1] !== words(rows, bits)) bad(inner, qzeros, what, `[${groups}, ${words(rows, bits)}]`);
    floatZerosShape(inner, infos, base, groups, rows, floatZeros);
    return [rows, cols];
  },
  read(inner, base, bits, _groupSize, floatZeros = false) {
    const qweight = inner.read(`${base}.qweight`), qzeros = inner.read(`${base}.qzeros`);
    const scales = inner.read(`${base}.scales`), gIdx = inner.read(`${base}.g_idx`);
    const rows = qweight.shape[1]!, cols = gIdx.shape[0]!, groups = scales.shape[0]!;
    const g = gIdx.data as Int32Array;
    for (let i = 0; i < cols; i++) {
      if (!(g[i]! >= 0 && g[i]! < groups)) throw new FormatError(fileOf(inner, `${base}.g_idx`), `${base}.g_idx[${i}] = ${g[i]} is outside the ${groups} groups`);
    }
    const q = { kind: 'gptq' as const, bits, rows, cols, groups, qweight: qweight.data as Int32Array, qzeros: qzeros.data as Int32Array, scales: scales.toF32(), gIdx: g };
    if (!floatZeros) return q;
    const name = `${base}.${FLOAT_ZEROS_PART}`, zerosF = inner.read(name).data as Float32Array;
    for (let i = 0; i < zerosF.length; i++) {
      if (!Number.isFinite(zerosF[i]!)) throw new FormatError(fileOf(inner, name), `tensor "${name}" element ${i} (group ${Math.floor(i / rows)}, output ${i % rows}) is ${zerosF[i]}; float zero points must be finite`);
    }
    return { ...q, zerosF };
  },
  pack(base, stored, rows, cols, bits, _groupSize, scaleDtype) {
    return gptqTensors(base, packGptq(uniform(base, stored), rows, cols, bits).tensors, scaleDtype);
  },
};

/** The stored tensors of a GPTQ layer: qweight, qzeros, scales (in `scaleDtype`), g_idx, and qzeros_float when it has float zeros. */
export function gptqTensors(base: string, t: GptqPacked, scaleDtype: ScaleDtype): { name: string; tensor: Tensor }[] {
  const { rows, cols } = t;
  return [
    { name: `${base}.qweight`, tensor: new Tensor('i32', [t.qweight.length / rows, rows], t.qweight) },
    { name: `${base}.qzeros`, tensor: new Tensor('i32', [t.groups, t.qzeros.length / t.groups], t.qzeros) },
    { name: `${base}.scales`, tensor: scalesTensor(t.scales, t.groups, rows, scaleDtype) },
    { name: `${base}.g_idx`, tensor: new Tensor('i32', [cols], t.gIdx) },
    ...(t.zerosF ? [{ name: `${base}.${FLOAT_ZEROS_PART}`, tensor: new Tensor('f32', [t.groups, rows], t.zerosF) }] : []),
  ];
}

const AWQ_FORMAT: PackedFormat = {
  name: 'awq',
  parts: ['qweight', 'qzeros', 'scales'],
  shape(inner, infos, base, bits, groupSize) {
    const [qweight, qzeros, scales] = parts(inner, infos, base, 'awq', this.parts) as [TensorInfo, TensorInfo, TensorInfo];
    const what = `${bits}-bit AWQ GEMM with group size ${groupSize}`;
    if (qweight.shape.length !== 2 || qweight.shape[1] === 0) bad(inner, qweight, what, '[in, out/8]');
    const cols = qweight.shape[0]!, rows = qweight.shape[1]! * 8;
    if (cols % groupSize !== 0) bad(inner, qweight, what, `[a multiple of ${groupSize}, out/8]`);
    const groups = cols / groupSize;
    if (scales.shape.length !== 2 || scales.shape[0] !== groups || scales.shape[1] !== rows) bad(inner, scales, what, `[${groups}, ${rows}]`);
    if (qzeros.shape.length !== 2 || qzeros.shape[0] !== groups || qzeros.shape[1] !== rows / 8) bad(inner, qzeros, what, `[${groups}, ${rows / 8}]`);
    return [rows, cols];
  },
  read(inner, base, _bits, groupSize) {
    const qweight = inner.read(`${base}.qweight`), qzeros = inner.read(`${base}.qzeros`), scales = inner.read(`${base}.scales`);
    const cols = qweight.shape[0]!, rows = qweight.shape[1]! * 8;
    return { kind: 'awq', bits: 4, rows, cols, groupSize, qweight: qweight.data as Int32Array, qzeros: qzeros.data as Int32Array, scales: scales.toF32() };
  },
  pack(base, stored, rows, cols, _bits, groupSize, scaleDtype) {
    const t = packAwq(uniform(base, stored), rows, cols, groupSize, base);
    const groups = cols / groupSize;
    return [
      { name: `${base}.qweight`, tensor: new Tensor('i32', [cols, rows / 8], t.qweight) },
      { name: `${base}.qzeros`, tensor: new Tensor('i32', [groups, rows / 8], t.qzeros) },
      { name: `${base}.scales`, tensor: scalesTensor(t.scales, groups, rows, scaleDtype) },
    ];
  },
};

/** A method-specific kind as a checkpoint format: its parts stored and read as they are, checked by the kind. */
function kindFormat(kind: PackedKind): PackedFormat {
  return {
    name: kind.name,
    parts: kind.parts,
    shape(inner, infos, base, bits) {
      const parts: Record<string, PartInfo> = {};
      for (const p of kind.parts) {
        const t = infos.get(`${base}.${p}`);
        if (!t) throw new FormatError(fileOf(inner, `${base}.${kind.parts[0]}`), `${base} has a ${kind.parts[0]} but no ${p} (a ${kind.name} layer stores ${kind.parts.join(', ')})`);
        parts[p] = { dtype: t.dtype, shape: t.shape };
      }
      try { return kind.shape(parts, bits); } catch (e) { throw new FormatError(fileOf(inner, `${base}.${kind.parts[0]}`), `${base}: ${(e as Error).message}`); }
    },
    read(inner, base, bits) {
      const parts = Object.fromEntries(kind.parts.map((p) => [p, inner.read(`${base}.${p}`)]));
      try { return kind.open(parts, bits); } catch (e) { throw new FormatError(fileOf(inner, `${base}.${kind.parts[0]}`), `${base}: ${(e as Error).message}`); }
    },
    pack(base, stored) {
      if (stored.kind !== kind.name || !('parts' in stored)) throw new Error(`${base}: a ${stored.kind} layer cannot be stored as ${kind.name}`);
      return kind.parts.map((p) => {
        const tensor = stored.parts[p];
        if (!tensor) throw new Error(`${base}: the ${kind.name} layer has no ${p}`);
        return { name: `${base}.${p}`, tensor };
      });
    },
  };
}

export const FORMATS: Readonly<Record<FormatName, PackedFormat>> = Object.freeze({
  gptq: GPTQ_FORMAT, awq: AWQ_FORMAT,
  ...Object.fromEntries(Object.values(PACKED_KINDS).map((k) => [k.name, kindFormat(k)])),
});
