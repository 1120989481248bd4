/// <reference types="@webgpu/types" />
/**
 * Keys, uploads and dispatch of the in-shader kind decoders (kindDecoders.wgsl.ts). A layer's stored
 * parts are laid end to end, each from a word boundary, in one storage buffer; `kmeta` gives each
 * part's word offset and the kind's integers. A layer whose parts exceed one binding is uploaded in
 * parts of whole rows (kindRows.ts), each multiplied on its own. `kindSource` is undefined for a kind
 * or a layout with no decoder (QuIP, whose transforms mix every row: quipRebuild.ts rebuilds it
 * whole; a layer opened without its parts), and `uploadKindParts` for rows that cannot be cut to
 * fit; the caller then takes QuIP's device rebuild or the host-decoded dense path.
 */
import type { GpuDevice } from '../device.js';
import type { GptqPacked, KindLayer } from '../../../tensor/packed.js';
import { DYNAMIC_MAP, NF4_LEVELS } from '../../../tensor/nf4Pack.js';
import { Tensor } from '../../../tensor/tensor.js';
import { GPTQ_FLOAT_ZEROS, NF4_KINDS, rowAlign, sliceRows, type Parts } from './kindRows.js';
import { BILLM_PARAMS } from '../../../tensor/billmPack.js';
import { GEMMT_TILE, linearTWithDecoder } from './gemmT.wgsl.js';
import { runLinear, tileFor } from './linear.js';
import { tileKey } from './linearFast.wgsl.js';
import { DBLLM_W_AT, GPTQ_FLOAT_ZEROS_W_AT, billmWAt, nf4WAt, pbllmWAt, type ParamDtype } from './kindDecoders.wgsl.js';
import type { LinearShape } from './linear.js';
import type { LinearTShape } from './gemmT.js';

/** What goes to the device for one layer: the decoder (pipeline key and w_at source), kmeta, and the parts in order. */
export interface KindPlan {
  readonly key: string;
  readonly wAt: string;
  /** kmeta[1..]: part offsets are filled in by packPlan from the part indices, integers as they are */
  readonly meta: readonly (number | { part: number })[];
  readonly parts: readonly ArrayBufferView[];
  /** the decoder reads the device's constant tables (NF4's levels and dynamic map) at binding 5 */
  readonly tables?: boolean;
}

/** One layer on the device: kmeta and the parts' words (`bytes` = the parts' size, what the layer holds). */
export interface KindBuffers {
  readonly key: string; readonly wAt: string; readonly meta: GPUBuffer; readonly words: GPUBuffer; readonly bytes: number;
  /** the device's shared constant tables (not the layer's: never destroyed with it) */
  readonly tables?: GPUBuffer;
}

/** One part of rows start..start + rows of a layer on the device. */
export interface PackedPart { readonly bufs: KindBuffers; readonly start: number; readonly rows: number }

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const words = (n: number) => Math.ceil(n / 4);
const part = (i: number) => ({ part: i });

/** The parts end to end from word boundaries, and kmeta with their offsets (kmeta[0] = the runtime zero of kd_keep). */
export function packPlan(plan: KindPlan): { meta: Uint32Array; blob: Uint8Array } {
  const offs: number[] = [];
  let at = 0;
  for (const a of plan.parts) { offs.push(at); at += words(a.byteLength); }
  const blob = new Uint8Array(Math.max(at, 1) * 4);
  plan.parts.forEach((a, i) => blob.set(bytesOf(a), offs[i]! * 4));
  const meta = Uint32Array.from([0, ...plan.meta.map((m) => (typeof m === 'number' ? m : offs[m.part]!))]);
  return { meta, blob };
}

function paramDtype(t: Tensor): ParamDtype { return t.dtype === 'f16' ? 'f16' : 'f32'; }

/** The parts of a GPTQ layer with float zero points, under the names kindRows.ts slices. */
function gptqFloatZeroParts(q: GptqPacked): Parts {
  return {
    qweight: new Tensor('i32', [q.qweight.length / q.rows, q.rows], q.qweight), scales: new Tensor('f32', [q.groups, q.rows], q.scales),
    zerosF: new Tensor('f32', [q.groups, q.rows], q.zerosF!), g_idx: new Tensor('i32', [q.cols], q.gIdx),
  };
}

/**
 * The decoder and parts of `rows` rows of a `kind` layer (its first row `r0` of the whole layer, for
 * NF4's nested blocks); undefined when there is no decoder for the kind.
 */
export function planParts(kind: string, t: Parts, rows: number, cols: number, r0 = 0, bits = 0): KindPlan | undefined {
  if (NF4_KINDS.has(kind)) {
    const dq = kind.endsWith('dq'), icq = kind.startsWith('icq');
    // parts: 0 codes, 1 absmax, then absmax2, offset, tau_quant, tau_absmax as present
    const parts: ArrayBufferView[] = [t.codes!.data, t.absmax!.data];
    const add = (a: ArrayBufferView | undefined) => { if (!a) return 0; parts.push(a); return part(parts.length - 1); };
    const a2 = add(dq ? t.absmax2!.data : undefined), off = add(dq ? t.offset!.data : undefined);
    const tq = add(icq ? t.tau_quant!.data : undefined), ta = add(icq ? t.tau_absmax!.data : undefined);
    return { key: kind, wAt: nf4WAt(dq, icq), meta: [part(0), part(1), a2, off, tq, ta, (r0 * cols) / 64], parts, tables: true };
  }
  if (kind === 'dbllm') {
    const groups = t.alphas!.shape[1]!;
    return { key: 'dbllm', wAt: DBLLM_W_AT, meta: [part(0), part(1), rows, cols / groups, groups], parts: [t.planes!.data, t.alphas!.data] };
  }
  if (kind === 'pbllm') {
    const dt = paramDtype(t.mu!), groups = t.mu!.shape[1]!;
    const prefix = codePrefix(t.signs!.data as Uint8Array, t.salient!.data as Uint8Array, rows * cols);
    return {
      key: `pbllm_${dt}`, wAt: pbllmWAt(dt),
      meta: [part(0), part(1), part(2), part(3), part(4), part(5), part(6), part(7), cols / groups, groups],
      parts: [t.signs!.data, t.salient!.data, t.codes!.data, t.mu!.data, t.alpha!.data, t.scale!.data, t.zero!.data, prefix],
    };
  }
  if (kind === 'billm') {
    const dt = paramDtype(t.params!), [nb, g] = t.salient!.shape as [number, number];
    if (t.params!.shape[2] !== BILLM_PARAMS) return undefined;
    const z = t.zero_signs!.data as Int32Array, zrow = new Uint32Array(rows + 1);
    for (let r = 0, i = 0; r <= rows; r++) { while (i < z.length && z[i]! < 2 * r * cols) i++; zrow[r] = i; }
    return {
      key: `billm_${dt}`, wAt: billmWAt(dt),
      meta: [part(0), part(1), part(2), part(3), part(4), rows, Math.ceil(cols / 8), g, nb],
      parts: [t.planes!.data, t.salient!.data, t.params!.data, z, zrow],
    };
  }
  if (kind === GPTQ_FLOAT_ZEROS) {
    return { key: 'gptq_float_zeros', wAt: GPTQ_FLOAT_ZEROS_W_AT, meta: [part(0), part(1), part(2), part(3), bits], parts: [t.qweight!.data, t.scales!.data, t.g_idx!.data, t.zerosF!.data] };
  }
  return undefined;
}

/** A layer as the device decodes it: its kind, parts and shape; undefined for a kind layer with no decoder. */
export interface KindSource { readonly kind: string; readonly parts: Parts; readonly rows: number; readonly cols: number; readonly bits: number }

export function kindSource(k: KindLayer): KindSource | undefined {
  if (!k.parts || k.transformInput || k.transformOutput || k.coreRows !== k.rows || k.coreCols !== k.cols) return undefined;
  if (!NF4_KINDS.has(k.kind) && !['dbllm', 'pbllm', 'billm'].includes(k.kind)) return undefined;
  return { kind: k.kind, parts: k.parts, rows: k.rows, cols: k.cols, bits: 0 };
}

export function gptqFloatZerosSource(q: GptqPacked): KindSource {
  return { kind: GPTQ_FLOAT_ZEROS, parts: gptqFloatZeroParts(q), rows: q.rows, cols: q.cols, bits: q.bits };
}

/** PB-LLM's code index at every 128th weight: the coded (salient, sign 0) bits before it, over the whole layer. */
function codePrefix(signs: Uint8Array, salient: Uint8Array, n: number): Uint32Array {
  const chunks = Math.ceil(n / 128), out = new Uint32Array(Math.max(chunks, 1));
  let count = 0;
  for (let c = 0; c < chunks; c++) {
    out[c] = count;
    for (let b = c * 16; b < Math.min((c + 1) * 16, signs.length); b++) count += POPCOUNT[salient[b]! & ~signs[b]! & 0xff]!;
  }
  return out;
}
const POPCOUNT = Uint8Array.from({ length: 256 }, (_, b) => { let n = 0; for (let x = b; x; x >>= 1) n += x & 1; return n; });

/** NF4's 16 levels then the 256 dynamic-map values, one buffer per device (1,088 bytes). */
const TABLES = new WeakMap<GpuDevice, GPUBuffer>();
function tablesOf(gpu: GpuDevice): GPUBuffer {
  let b = TABLES.get(gpu);
  if (!b) { const t = new Float32Array(272); t.set(NF4_LEVELS); t.set(DYNAMIC_MAP, 16); b = gpu.upload('NF4 tables', t); TABLES.set(gpu, b); }
  return b;
}

/** The plan's buffers on the device; undefined when the parts together exceed one binding. */
function uploadPlan(gpu: GpuDevice, what: string, plan: KindPlan): KindBuffers | undefined {
  const { meta, blob } = packPlan(plan);
  if (blob.byteLength > gpu.caps.maxBinding) return undefined;
  return {
    key: plan.key, wAt: plan.wAt, meta: gpu.upload(`${what} kmeta`, meta), words: gpu.upload(`${what} parts`, blob),
    bytes: blob.byteLength + meta.byteLength, ...(plan.tables ? { tables: tablesOf(gpu) } : {}),
  };
}

/**
 * The layer on the device: whole, or in parts of whole rows when its parts exceed one binding (rows
 * per part from its bytes per row, a multiple of the kind's row alignment); undefined when no cut fits
 * or the kind has no decoder.
 */
export function uploadKindParts(gpu: GpuDevice, what: string, src: KindSource): PackedPart[] | undefined {
  const { kind, parts, rows, cols, bits } = src;
  const whole = planParts(kind, parts, rows, cols, 0, bits);
  if (!whole) return undefined;
  const one = uploadPlan(gpu, what, whole);
  if (one) return [{ bufs: one, start: 0, rows }];
  const bytes = packPlan(whole).blob.byteLength, align = rowAlign(kind, cols);
  // a margin for what does not shrink with the rows (kmeta, BiLLM's salient columns, NF4's nested parts)
  const per = Math.floor((0.75 * gpu.caps.maxBinding) / (bytes / rows) / align) * align;
  if (per < 1) return undefined;
  const out: PackedPart[] = [];
  for (let r0 = 0; r0 < rows; r0 += per) {
    const r1 = Math.min(rows, r0 + per);
    const plan = planParts(kind, sliceRows(kind, parts, rows, cols, r0, r1), r1 - r0, cols, r0, bits)!;
    const bufs = uploadPlan(gpu, `${what} rows ${r0}..${r1 - 1}`, plan);
    if (!bufs) { for (const p of out) destroyKind(gpu, p.bufs); return undefined; }
    out.push({ bufs, start: r0, rows: r1 - r0 });
  }
  return out;
}

export function destroyKind(gpu: GpuDevice, b: KindBuffers): void { gpu.destroy(b.meta, b.words); }

const bindings = (b: KindBuffers) => [b.meta, b.words, ...(b.tables ? [b.tables] : [])];

/** y[:, n0..n0+N) = x · Wᵀ for a part of N rows starting at row n0, W decoded in the shader (the body linearVariant picks). */
export function linearKind(gpu: GpuDevice, x: GPUBuffer, b: KindBuffers, y: GPUBuffer, s: LinearShape, N: number, n0: number): void {
  runLinear(gpu, `kind_${b.key}`, () => b.wAt, [s.M, N, s.K, s.ldy, n0, 0, 0, 0, 0], [x, y, ...bindings(b)], s.M, N, s.K);
}

/** dx (+)= dy[:, n0..n0+N) · W for a part of N rows, W decoded in the shader (linearT); `accumulate` for every part after the first. */
export function linearTKind(gpu: GpuDevice, dy: GPUBuffer, b: KindBuffers, dx: GPUBuffer, s: LinearTShape, N: number, n0: number, accumulate: boolean): void {
  const params = [s.M, N, s.K, s.ldy, n0, 0, 0, 0, 0, accumulate ? 1 : 0];
  if (gpu.caps.kernels === 'fast') {
    const tile = tileFor(gpu, s.M, s.K);
    const pipe = gpu.pipelines.get(`linear_t_kind_${b.key}_${tileKey(tile)}`, () => linearTWithDecoder(b.wAt, tile));
    gpu.dispatch(pipe, params, [dy, dx, ...bindings(b)], [Math.ceil(s.K / tile.bn), Math.ceil(s.M / tile.bm)]);
    return;
  }
  const pipe = gpu.pipelines.get(`linear_t_kind_${b.key}`, () => linearTWithDecoder(b.wAt));
  gpu.dispatch(pipe, params, [dy, dx, ...bindings(b)], [Math.ceil(s.K / GEMMT_TILE), Math.ceil(s.M / GEMMT_TILE)]);
}
