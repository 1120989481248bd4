/** A small GGUF writer for tests: builds well-formed files that the hostile tests then damage. */
import { GgufValueType } from '../../src/io/gguf/types.js';

export type KV =
  | [key: string, type: GgufValueType.STRING, value: string]
  | [key: string, type: GgufValueType.UINT32 | GgufValueType.INT32 | GgufValueType.FLOAT32 | GgufValueType.UINT8, value: number]
  | [key: string, type: GgufValueType.UINT64, value: bigint]
  | [key: string, type: GgufValueType.BOOL, value: boolean]
  | [key: string, type: GgufValueType.ARRAY, value: { type: GgufValueType.STRING; items: string[] } | { type: GgufValueType.FLOAT32 | GgufValueType.INT32; items: number[] }];

export interface BuildTensor {
  name: string;
  /** ggml order, ne[0] = columns */
  ne: number[];
  type: number;
  data: Uint8Array;
  /** written instead of the true offset (for hostile files) */
  offset?: number;
}

class Writer {
  private parts: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void { this.parts.push(b); this.length += b.length; }
  u32(v: number): void { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); this.push(b); }
  i32(v: number): void { const b = new Uint8Array(4); new DataView(b.buffer).setInt32(0, v, true); this.push(b); }
  f32(v: number): void { const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true); this.push(b); }
  u64(v: bigint | number): void { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(v), true); this.push(b); }
  str(s: string): void { const b = new TextEncoder().encode(s); this.u64(b.length); this.push(b); }
  pad(align: number): void { const n = (align - (this.length % align)) % align; this.push(new Uint8Array(n)); }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) { out.set(p, at); at += p.length; }
    return out;
  }
}

export function buildGguf(kvs: KV[], tensors: BuildTensor[], opts: { version?: number; alignment?: number } = {}): Uint8Array {
  const align = opts.alignment ?? 32;
  const w = new Writer();
  w.push(new TextEncoder().encode('GGUF'));
  w.u32(opts.version ?? 3);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const [key, type, value] of kvs) {
    w.str(key);
    w.u32(type);
    switch (type) {
      case GgufValueType.STRING: w.str(value); break;
      case GgufValueType.UINT32: w.u32(value); break;
      case GgufValueType.INT32: w.i32(value); break;
      case GgufValueType.FLOAT32: w.f32(value); break;
      case GgufValueType.UINT8: w.push(new Uint8Array([value])); break;
      case GgufValueType.UINT64: w.u64(value); break;
      case GgufValueType.BOOL: w.push(new Uint8Array([value ? 1 : 0])); break;
      case GgufValueType.ARRAY: {
        const a = value as { type: GgufValueType; items: (string | number)[] };
        w.u32(a.type);
        w.u64(a.items.length);
        for (const it of a.items) {
          if (a.type === GgufValueType.STRING) w.str(it as string);
          else if (a.type === GgufValueType.FLOAT32) w.f32(it as number);
          else w.i32(it as number);
        }
        break;
      }
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    offset += Math.ceil(t.data.length / align) * align;
  }
  tensors.forEach((t, i) => {
    w.str(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(t.type);
    w.u64(t.offset ?? offsets[i]!);
  });
  w.pad(align);
  tensors.forEach((t, i) => {
    w.push(t.data);
    if (i < tensors.length - 1) w.pad(align); // the file ends where the last tensor does
  });
  return w.bytes();
}

/** Metadata of a tiny valid llama GGUF (dim 32, 1 layer, 2 heads, vocab 4). */
export function tinyLlamaKvs(): KV[] {
  return [
    ['general.architecture', GgufValueType.STRING, 'llama'],
    ['llama.embedding_length', GgufValueType.UINT32, 32],
    ['llama.feed_forward_length', GgufValueType.UINT32, 64],
    ['llama.block_count', GgufValueType.UINT32, 1],
    ['llama.attention.head_count', GgufValueType.UINT32, 2],
    ['llama.attention.head_count_kv', GgufValueType.UINT32, 2],
    ['llama.attention.layer_norm_rms_epsilon', GgufValueType.FLOAT32, 1e-5],
    ['llama.context_length', GgufValueType.UINT32, 128],
    ['tokenizer.ggml.model', GgufValueType.STRING, 'llama'],
    ['tokenizer.ggml.tokens', GgufValueType.ARRAY, { type: GgufValueType.STRING, items: ['<unk>', '<s>', '</s>', '▁a'] }],
    ['tokenizer.ggml.scores', GgufValueType.ARRAY, { type: GgufValueType.FLOAT32, items: [0, 0, 0, -1] }],
  ];
}
