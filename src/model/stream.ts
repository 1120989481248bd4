import type { Backend, BTensor } from '../backend/backend.js';
import type { ModelCheckpoint } from './checkpoint.js';
import { blockForward } from './block.js';
import { ropeInvFreq, ropeTables } from './rope.js';
import { freeBlock, loadBlock, loadEmbedding, loadHead, type BlockWeights } from './weights.js';
import { NAMES } from '../io/source.js';

export interface StreamProgress { phase: 'embed' | 'block' | 'head'; block: number; numBlocks: number }

/** RoPE tables for positions 0..count-1 uploaded to the backend. */
export function ropeFor(ckpt: ModelCheckpoint, be: Backend, start: number, count: number): { cos: BTensor; sin: BTensor } {
  const hd = ckpt.config.headDim;
  const { cos, sin } = ropeTables(ropeInvFreq(ckpt.config), start, count);
  return { cos: be.upload(cos, [count, hd / 2]), sin: be.upload(sin, [count, hd / 2]) };
}

/**
 * Block streaming, as GPTQ's own evaluation and calibration do: every sequence goes through
 * decoder block k before any goes through block k+1, so that only one block's weights are
 * resident. `perBlock` maps the hidden states of all sequences through block i (it may also
 * change the block's weights first: that is how quantization plugs in).
 */
export async function streamBlocks(
  ckpt: ModelCheckpoint, be: Backend, hidden: BTensor[],
  perBlock: (i: number, w: BlockWeights, xs: BTensor[]) => Promise<BTensor[]>,
  onProgress?: (p: StreamProgress) => void,
): Promise<BTensor[]> {
  const L = ckpt.config.numLayers;
  for (let i = 0; i < L; i++) {
    onProgress?.({ phase: 'block', block: i, numBlocks: L });
    const w = loadBlock(ckpt, be, i);
    const next = await perBlock(i, w, hidden);
    for (const x of hidden) if (!next.includes(x)) be.free(x);
    hidden = next;
    freeBlock(be, w);
  }
  return hidden;
}

/** Embeds each sequence of token ids: the input of block 0. */
export function embedAll(ckpt: ModelCheckpoint, be: Backend, seqs: Int32Array[]): { hidden: BTensor[]; embed: BTensor } {
  const embed = loadEmbedding(ckpt, be);
  return { hidden: seqs.map((ids) => be.embedding(embed, ids)), embed };
}

/** Plain forward of all blocks over equal-length sequences starting at position 0. */
export function forwardBlock(ckpt: ModelCheckpoint, be: Backend, rope: { cos: BTensor; sin: BTensor }) {
  return async (_i: number, w: BlockWeights, xs: BTensor[]) => xs.map((x) => blockForward(be, ckpt.config, w, x, rope).out);
}

/**
 * Per-position negative log-likelihoods of each sequence (positions 1..T-1 predicted from 0..T-2),
 * block-streamed. LM head rows are processed in chunks so that [T, vocab] logits never exist whole.
 */
export async function streamedNll(
  ckpt: ModelCheckpoint, be: Backend, seqs: Int32Array[],
  opts: { onProgress?: (p: StreamProgress) => void; headChunk?: number } = {},
): Promise<Float64Array[]> {
  if (seqs.length === 0) return [];
  const T = seqs[0]!.length;
  if (seqs.some((s) => s.length !== T)) throw new RangeError('streamedNll: sequences must have equal length');
  const L = ckpt.config.numLayers;
  opts.onProgress?.({ phase: 'embed', block: 0, numBlocks: L });
  const { hidden, embed } = embedAll(ckpt, be, seqs);
  // keep the embedding table only when it doubles as the LM head: peak memory is one block, not the edges
  const tied = !ckpt.weights.has(NAMES.lmHead);
  if (!tied) be.free(embed);
  const rope = ropeFor(ckpt, be, 0, T);
  const out = await streamBlocks(ckpt, be, hidden, forwardBlock(ckpt, be, rope), opts.onProgress);
  opts.onProgress?.({ phase: 'head', block: L, numBlocks: L });
  const { norm, head } = loadHead(ckpt, be, tied ? embed : undefined);
  const chunk = opts.headChunk ?? 256;
  const result: Float64Array[] = [];
  for (let s = 0; s < seqs.length; s++) {
    const ids = seqs[s]!;
    const n = be.rmsnorm(out[s]!, norm, ckpt.config.rmsNormEps);
    const nll = new Float64Array(T - 1);
    for (let r = 0; r < T - 1; r += chunk) {
      const c = Math.min(chunk, T - 1 - r);
      const logits = be.linear(be.rows(n, r, c), head);
      nll.set(await be.nll(logits, ids.subarray(r + 1, r + 1 + c)), r);
      be.free(logits);
    }
    be.free(n); be.free(out[s]!);
    result.push(nll);
  }
  return result;
}
