/**
 * A GGUF file as a TensorSource with canonical HF names and layouts: dims reversed to [out, in],
 * q/k rows un-permuted to rotate-half order, Q8_0/Q4_0/Q4_1 dequantized to float32.
 */
import { FormatError, UsageError } from '../../errors.js';
import { viewAs, type DType } from '../../tensor/dtype.js';
import { Tensor } from '../../tensor/tensor.js';
import { readAt } from '../fileBytes.js';
import { pairsToHalves } from '../qkPermute.js';
import { NAMES, type LayerPart, type TensorInfo, type TensorSource } from '../source.js';
import { checkRowRange, rotateHalfRows, rowElements, sliceRows } from '../rows.js';
import { dequantizeQ4_0, dequantizeQ4_1, dequantizeQ8_0 } from './dequant.js';
import { readGgufHeader, tensorBytes } from './parse.js';
import { GGML_LAYOUT, GgmlType, ggmlTypeName, type GgufHeader, type GgufTensorInfo } from './types.js';

export const LAYER_MAP: Readonly<Record<string, LayerPart>> = Object.freeze({
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
  [GgmlType.F32]: 'f32', [GgmlType.F16]: 'f16', [GgmlType.BF16]: 'bf16', [GgmlType.Q8_0]: 'f32', [GgmlType.Q4_0]: 'f32', [GgmlType.Q4_1]: 'f32',
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

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) throw new UsageError(`${this.path}: no tensor named "${name}"`);
    return e;
  }

  /** Heads to un-permute for q/k projections (0 for every other tensor). */
  private qkHeads(name: string): number {
    return name.endsWith('.self_attn.q_proj.weight') ? this.heads.numHeads
      : name.endsWith('.self_attn.k_proj.weight') ? this.heads.numKvHeads : 0;
  }

  private checkQk(e: Entry, qk: number): void {
    const rows = e.shape[0]!;
    if (e.shape.length !== 2 || rows % (2 * qk) !== 0) throw new FormatError(this.path, `tensor "${e.gguf.name}": shape [${e.shape.join(', ')}] does not split into ${qk} heads`);
  }

  /** Bytes of the whole tensor, or a FormatError naming a type lowbit cannot decode. */
  private byteSize(e: Entry): number {
    const t = e.gguf;
    const bytes = tensorBytes(this.header, t);
    if (bytes === undefined) throw new FormatError(this.path, `tensor "${t.name}" has type ${ggmlTypeName(t.type)}, which lowbit cannot decode (F32, F16, BF16, Q8_0, Q4_0, Q4_1)`);
    return bytes;
  }

  /** `n` values of `e` stored as `raw` (whole blocks), decoded to the dtype `read` returns. */
  private decode(e: Entry, raw: Uint8Array, n: number) {
    switch (e.gguf.type as GgmlType) {
      case GgmlType.Q8_0: return dequantizeQ8_0(raw, n);
      case GgmlType.Q4_0: return dequantizeQ4_0(raw, n);
      case GgmlType.Q4_1: return dequantizeQ4_1(raw, n);
      default: return viewAs(e.dtype, raw);
    }
  }

  read(name: string): Tensor {
    const e = this.entry(name);
    const t = e.gguf;
    const bytes = this.byteSize(e);
    const raw = readAt(this.path, this.header.dataStart + t.offset, bytes, `tensor "${t.name}"`);
    let data = this.decode(e, raw, e.shape.reduce((a, b) => a * b, 1));
    const qk = this.qkHeads(name);
    if (qk > 0) {
      this.checkQk(e, qk);
      const [rows, cols] = e.shape as [number, number];
      data = pairsToHalves(data, rows, cols, qk);
    }
    return new Tensor(e.dtype, e.shape, data);
  }

  /**
   * Rows [start, start + count) along the first dimension (ggml's last), reading only their bytes:
   * rows of F32/F16/BF16 and of Q8_0/Q4_0/Q4_1 are whole blocks, so only those blocks are dequantized.
   * q/k rows are read as the whole heads that hold them, then un-permuted.
   */
  readRows(name: string, start: number, count: number): Tensor {
    const e = this.entry(name);
    checkRowRange(this.path, name, e.shape, start, count);
    const t = e.gguf;
    const bytes = this.byteSize(e);
    const rows = e.shape[0]!, rowElems = rowElements(e.shape);
    const layout = GGML_LAYOUT[t.type as keyof typeof GGML_LAYOUT]!;
    // a vector of a block type: its "rows" are single values inside blocks (never a large tensor)
    if (rowElems % layout.block !== 0) return sliceRows(this.read(name), start, count);
    const rowBytes = rows === 0 ? 0 : bytes / rows;
    const stored = (first: number, n: number) => {
      const what = `tensor "${t.name}" (${name}) rows [${first}, ${first + n})`;
      const raw = readAt(this.path, this.header.dataStart + t.offset + first * rowBytes, n * rowBytes, what);
      return this.decode(e, raw, n * rowElems);
    };
    const qk = this.qkHeads(name);
    let data;
    if (qk > 0) {
      this.checkQk(e, qk);
      data = rotateHalfRows(rows, rowElems, qk, start, count, stored);
    } else data = stored(start, count);
    return new Tensor(e.dtype, [count, ...e.shape.slice(1)], data);
  }
}
