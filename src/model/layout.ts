/**
 * The structure of a LLaMA decoder block that quantization methods reason about, as tables:
 * which tensor each linear layer reads, where a per-input-channel scale can be folded (the norm or
 * linear that produces that input), and GPTQ's true-sequential order. AWQ, SmoothQuant and every
 * later method that folds scales read these instead of naming layers in code.
 */
import type { LayerPart } from '../io/source.js';
import type { LinearName } from './block.js';

/** The four distinct inputs of a block's linears: q/k/v share one, gate/up share one. */
export type InputName = 'attnIn' | 'attnOut' | 'mlpIn' | 'mlpAct';

/** The tensor each linear reads: rmsnorm(x) for q/k/v, the attention output for o, rmsnorm(h) for gate/up, silu(gate)·up for down. */
export const LINEAR_INPUT: Readonly<Record<LinearName, InputName>> = Object.freeze({
  q: 'attnIn', k: 'attnIn', v: 'attnIn', o: 'attnOut', gate: 'mlpIn', up: 'mlpIn', down: 'mlpAct',
});

/** How many linears read `linear`'s input (3 for q/k/v, 2 for gate/up, else 1): they share its statistics. */
export function inputReaders(linear: LinearName): number {
  return Object.values(LINEAR_INPUT).filter((i) => i === LINEAR_INPUT[linear]).length;
}

/** Checkpoint name of each linear (`model.layers.N.<part>.weight`). */
export const LINEAR_PART: Readonly<Record<LinearName, LayerPart>> = Object.freeze({
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
});

export type NormName = 'inputNorm' | 'postNorm';

/**
 * Where a scale s on an input's channels can be folded so that the block computes the same
 * function: the producer's output is divided by s (a norm's weight; a linear's rows) and the
 * consumers' input columns multiplied by s.
 *   input_layernorm → q, k, v;  v → o;  post_attention_layernorm → gate, up;  up → down.
 * v → o holds only when v's outputs map one to one onto o's inputs (no GQA: equal shapes), since
 * attention mixes positions but not channels; with GQA one v channel feeds several o columns.
 */
export interface ScaleFold {
  readonly input: InputName;
  readonly producer: { readonly norm: NormName } | { readonly linear: LinearName };
  readonly consumers: readonly LinearName[];
}
export const SCALE_FOLDS: readonly ScaleFold[] = Object.freeze([
  { input: 'attnIn', producer: { norm: 'inputNorm' }, consumers: ['q', 'k', 'v'] },
  { input: 'attnOut', producer: { linear: 'v' }, consumers: ['o'] },
  { input: 'mlpIn', producer: { norm: 'postNorm' }, consumers: ['gate', 'up'] },
  { input: 'mlpAct', producer: { linear: 'up' }, consumers: ['down'] },
]);

/** GPTQ's true-sequential order: each group is quantized from inputs recomputed with the groups before it quantized. */
export const TRUE_SEQUENTIAL: readonly (readonly LinearName[])[] = Object.freeze([['q', 'k', 'v'], ['o'], ['gate', 'up'], ['down']]);
