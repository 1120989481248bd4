/// <reference types="@webgpu/types" />
/**
 * Keys, uploads and dispatch of the in-shader kind decoders (kindDecoders.wgsl.ts). A layer's stored
 * parts are laid end to end, each from a word boundary, in one storage buffer; `kmeta` gives each
 * part's word offset and the kind's integers. `planKind` returns undefined for a kind or a layout it
 * has no decoder for (QuIP, whose transforms mix every row; a layer opened without its parts), and
 * the caller keeps the host-decoded dense path.
 */
import type { GpuDevice } from '../device.js';
import type { GptqPacked, KindLayer } from '../../../tensor/packed.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { DYNAMIC_MAP, NF4_LEVELS } from '../../../tensor/nf4Pack.js';
import { BILLM_PARAMS } from '../../../tensor/billmPack.js';
import { LINEAR_TILE, linearWgsl } from './linear.wgsl.js';
import { GEMMT_TILE, linearTWithDecoder } from './gemmT.wgsl.js';
import { DBLLM_W_AT, GPTQ_FLOAT_ZEROS_W_AT, billmWAt, nf4WAt, pbllmWAt, type ParamDtype } from './kindDecoders.wgsl.js';
import type { LinearShape } from './linear.js';
import type { LinearTShape } from './gemmT.js';

/** What goes to the device for one layer: the decoder (pipeline key and w_at source), kmeta, and the parts in order. */
export interface KindPlan {
  readonly key: string;
  readonly wAt: string;
  /** kmeta[1..]: part offsets are filled by `pack` from the part indices, integers as they are */
  readonly meta: readonly (number | { part: number })[];
  readonly parts: readonly ArrayBufferView[];
}

/** One layer on the device: kmeta and the parts' words (`bytes` = the parts' size, what the layer holds). */
export interface KindBuffers { readonly key: string; readonly wAt: string; readonly meta: GPUBuffer; readonly words: GPUBuffer; readonly bytes: number }

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

const NF4_NAMES = new Set(['nf4', 'nf4dq', 'icq', 'icqdq']);

/** The decoder and parts of a kind layer opened from its stored parts; undefined when there is none. */
export function planKind(k: KindLayer): KindPlan | undefined {
  const t = k.parts;
  if (!t || k.transformInput || k.transformOutput || k.coreRows !== k.rows || k.coreCols !== k.cols) return undefined;
  const { rows, cols } = k;
  if (NF4_NAMES.has(k.kind)) {
    const dq = k.kind.endsWith('dq'), icq = k.kind.startsWith('icq');
    // parts: 0 codes, 1 absmax, 2 levels, 3 map, then absmax2, offset, tau_quant, tau_absmax as present
    const parts: ArrayBufferView[] = [t.codes!.data, t.absmax!.data, NF4_LEVELS, DYNAMIC_MAP];
    const add = (a: ArrayBufferView | undefined) => { if (!a) return 0; parts.push(a); return part(parts.length - 1); };
    const a2 = add(dq ? t.absmax2!.data : undefined), off = add(dq ? t.offset!.data : undefined);
    const tq = add(icq ? t.tau_quant!.data : undefined), ta = add(icq ? t.tau_absmax!.data : undefined);
    return { key: k.kind, wAt: nf4WAt(dq, icq), meta: [part(0), part(1), a2, off, tq, ta, part(2), part(3)], parts };
  }
  if (k.kind === 'dbllm') {
    const groups = t.alphas!.shape[1]!;
    return { key: 'dbllm', wAt: DBLLM_W_AT, meta: [part(0), part(1), rows, cols / groups, groups], parts: [t.planes!.data, t.alphas!.data] };
  }
  if (k.kind === 'pbllm') {
    const dt = paramDtype(t.mu!), groups = t.mu!.shape[1]!;
    const prefix = codePrefix(t.signs!.data as Uint8Array, t.salient!.data as Uint8Array, rows * cols);
    return {
      key: `pbllm_${dt}`, wAt: pbllmWAt(dt),
      meta: [part(0), part(1), part(2), part(3), part(4), part(5), part(6), part(7), cols / groups, groups],
      parts: [t.signs!.data, t.salient!.data, t.codes!.data, t.mu!.data, t.alpha!.data, t.scale!.data, t.zero!.data, prefix],
    };
  }
  if (k.kind === 'billm') {
    const dt = paramDtype(t.params!), [nb, g] = t.salient!.shape as [number, number];
    if (t.params!.shape[2] !== BILLM_PARAMS) return undefined;
    return {
      key: `billm_${dt}`, wAt: billmWAt(dt),
      meta: [part(0), part(1), part(2), part(3), t.zero_signs!.data.length, rows, Math.ceil(cols / 8), g, nb],
      parts: [t.planes!.data, t.salient!.data, t.params!.data, t.zero_signs!.data],
    };
  }
  return undefined;
}

/** GPTQ v1 codes with float zero points (the packed qzeros are not read: zerosF replaces them). */
export function planGptqFloatZeros(q: GptqPacked): KindPlan {
  return {
    key: 'gptq_float_zeros', wAt: GPTQ_FLOAT_ZEROS_W_AT,
    meta: [part(0), part(1), part(2), part(3), q.bits], parts: [q.qweight, q.scales, q.gIdx, q.zerosF!],
  };
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

/** The plan's buffers on the device; undefined when the parts together exceed one binding (the caller falls back). */
export function uploadPlan(gpu: GpuDevice, what: string, plan: KindPlan): KindBuffers | undefined {
  const { meta, blob } = packPlan(plan);
  if (blob.byteLength > gpu.caps.maxBinding) return undefined;
  return { key: plan.key, wAt: plan.wAt, meta: gpu.upload(`${what} kmeta`, meta), words: gpu.upload(`${what} parts`, blob), bytes: blob.byteLength + meta.byteLength };
}

export function destroyKind(b: KindBuffers): void { b.meta.destroy(); b.words.destroy(); }

/** y[:, 0..N) = x · Wᵀ, W decoded in the shader. */
export function linearKind(gpu: GpuDevice, x: GPUBuffer, b: KindBuffers, y: GPUBuffer, s: LinearShape, N: number): void {
  const pipe = gpu.pipelines.get(`linear_kind_${b.key}`, () => linearWgsl(b.wAt));
  gpu.dispatch(pipe, [s.M, N, s.K, s.ldy, 0, 0, 0, 0, 0], [x, y, b.meta, b.words], [Math.ceil(N / LINEAR_TILE), Math.ceil(s.M / LINEAR_TILE)]);
}

/** dx = dy · W, W decoded in the shader (linearT). */
export function linearTKind(gpu: GpuDevice, dy: GPUBuffer, b: KindBuffers, dx: GPUBuffer, s: LinearTShape, N: number): void {
  const pipe = gpu.pipelines.get(`linear_t_kind_${b.key}`, () => linearTWithDecoder(b.wAt));
  gpu.dispatch(pipe, [s.M, N, s.K, s.ldy, 0, 0, 0, 0, 0, 0], [dy, dx, b.meta, b.words], [Math.ceil(s.K / GEMMT_TILE), Math.ceil(s.M / GEMMT_TILE)]);
}
