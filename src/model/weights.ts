import type { Backend, BTensor } from '../backend/backend.js';
import { NAMES, type LayerPart } from '../io/source.js';
import { FormatError } from '../errors.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';

/** One decoder block's weights on a backend. */
export interface BlockWeights {
  readonly inputNorm: BTensor;
  readonly q: BTensor; readonly k: BTensor; readonly v: BTensor; readonly o: BTensor;
  readonly postNorm: BTensor;
  readonly gate: BTensor; readonly up: BTensor; readonly down: BTensor;
}

/** Reads block i from disk (only that block) and uploads it in its stored dtype. */
export function loadBlock(ckpt: ModelCheckpoint, backend: Backend, i: number): BlockWeights {
  const cfg = ckpt.config;
  const D = cfg.hiddenSize, qd = cfg.numHeads * cfg.headDim, kvd = cfg.numKvHeads * cfg.headDim, F = cfg.intermediateSize;
  const get = (part: LayerPart, shape: number[]) => {
    const name = NAMES.layer(i, part);
    // a GPTQ-packed weight stays packed: the backend multiplies by its codes (fused dequantize-and-multiply)
    const q = ckpt.weights.readQuantized?.(name);
    if (q) {
      if (q.rows !== shape[0] || q.cols !== shape[1] || shape.length !== 2) {
        throw new FormatError(ckpt.weights.path, `tensor ${name} has shape [${q.rows}, ${q.cols}], the config implies [${shape.join(', ')}]`);
      }
      return backend.uploadQuantized(q);
    }
    const t = ckpt.weights.read(name);
    if (t.shape.length !== shape.length || t.shape.some((d, j) => d !== shape[j])) {
      throw new FormatError(ckpt.weights.path, `tensor ${name} has shape [${t.shape.join(', ')}], the config implies [${shape.join(', ')}]`);
    }
    return backend.uploadWeight(t);
  };
  return {
    inputNorm: get('input_layernorm', [D]),
    q: get('self_attn.q_proj', [qd, D]), k: get('self_attn.k_proj', [kvd, D]),
    v: get('self_attn.v_proj', [kvd, D]), o: get('self_attn.o_proj', [D, qd]),
    postNorm: get('post_attention_layernorm', [D]),
    gate: get('mlp.gate_proj', [F, D]), up: get('mlp.up_proj', [F, D]), down: get('mlp.down_proj', [D, F]),
  };
}

export function freeBlock(backend: Backend, w: BlockWeights): void {
  for (const t of Object.values(w)) backend.free(t);
}

export function loadEmbedding(ckpt: ModelCheckpoint, backend: Backend): BTensor {
  return backend.uploadWeight(ckpt.weights.read(NAMES.embed));
}

/**
 * Name of the tensor that serves as the LM head: lm_head.weight, or the embedding table when the
 * checkpoint has none (tied embeddings).
 */
export function headTensorName(ckpt: ModelCheckpoint): string {
  if (ckpt.weights.has(NAMES.lmHead)) return NAMES.lmHead;
  if (ckpt.weights.has(NAMES.embed)) return NAMES.embed;
  throw new FormatError(ckpt.weights.path, `no ${NAMES.lmHead} and no ${NAMES.embed} to tie it to`);
}

/** Final norm and LM head: lm_head.weight, else the embedding table (`embed` when given, else read). */
export function loadHead(ckpt: ModelCheckpoint, backend: Backend, embed?: BTensor): { norm: BTensor; head: BTensor } {
  const norm = backend.uploadWeight(ckpt.weights.read(NAMES.finalNorm));
  const head = ckpt.weights.has(NAMES.lmHead)
    ? backend.uploadWeight(ckpt.weights.read(NAMES.lmHead))
    : embed ?? loadEmbedding(ckpt, backend);
  return { norm, head };
}
