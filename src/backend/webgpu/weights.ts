/// <reference types="@webgpu/types" />
/**
 * Weights on the device. A dense weight larger than one storage binding is split into parts of
 * whole rows (the embedding table and the LM head of a large vocabulary), each its own buffer; the
 * kernels that take weights (linear, embedding) run once per part. Quantized weights keep their
 * codes: GPTQ's and AWQ's layouts as they are stored, decoded in the shader. The stored kinds NF4,
 * ICQ (plain and double-quantized), PB-LLM, BiLLM, DB-LLM, and GPTQ with float zero points (zerosF,
 * QA-LoRA's merge), keep their stored parts too, in one buffer with a small index (`packed`,
 * kernels/kindDecoders.ts), decoded in the shader; in parts of whole rows when they exceed one binding
 * (kernels/kindRows.ts). QuIP keeps its codes, grid values and D (and its butterflies when they are
 * small beside the codes); its weight is rebuilt on the device when multiplied (kernels/quipRebuild.ts)
 * and kept for the multiplies that follow (quipCache.ts). Anything else (a kind layer opened without its parts; rows
 * that cannot be cut to fit; a QuIP layer with a rotation block or a plane too large for the device
 * rebuild) is decoded on the host when uploaded,
 * panel by panel with decodeRows (or through materializeKind when the kind has input/output
 * transforms), and held as float32 row parts: its multiply is then the dense one.
 */
import type { GpuDevice } from './device.js';
import type { GptqBuffers, AwqBuffers } from './kernels/linear.js';
import { packedWords } from '../../tensor/gptqPack.js';
import { materializeKind, type AwqPacked, type GptqPacked, type KindLayer } from '../../tensor/packed.js';
import { checkQuantWeight, decodeQuantRows } from '../cpu/kernels/qgemm.js';
import { destroyKind, gptqFloatZerosSource, kindSource, uploadKindParts, type KindSource, type PackedPart } from './kernels/kindDecoders.js';
import { destroyQuip, uploadQuip, type QuipBuffers } from './kernels/quipRebuild.js';

/** Rows start..start+rows of a dense tensor, in one buffer. */
export interface Part { readonly buffer: GPUBuffer; readonly start: number; readonly rows: number }

export type DenseDtype = 'f32' | 'f16' | 'bf16';

/** How a quantized weight lives on the device. */
export type DeviceQuant =
  | { readonly kind: 'gptq'; readonly host: GptqPacked; readonly bufs: GptqBuffers }
  | { readonly kind: 'awq'; readonly host: AwqPacked; readonly bufs: AwqBuffers }
  | { readonly kind: 'packed'; readonly host: KindLayer; readonly parts: readonly PackedPart[] }
  | { readonly kind: 'quip'; readonly host: KindLayer; readonly bufs: QuipBuffers }
  | { readonly kind: 'dense'; readonly host: KindLayer; readonly parts: readonly Part[] };

const BYTES: Record<DenseDtype, number> = { f32: 4, f16: 2, bf16: 2 };

/** Rows per part so that each part fits one binding; a RangeError naming the size when one row does not. */
function rowsPerPart(gpu: GpuDevice, what: string, shape: readonly number[], dtype: DenseDtype): number {
  const rows = shape[0] ?? 1;
  const rowBytes = (shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : 1) * BYTES[dtype];
  if (rows * rowBytes <= gpu.caps.maxBinding) return Math.max(rows, 1);
  if (shape.length < 2) gpu.fits(`${what} [${shape.join(', ')}] (${dtype})`, rows * rowBytes);
  const per = Math.floor(gpu.caps.maxBinding / Math.max(rowBytes, 1));
  if (per < 1) gpu.fits(`one row of ${what} [${shape.join(', ')}] (${dtype})`, rowBytes);
  return per;
}

/** A dense tensor in row parts; `fill(part, start, rows)` writes each part's contents. */
export function denseParts(gpu: GpuDevice, what: string, shape: readonly number[], dtype: DenseDtype,
  fill: (buf: GPUBuffer, start: number, rows: number) => void): Part[] {
  const rows = shape.length === 0 ? 1 : shape[0]!;
  const rowElems = shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : 1;
  const per = rowsPerPart(gpu, what, shape, dtype);
  const parts: Part[] = [];
  for (let start = 0; start < Math.max(rows, 1); start += per) {
    const n = Math.min(per, rows - start);
    const buffer = gpu.storage(what, n * rowElems * BYTES[dtype]);
    fill(buffer, start, n);
    parts.push({ buffer, start, rows: n });
  }
  return parts;
}

export function uploadGptq(gpu: GpuDevice, q: GptqPacked): DeviceQuant {
  checkQuantWeight(q, 'uploadQuantized');
  if (q.zerosF) return uploadKind(gpu, gptqAsKind(q), gptqFloatZerosSource(q));
  const what = `GPTQ weight [${q.rows}, ${q.cols}]`;
  for (const [part, a] of [['qweight', q.qweight], ['qzeros', q.qzeros], ['scales', q.scales], ['g_idx', q.gIdx]] as const) {
    gpu.fits(`${what} ${part}`, a.byteLength);
  }
  const bufs: GptqBuffers = {
    qweight: gpu.upload(`${what} qweight`, q.qweight), qzeros: gpu.upload(`${what} qzeros`, q.qzeros),
    scales: gpu.upload(`${what} scales`, q.scales), gIdx: gpu.upload(`${what} g_idx`, q.gIdx),
    bits: q.bits, groups: q.groups, zw: packedWords(q.rows, q.bits),
  };
  return { kind: 'gptq', host: q, bufs };
}

export function uploadAwq(gpu: GpuDevice, q: AwqPacked): DeviceQuant {
  const { rows, cols, groupSize } = q;
  const what = `AWQ weight [${rows}, ${cols}]`;
  if (q.bits !== 4) throw new RangeError(`uploadQuantized: ${what} has ${q.bits} bits; AutoAWQ's GEMM layout holds 4`);
  if (rows % 8 !== 0) throw new RangeError(`uploadQuantized: ${what}: ${rows} output rows is not a multiple of 8`);
  if (!(Number.isInteger(groupSize) && groupSize >= 1 && cols % groupSize === 0)) {
    throw new RangeError(`uploadQuantized: ${what}: group size ${groupSize} does not divide ${cols} columns`);
  }
  const groups = cols / groupSize;
  const want: [string, ArrayLike<number>, number][] = [
    ['qweight', q.qweight, cols * rows / 8], ['qzeros', q.qzeros, groups * rows / 8], ['scales', q.scales, groups * rows],
  ];
  for (const [part, a, n] of want) if (a.length !== n) throw new RangeError(`uploadQuantized: ${what} ${part} has ${a.length} elements, expected ${n}`);
  for (const [part, a] of [['qweight', q.qweight], ['qzeros', q.qzeros], ['scales', q.scales]] as const) gpu.fits(`${what} ${part}`, a.byteLength);
  const bufs: AwqBuffers = {
    qweight: gpu.upload(`${what} qweight`, q.qweight), qzeros: gpu.upload(`${what} qzeros`, q.qzeros),
    scales: gpu.upload(`${what} scales`, q.scales), groupSize,
  };
  return { kind: 'awq', host: q, bufs };
}

/** A GPTQ layer with float zero points seen as a kind layer: rows decoded by the CPU reference (zerosF honoured). */
function gptqAsKind(q: GptqPacked): KindLayer {
  return {
    kind: 'gptq-float-zeros', rows: q.rows, cols: q.cols, coreRows: q.rows, coreCols: q.cols, parameters: q.scales,
    decodeRows: (r0, nr, out) => decodeQuantRows(q, r0, nr, out),
  };
}

/** Output rows decoded per panel when a kind layer is uploaded. */
const KIND_PANEL = 64;

/** A kind layer: its stored parts decoded in the shader when there is a decoder for them (in row parts when they exceed one binding), else dense float32. */
export function uploadKind(gpu: GpuDevice, k: KindLayer, src: KindSource | undefined = kindSource(k)): DeviceQuant {
  const what = `${k.kind} weight [${k.rows}, ${k.cols}]`;
  const packed = src && uploadKindParts(gpu, what, src);
  if (packed) return { kind: 'packed', host: k, parts: packed };
  const quip = uploadQuip(gpu, what, k);
  if (quip) return { kind: 'quip', host: k, bufs: quip };
  const shape = [k.rows, k.cols];
  const transformed = !!(k.transformInput || k.transformOutput) || k.coreRows !== k.rows || k.coreCols !== k.cols;
  const dense = transformed ? materializeKind(k) : undefined;
  const panel = new Float32Array(transformed ? 0 : KIND_PANEL * k.cols);
  const parts = denseParts(gpu, what, shape, 'f32', (buf, start, rows) => {
    if (dense) { gpu.write(buf, dense.subarray(start * k.cols, (start + rows) * k.cols)); return; }
    for (let r = 0; r < rows; r += KIND_PANEL) {
      const nr = Math.min(KIND_PANEL, rows - r);
      const p = panel.subarray(0, nr * k.cols);
      k.decodeRows(start + r, nr, p);
      gpu.write(buf, p, r * k.cols * 4);
    }
  });
  return { kind: 'dense', host: k, parts };
}

/** Bytes the weight holds on the device. */
export function quantBytes(q: DeviceQuant): number {
  if (q.kind === 'packed') return q.parts.reduce((a, p) => a + p.bufs.bytes, 0);
  if (q.kind === 'quip') return q.bufs.bytes;
  if (q.kind === 'dense') return q.parts.reduce((a, p) => a + p.buffer.size, 0);
  return [q.bufs.qweight, q.bufs.qzeros, q.bufs.scales, ...(q.kind === 'gptq' ? [q.bufs.gIdx] : [])].reduce((a, b) => a + b.size, 0);
}

export function destroyQuant(gpu: GpuDevice, q: DeviceQuant): void {
  if (q.kind === 'packed') for (const p of q.parts) destroyKind(gpu, p.bufs);
  else if (q.kind === 'quip') destroyQuip(gpu, q.bufs);
  else if (q.kind === 'dense') gpu.destroy(...q.parts.map((p) => p.buffer));
  else gpu.destroy(q.bufs.qweight, q.bufs.qzeros, q.bufs.scales, ...(q.kind === 'gptq' ? [q.bufs.gIdx] : []));
}
