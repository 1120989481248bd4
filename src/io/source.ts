import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { PackedWeight } from '../tensor/packed.js';

export interface TensorInfo {
  readonly name: string;
  /** dtype `read` returns: the stored dtype for f32/f16/bf16; 'f32' for block-quantized GGUF types. */
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** the dtype as stored in the file (e.g. 'Q8_0', 'BF16'), for `lowbit info` */
  readonly storedAs: string;
}

/**
 * Named tensors of one checkpoint, read one at a time from disk so that one decoder block can be
 * loaded without the rest. Names and layouts are canonical Hugging Face LLaMA ones
 * (`model.layers.3.self_attn.q_proj.weight`, weights `[out, in]`, q/k rows in rotate-half order),
 * whatever the file format: GGUF and llama2.c readers translate names and un-permute q/k rows.
 */
export interface TensorSource {
  /** file or directory the tensors come from, for messages */
  readonly path: string;
  list(): readonly TensorInfo[];
  has(name: string): boolean;
  /** Reads one tensor; every error names the file and the tensor. */
  read(name: string): Tensor;
  /**
   * Rows [start, start + count) of tensor `name` along its first dimension (a [count, ...rest]
   * tensor of the dtype `read` returns), reading only those rows' bytes. Optional: use the
   * `readRows` helper of rows.ts, which falls back to `read` for sources without it. Rows outside
   * the tensor are a RangeError naming the file and the tensor; every other error names them too.
   */
  readRows?(name: string, start: number, count: number): Tensor;
  /**
   * The packed integer form of a quantized linear weight (its stored kind: GPTQ or AWQ layout), when
   * the source stores `name` that way; undefined for any other tensor (then `read` gives its float
   * values). Lets a backend multiply by the codes without materialising float weights.
   */
  readQuantized?(name: string): PackedWeight | undefined;
  /** The file that holds tensor `name` (a shard of a sharded checkpoint), for messages; default `path`. */
  fileOf?(name: string): string;
}

/** The file to name in a message about tensor `name` of `source`. */
export function fileOf(source: TensorSource, name: string): string {
  return source.fileOf?.(name) ?? source.path;
}

/** Canonical tensor names of a LLaMA checkpoint. */
export const NAMES = Object.freeze({
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  layer: (i: number, part: LayerPart) => `model.layers.${i}.${part}.weight`,
});

export type LayerPart =
  | 'input_layernorm' | 'post_attention_layernorm'
  | 'self_attn.q_proj' | 'self_attn.k_proj' | 'self_attn.v_proj' | 'self_attn.o_proj'
  | 'mlp.gate_proj' | 'mlp.up_proj' | 'mlp.down_proj';

export const LAYER_PARTS: readonly LayerPart[] = Object.freeze([
  'input_layernorm', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
  'post_attention_layernorm', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj',
]);
