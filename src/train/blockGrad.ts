/**
 * A LLaMA decoder block with trainable low-rank adapters: the forward pass that keeps what the
 * backward pass needs (a tape), and the backward pass that turns the output gradient into the input
 * gradient and the adapters' gradients. The forward runs the ops of model/block.ts in the same order,
 * so with zero adapters it equals `blockForward` bit for bit. Frozen: the block's weights and norms.
 *
 *   n1 = rmsnorm(x)            q = rope(Lq(n1))   k = rope(Lk(n1))   v = Lv(n1)
 *   a  = attention(q, k, v)    h = x + Lo(a)
 *   n2 = rmsnorm(h)            g = Lgate(n2)      u = Lup(n2)
 *   out = h + Ldown(silu(g)·u)
 *
 * Each L is linear(x, W) + s·B·A·(x ⊙ mask) when it has an adapter (PEFT's LoRA: dropout on the
 * adapter's input only, scaling s after B), plain linear(x, W) otherwise. Two variants:
 *   QA-LoRA (`pool`): A sees the group means of x, pool(x) = x·poolᵀ, dropout after pooling;
 *   IR-QLoRA's elastic connections (`iec`): h = A·drop(x) + βA·chunkmeans_r(x),
 *     L = W·x + s·(B·h + βB·repeat(h)), with βA, βB trainable scalars (htqin/IR-QLoRA utils.py).
 */
import type { BTensor, TrainableBackend } from '../backend/backend.js';
import type { LlamaConfig } from '../io/config.js';
import type { LinearName } from '../model/block.js';
import type { BlockWeights } from '../model/weights.js';

/** One linear's adapter as the block sees it: effective A[r, in] and B[out, r] on the backend. */
export interface AdapterTensors {
  readonly A: BTensor;
  readonly B: BTensor;
  readonly scaling: number;
  /** the dropout mask [T, in of A] (0 or 1/(1−p)), absent without dropout */
  readonly mask?: BTensor | undefined;
  /** QA-LoRA: the pooling matrix [in/group, in] (1/group on each group's columns); A is then [r, in/group] */
  readonly pool?: BTensor | undefined;
  /** IR-QLoRA: P [r, in] (chunk means of x), R [out, r] (each h_i over a contiguous out/r outputs) and the two scalars */
  readonly iec?: { readonly P: BTensor; readonly R: BTensor; readonly betaA: number; readonly betaB: number } | undefined;
}

export type BlockAdapters = Partial<Record<LinearName, AdapterTensors>>;

/** Σ x ⊙ y over all elements: the gradient of a scalar parameter, left as its two factors. */
export interface DotPair { readonly x: BTensor; readonly y: BTensor }

/** The adapters' gradients of one block: dA, dB and, with elastic connections, dβA and dβB as dot pairs. */
export type BlockAdapterGrads = Partial<Record<LinearName, { dA: BTensor; dB: BTensor; dBetaA?: DotPair; dBetaB?: DotPair }>>;

interface LinearTape { x: BTensor; xd?: BTensor; u?: BTensor; px?: BTensor; ru?: BTensor }

/** What the backward pass of one block needs from its forward pass. */
export interface BlockTape {
  readonly x: BTensor; readonly h: BTensor;
  readonly q: BTensor; readonly k: BTensor; readonly v: BTensor;
  readonly gate: BTensor; readonly up: BTensor;
  readonly lin: Record<LinearName, LinearTape>;
}

export interface RopeTables { cos: BTensor; sin: BTensor; negSin: BTensor }

function adaptedLinear(be: TrainableBackend, x: BTensor, w: BTensor, ad: AdapterTensors | undefined, tape: LinearTape): BTensor {
  const y = be.linear(x, w);
  if (!ad) return y;
  const xin = ad.pool ? be.linear(x, ad.pool) : x;
  const xd = ad.mask ? be.mul(xin, ad.mask) : xin;
  let u = be.linear(xd, ad.A);
  tape.xd = xd;
  if (ad.iec) { tape.px = be.linear(x, ad.iec.P); u = be.add(u, be.scale(tape.px, ad.iec.betaA)); }
  tape.u = u;
  let l = be.linear(u, ad.B);
  if (ad.iec) { tape.ru = be.linear(u, ad.iec.R); l = be.add(l, be.scale(tape.ru, ad.iec.betaB)); }
  return be.add(y, be.scale(l, ad.scaling));
}

function adaptedLinearBackward(be: TrainableBackend, dy: BTensor, w: BTensor, ad: AdapterTensors | undefined, tape: LinearTape, grads: BlockAdapterGrads, name: LinearName): BTensor {
  const dx = be.linearT(dy, w);
  if (!ad) return dx;
  const dl = be.scale(dy, ad.scaling);
  const dB = be.matmulTN(dl, tape.u!);
  let du = be.linearT(dl, ad.B);
  if (ad.iec) du = be.add(du, be.scale(be.linearT(dl, ad.iec.R), ad.iec.betaB));
  const dA = be.matmulTN(du, tape.xd!);
  const dxd = be.linearT(du, ad.A);
  const dxin = ad.mask ? be.mul(dxd, ad.mask) : dxd;
  let dxa = ad.pool ? be.linearT(dxin, ad.pool) : dxin;
  if (ad.iec) dxa = be.add(dxa, be.scale(be.linearT(du, ad.iec.P), ad.iec.betaA));
  grads[name] = ad.iec ? { dA, dB, dBetaA: { x: du, y: tape.px! }, dBetaB: { x: dl, y: tape.ru! } } : { dA, dB };
  return be.add(dx, dxa);
}

/** The block's forward pass on one sequence x[T, D] at positions 0..T-1, with its tape. */
export function blockForwardTape(be: TrainableBackend, cfg: LlamaConfig, w: BlockWeights, x: BTensor, rope: RopeTables, ads: BlockAdapters): { out: BTensor; tape: BlockTape } {
  const { numHeads: H, numKvHeads: KVH, headDim: hd, rmsNormEps: eps } = cfg;
  const lin = {} as Record<LinearName, LinearTape>;
  const L = (name: LinearName, input: BTensor, weight: BTensor) => adaptedLinear(be, input, weight, ads[name], (lin[name] = { x: input }));
  const n1 = be.rmsnorm(x, w.inputNorm, eps);
  const q = be.rope(L('q', n1, w.q), H, hd, rope.cos, rope.sin);
  const k = be.rope(L('k', n1, w.k), KVH, hd, rope.cos, rope.sin);
  const v = L('v', n1, w.v);
  const a = be.attention(q, k, v, { nHeads: H, nKvHeads: KVH, headDim: hd, offset: 0 });
  const h = be.add(x, L('o', a, w.o));
  const n2 = be.rmsnorm(h, w.postNorm, eps);
  const gate = L('gate', n2, w.gate), up = L('up', n2, w.up);
  const out = be.add(h, L('down', be.siluMul(gate, up), w.down));
  return { out, tape: { x, h, q, k, v, gate, up, lin } };
}

/**
 * The block's backward pass: dOut → dx and the adapters' gradients; with `weightGrads`, also each
 * linear's weight gradient dW = dyᵀ·x (quantization-aware training of the weights themselves: DB-LLM).
 */
export function blockBackward(be: TrainableBackend, cfg: LlamaConfig, w: BlockWeights, tape: BlockTape, rope: RopeTables, ads: BlockAdapters, dOut: BTensor,
  opts: { weightGrads?: boolean } = {}): { dx: BTensor; grads: BlockAdapterGrads; weightGrads: Partial<Record<LinearName, BTensor>> } {
  const { numHeads: H, numKvHeads: KVH, headDim: hd, rmsNormEps: eps } = cfg;
  const grads: BlockAdapterGrads = {};
  const weightGrads: Partial<Record<LinearName, BTensor>> = {};
  const B = (name: LinearName, dy: BTensor, weight: BTensor) => {
    if (opts.weightGrads) weightGrads[name] = be.matmulTN(dy, tape.lin[name].x);
    return adaptedLinearBackward(be, dy, weight, ads[name], tape.lin[name], grads, name);
  };
  // MLP half: out = h + down(silu(gate)·up)
  const dm = B('down', dOut, w.down);
  const { dGate, dUp } = be.siluMulBackward(tape.gate, tape.up, dm);
  const dn2 = be.add(B('gate', dGate, w.gate), B('up', dUp, w.up));
  const dh = be.add(dOut, be.rmsnormBackward(tape.h, w.postNorm, dn2, eps));
  // attention half: h = x + o(attention(rope(q), rope(k), v)); RoPE's transpose is the rotation by −θ
  const da = B('o', dh, w.o);
  const { dq, dk, dv } = be.attentionBackward(tape.q, tape.k, tape.v, da, { nHeads: H, nKvHeads: KVH, headDim: hd, offset: 0 });
  const dq0 = be.rope(dq, H, hd, rope.cos, rope.negSin);
  const dk0 = be.rope(dk, KVH, hd, rope.cos, rope.negSin);
  const dn1 = be.add(be.add(B('q', dq0, w.q), B('k', dk0, w.k)), B('v', dv, w.v));
  const dx = be.add(dh, be.rmsnormBackward(tape.x, w.inputNorm, dn1, eps));
  return { dx, grads, weightGrads };
}
