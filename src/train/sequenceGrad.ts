/**
 * One sequence's loss and adapter gradients through the whole model, with activation checkpointing
 * per block: the forward pass keeps only each block's input x_i; the backward pass recomputes block
 * i's forward from x_i (its tape lives only while that block's backward runs). Memory: the L block
 * inputs [T, D], one block's activations, and a chunk of logits [rows, vocab].
 *
 * Loss: Σ_t weight[t] · (−log softmax(logits[t])[target[t]]), the LM head evaluated over chunks of
 * rows so that [T, vocab] logits never exist at once. Embedding, norms, LM head and base weights
 * are frozen; the adapters are the only parameters.
 */
import type { BTensor, TrainableBackend } from '../backend/backend.js';
import type { LlamaConfig } from '../io/config.js';
import type { BlockWeights } from '../model/weights.js';
import type { LinearName } from '../model/block.js';
import { blockBackward, blockForwardTape, type BlockAdapterGrads, type BlockAdapters, type RopeTables } from './blockGrad.js';

/** The frozen model on the backend. */
export interface FrozenModel {
  readonly cfg: LlamaConfig;
  readonly embed: BTensor;
  readonly blocks: readonly BlockWeights[];
  readonly norm: BTensor;
  readonly head: BTensor;
}

export interface SequenceBatch {
  readonly ids: Int32Array;
  /** the token each position predicts (any value where weight is 0) */
  readonly targets: Int32Array;
  /** each position's weight in the loss (0 = not counted) */
  readonly weights: Float32Array;
}

export interface SequenceGradOptions {
  /** the adapters of block i (effective A/B on the backend, masks for this sequence) */
  readonly adapters: (layer: number) => BlockAdapters;
  /** receives block i's adapter gradients (called from the last block to the first) */
  readonly onGrads: (layer: number, grads: BlockAdapterGrads) => Promise<void>;
  readonly rope: RopeTables;
  /** rows of logits per LM-head chunk (default 256) */
  readonly headRows?: number;
  /** also each block's weight gradients, handed to onWeightGrads (quantization-aware training: DB-LLM) */
  readonly onWeightGrads?: (layer: number, grads: Partial<Record<LinearName, BTensor>>) => Promise<void>;
  /**
   * A loss of the logits other than the weighted NLL of `targets` (distillation): for rows
   * r0..r0+n−1 of the sequence and their logits [n, V], the loss and its gradient dloss/dlogits.
   */
  readonly headLoss?: HeadLoss;
}

export type HeadLoss = (logits: BTensor, r0: number, n: number) => Promise<{ loss: number; dLogits: BTensor }>;

/** The loss Σ weight·NLL of the sequence (float64) after handing every block's gradients to onGrads. */
export async function sequenceGrad(be: TrainableBackend, m: FrozenModel, s: SequenceBatch, o: SequenceGradOptions): Promise<number> {
  const T = s.ids.length;
  if (s.targets.length !== T || s.weights.length !== T) throw new RangeError(`sequenceGrad: ${T} ids but ${s.targets.length} targets and ${s.weights.length} weights`);
  const L = m.blocks.length;
  const inputs: BTensor[] = [];
  let x = be.embedding(m.embed, s.ids);
  for (let i = 0; i < L; i++) {
    inputs.push(x);
    const xi = x;
    // the adapters are made outside the scope: the backward pass uses them again (a caller may memoize them)
    const ads = o.adapters(i);
    x = be.scope(() => blockForwardTape(be, m.cfg, m.blocks[i]!, xi, o.rope, ads).out);
  }
  const { loss, dx } = await headLossGrad(be, m, x, s, o.headRows ?? 256, o.headLoss);
  be.free(x); // the last block's output (the embedding when there are no blocks): the head's input only
  let dOut = dx;
  for (let i = L - 1; i >= 0; i--) {
    const ads = o.adapters(i);
    const r = be.scope(() => {
      const { tape } = blockForwardTape(be, m.cfg, m.blocks[i]!, inputs[i]!, o.rope, ads);
      return blockBackward(be, m.cfg, m.blocks[i]!, tape, o.rope, ads, dOut, { weightGrads: !!o.onWeightGrads });
    });
    await o.onGrads(i, r.grads);
    if (o.onWeightGrads) {
      await o.onWeightGrads(i, r.weightGrads);
      for (const g of Object.values(r.weightGrads)) be.free(g);
    }
    const done = new Set<BTensor>();
    for (const g of Object.values(r.grads)) done.add(g.dA).add(g.dB);
    for (const g of Object.values(r.grads)) for (const p of [g.dBetaA, g.dBetaB]) if (p) done.add(p.x).add(p.y);
    for (const t of done) be.free(t);
    be.free(dOut);
    if (i > 0) be.free(inputs[i]!);
    dOut = r.dx;
  }
  be.free(dOut); be.free(inputs[0]!);
  return loss;
}

/**
 * Final norm, LM head and weighted NLL of hidden rows x[T, D], and the gradient with respect to x:
 * per chunk of rows, logits → (lse, picked) → dlogits = w·(softmax − onehot) → dhidden = dlogits·head.
 */
export async function headLossGrad(be: TrainableBackend, m: FrozenModel, x: BTensor, s: SequenceBatch, rows: number, custom?: HeadLoss): Promise<{ loss: number; dx: BTensor }> {
  const T = x.shape[0]!, eps = m.cfg.rmsNormEps;
  const hn = be.rmsnorm(x, m.norm, eps);
  let loss = 0;
  const parts: BTensor[] = [];
  for (let r0 = 0; r0 < T; r0 += rows) {
    const n = Math.min(rows, T - r0);
    const tg = s.targets.subarray(r0, r0 + n), w = s.weights.subarray(r0, r0 + n);
    const chunk = n === T ? hn : be.rows(hn, r0, n);
    if (custom) {
      const logits = be.linear(chunk, m.head);
      if (chunk !== hn) be.free(chunk);
      const r = await custom(logits, r0, n);
      be.free(logits);
      loss += r.loss;
      parts.push(be.linearT(r.dLogits, m.head));
      be.free(r.dLogits);
      continue;
    }
    if (w.every((v) => v === 0)) { parts.push(be.scale(chunk, 0)); if (chunk !== hn) be.free(chunk); continue; }
    const logits = be.linear(chunk, m.head);
    if (chunk !== hn) be.free(chunk);
    const safe = tg.map((t, i) => (w[i] === 0 ? 0 : t)); // a masked row's target may be anything
    const { lse, picked } = await be.logSoftmaxParts(logits, safe, 0);
    for (let i = 0; i < n; i++) if (w[i] !== 0) loss += w[i]! * (lse[i]! - picked[i]!);
    const dl = be.crossEntropyGrad(logits, lse, safe, w);
    be.free(logits);
    parts.push(be.linearT(dl, m.head));
    be.free(dl);
  }
  let dhn = parts[0]!;
  for (let i = 1; i < parts.length; i++) {
    const joined = be.concatRows(dhn, parts[i]!);
    be.free(dhn); be.free(parts[i]!);
    dhn = joined;
  }
  const dx = be.rmsnormBackward(x, m.norm, dhn, eps);
  be.free(hn); be.free(dhn);
  return { loss, dx };
}
