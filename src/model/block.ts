import type { Backend, BTensor } from '../backend/backend.js';
import type { LlamaConfig } from './config.js';
import type { BlockWeights } from './weights.js';

/** Keys and values of one block for positions 0..S-1 (after RoPE). */
export interface KvState { k: BTensor; v: BTensor }

/** Hooks that see each linear layer's input (calibration) — called with the layer's short name. */
export type LinearInputHook = (layer: 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down', x: BTensor) => void;

/**
 * One LLaMA decoder block on rows x[T, D] at positions offset..offset+T-1:
 *   h   = x + o( attn( rope(q(n1)), rope(k(n1)), v(n1) ) ),  n1 = rmsnorm(x)
 *   out = h + down( silu(gate(n2)) · up(n2) ),                n2 = rmsnorm(h)
 * With `past`, attention also covers the cached keys/values; the returned `kv` covers 0..offset+T-1.
 */
export function blockForward(
  be: Backend, cfg: LlamaConfig, w: BlockWeights, x: BTensor,
  rope: { cos: BTensor; sin: BTensor }, offset = 0, past?: KvState, hook?: LinearInputHook,
): { out: BTensor; kv: KvState } {
  const { numHeads: H, numKvHeads: KVH, headDim: hd, rmsNormEps: eps } = cfg;
  const n1 = be.rmsnorm(x, w.inputNorm, eps);
  if (hook) { hook('q', n1); hook('k', n1); hook('v', n1); }
  const q = be.rope(be.linear(n1, w.q), H, hd, rope.cos, rope.sin);
  let k = be.rope(be.linear(n1, w.k), KVH, hd, rope.cos, rope.sin);
  let v = be.linear(n1, w.v);
  if (past) { k = be.concatRows(past.k, k); v = be.concatRows(past.v, v); }
  const a = be.attention(q, k, v, { nHeads: H, nKvHeads: KVH, headDim: hd, offset });
  if (hook) hook('o', a);
  const h = be.add(x, be.linear(a, w.o));
  const n2 = be.rmsnorm(h, w.postNorm, eps);
  if (hook) { hook('gate', n2); hook('up', n2); }
  const m = be.siluMul(be.linear(n2, w.gate), be.linear(n2, w.up));
  if (hook) hook('down', m);
  const out = be.add(h, be.linear(m, w.down));
  return { out, kv: { k, v } };
}
