/**
 * Method-specific stored kinds (QuIP, PB-LLM, BiLLM, NF4, ICQ, ...): each is a set of named parts per linear
 * layer, stored as `<layer>.<part>` in safetensors, and the code that checks those parts against each
 * other and opens them as a KindLayer to multiply by. A kind is a file in tensor/ and a row here; the
 * checkpoint format (io/quantized/formats.ts) and the backends handle every kind the same way.
 */
import type { KindLayer } from './packed.js';
import type { Tensor } from './tensor.js';
import type { DType } from './dtype.js';
import { BILLM_KIND } from './billmPack.js';
import { DBLLM_KIND } from './dbllmPack.js';
import { ICQ_KIND, ICQDQ_KIND, NF4_KIND, NF4DQ_KIND } from './nf4Pack.js';
import { PBLLM_KIND } from './pbllmPack.js';
import { QUIP_KIND } from './quipPack.js';

export interface PartInfo { readonly dtype: DType; readonly shape: readonly number[] }

export interface PackedKind {
  readonly name: string;
  /** the parts a layer stores (suffixes of `<layer>.`); `<layer>.<parts[0]>` marks a packed layer */
  readonly parts: readonly string[];
  /** [rows, cols] of the weight from its parts' dtypes and shapes alone; throws an Error saying what is wrong */
  shape(parts: Readonly<Record<string, PartInfo>>, bits: number): [number, number];
  /** the layer ready to multiply by, its parts' contents checked (an Error saying what is wrong) */
  open(parts: Readonly<Record<string, Tensor>>, bits: number): KindLayer;
}

/** The kind with `open` keeping the stored parts on the layer (KindLayer.parts), for backends that decode them in place. */
function keepingParts(k: PackedKind): PackedKind {
  return { ...k, open: (parts, bits) => Object.assign(k.open(parts, bits), { parts }) };
}

/** Stored kind name → implementation. */
export const PACKED_KINDS: Readonly<Record<string, PackedKind>> = Object.freeze(Object.fromEntries(Object.entries({
  quip: QUIP_KIND, pbllm: PBLLM_KIND, billm: BILLM_KIND, nf4: NF4_KIND, nf4dq: NF4DQ_KIND, icq: ICQ_KIND, icqdq: ICQDQ_KIND, dbllm: DBLLM_KIND,
}).map(([name, k]) => [name, keepingParts(k)])));
