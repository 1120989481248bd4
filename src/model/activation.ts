/**
 * Activation fake-quantization at evaluation (a SmoothQuant checkpoint's WxAy): every linear of every
 * block sees its input quantized per token (symmetric absmax, dynamic), and with `quantBmm` the q/k/v
 * outputs too (SmoothQuant's quantize_bmm_input: per token over the whole projection, before RoPE).
 * Not quantized: the embedding, the LM head, the norms, the attention scores and the residual stream.
 */
import type { Backend } from '../backend/backend.js';
import type { LinearFn } from './block.js';
import { adapterLinear } from './adapter.js';
import type { ActivationQuant, ModelCheckpoint } from '../io/checkpoint.js';

function activationQuantLinear(be: Backend, a: ActivationQuant): LinearFn {
  return (name, x, w) => {
    const qx = be.quantizeRows(x, a.bits);
    const y = be.linear(qx, w);
    be.free(qx);
    if (!a.quantBmm || (name !== 'q' && name !== 'k' && name !== 'v')) return y;
    const qy = be.quantizeRows(y, a.bits);
    be.free(y);
    return qy;
  };
}

/**
 * The linear block `layer` of `ckpt` runs with: quantized activations when the checkpoint says so,
 * LoRA adapters added when it has them (adapter.ts), else undefined (plain).
 */
export function checkpointLinear(ckpt: ModelCheckpoint, be: Backend, layer: number): LinearFn | undefined {
  const act = ckpt.activation ? activationQuantLinear(be, ckpt.activation) : undefined;
  if (!ckpt.adapter) return act;
  return adapterLinear(be, ckpt.adapter, layer, act ?? ((_n, x, w) => be.linear(x, w)));
}

/** One line for results: what the model's activations go through. */
export function describeActivation(a: ActivationQuant | undefined): string {
  if (!a) return 'activations unquantized';
  return `activations ${a.bits}-bit per-token absmax (dynamic, symmetric) on the inputs of all seven linears${a.quantBmm ? ' and the q/k/v outputs' : ''}`;
}
