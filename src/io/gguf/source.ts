/**
 * A GGUF file as a TensorSource with canonical HF names and layouts: dims reversed to [out, in],
 * q/k rows un-permuted to rotate-half order, Q8_0/Q4_0 dequantized to float32.
 */
import { FormatError, UsageError } from '../../errors.js';
import { viewAs, type DType } from '../../tensor/dtype.js';
import { Tensor } from '../../tensor/tensor.js';
import { readAt } from '../fileBytes.js';
import { pairsToHalves } from '../qkPermute.js';
import { NAMES, type LayerPart, type TensorInfo, type TensorSource } from '../source.js';
import { dequantizeQ4_0, dequantizeQ8_0 } from './dequant.js';
import { readGgufHeader, tensorBytes } from './parse.js';
import { GgmlType, ggmlTypeName, type GgufHeader, type GgufTensorInfo } from './types.js';

const LAYER_MAP: Readonly<Record<string, LayerPart>> = Object.freeze({
  attn_norm: 'input_layernorm',
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  ffn_norm: 'post_attention_layernorm',
  ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj',
});

const GLOBAL_MAP: Readonly<Record<string, string>> = Object.freeze({
  'token_embd.weight': NAMES.embed,
  'output_norm.weight': NAMES.finalNorm,
  'output.weight': NAMES.lmHead,
});

/** GGUF tensor name → canonical HF name (unknown names are kept as they are). */
export function hfName(ggufName: string): string {
  const g = GLOBAL_MAP[ggufName];
  if (g) return g;
  const m = /^blk\.(\d+)\.([a-z_]+)\.weight$/.exec(ggufName);
  const part = m ? LAYER_MAP[m[2]!] : undefined;
  return part ? NAMES.layer(Number(m![1]), part) : ggufName;
}

const READ_DTYPE: Readonly<Partial<Record<GgmlType, DType>>> = Object.freeze({
  [GgmlType.F32]: 'f32', [GgmlType.F16]: 'f16', [GgmlType.BF16]: 'bf16', [GgmlType.Q8_0]: 'f32', [GgmlType.Q4_0]: 'f32',
});

interface Entry extends TensorInfo {
  readonly gguf: GgufTensorInfo;
}

export class GgufSource implements TensorSource {
  readonly header: GgufHeader;
  private readonly entries = new Map<string, Entry>();
  private readonly heads: { numHeads: number; numKvHeads: number };

  /** `heads` gives the head counts for un-permuting q (numHeads) and k (numKvHeads) rows. */
  constructor(readonly path: string, heads: { numHeads: number; numKvHeads: number }, header?: GgufHeader) {
    this.header = header ?? readGgufHeader(path);
    this.heads = heads;
    for (const t of this.header.tensors) {
      const name = hfName(t.name);
      if (this.entries.has(name)) throw new FormatError(path, `tensors "${t.name}" and "${this.entries.get(name)!.gguf.name}" both map to "${name}"`);
      const dtype = READ_DTYPE[t.type as GgmlType] ?? 'f32';
      this.entries.set(name, Object.freeze({ name, dtype, shape: Object.freeze([...t.ne].reverse()), storedAs: ggmlTypeName(t.type), gguf: t }));
    }
  }

  list(): readonly TensorInfo[] {
    return [...this.entries.values()].map(({ name, dtype, shape, storedAs }) => ({ name, dtype, shape, storedAs }));
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  read(name: string): Tensor {
    const e = this.entries.get(name);
    if (!e) throw new UsageError(`${this.path}: no tensor named "${name}"`);
    const t = e.gguf;
    const bytes = tensorBytes(this.header, t);
    if (bytes === undefined) throw new FormatError(this.path, `tensor "${t.name}" has type ${ggmlTypeName(t.type)}, which lowbit cannot decode (F32, F16, BF16, Q8_0, Q4_0)`);
    const raw = readAt(this.path, this.header.dataStart + t.offset, bytes, `tensor "${t.name}"`);
    const n = e.shape.reduce((a, b) => a * b, 1);
    let data;
    switch (t.type as GgmlType) {
      case GgmlType.Q8_0: data = dequantizeQ8_0(raw, n); break;
      case GgmlType.Q4_0: data = dequantizeQ4_0(raw, n); break;
      default: data = viewAs(e.dtype, raw);
    }
    const qk = name.endsWith('.self_attn.q_proj.weight') ? this.heads.numHeads
      : name.endsWith('.self_attn.k_proj.weight') ? this.heads.numKvHeads : 0;
    if (qk > 0) {
      const [rows, cols] = e.shape as [number, number];
      if (e.shape.length !== 2 || rows % (2 * qk) !== 0) throw new FormatError(this.path, `tensor "${t.name}": shape [${e.shape.join(', ')}] does not split into ${qk} heads`);
      data = pairsToHalves(data, rows, cols, qk);
    }
    return new Tensor(e.dtype, e.shape, data);
  }
}
