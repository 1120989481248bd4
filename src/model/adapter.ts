/**
 * LoRA adapters at evaluation: every adapted linear of a block runs W·x + (s·B')·(A'·x), where A', B'
 * fold the adapter's form into two plain matrices (no dropout at evaluation):
 *   lora: A' = A, B' = B;
 *   iec:  A' = A + βA·P (P [r, in]: the means of r contiguous chunks), B' = B + βB·R (R [out, r]:
 *         h_i repeated over a contiguous out/r outputs) — IR-QLoRA's elastic connections;
 *   qa:   A'[:, j] = A[:, ⌊j/g⌋] / g — QA-LoRA's average pooling over groups of g input columns.
 * Each equals its training forward (train/blockGrad.ts) to float32 rounding.
 */
import type { Backend, BTensor } from '../backend/backend.js';
import type { LoraLinearWeights, LoraWeights } from '../io/checkpoint.js';
import type { LinearFn, LinearName } from './block.js';

/** A' [r, in] and B' [out, r] of one linear (host float32). */
export function foldAdapter(w: LoraWeights, a: LoraLinearWeights, inF: number): { A: Float32Array; B: Float32Array } {
  const r = w.rank;
  if (w.form === 'qa') {
    const g = w.groupSize!, A = new Float32Array(r * inF), inv = Math.fround(1 / g);
    for (let i = 0; i < r; i++) for (let j = 0; j < inF; j++) A[i * inF + j] = Math.fround(a.A[i * a.inA + Math.floor(j / g)]! * inv);
    return { A, B: a.B };
  }
  if (w.form === 'iec') {
    const A = a.A.slice(), B = a.B.slice(), c = inF / r, p = Math.fround(1 / c), per = a.outF / r;
    const bA = a.betaA ?? 0, bB = a.betaB ?? 0;
    for (let i = 0; i < r; i++) for (let j = i * c; j < (i + 1) * c; j++) A[i * inF + j] = Math.fround(A[i * inF + j]! + bA * p);
    for (let o = 0; o < a.outF; o++) { const k = o * r + Math.floor(o / per); B[k] = Math.fround(B[k]! + bB); }
    return { A, B };
  }
  return { A: a.A, B: a.B };
}

/** Folded adapters on a backend, uploaded once per (adapter, backend, block, linear) and kept while the adapter lives. */
const uploaded = new WeakMap<LoraWeights, WeakMap<Backend, Map<string, { A: BTensor; B: BTensor }>>>();

function folded(be: Backend, w: LoraWeights, layer: number, name: LinearName, a: LoraLinearWeights): { A: BTensor; B: BTensor } {
  let perBe = uploaded.get(w);
  if (!perBe) uploaded.set(w, (perBe = new WeakMap()));
  let m = perBe.get(be);
  if (!m) perBe.set(be, (m = new Map()));
  const key = `${layer}.${name}`;
  let t = m.get(key);
  if (!t) {
    const inF = w.form === 'qa' ? a.inA * w.groupSize! : a.inA;
    const f = foldAdapter(w, a, inF);
    // uploaded outside any scope of the caller's, so a block's scope does not free them
    t = { A: be.upload(f.A, [w.rank, inF]), B: be.upload(f.B.map((v) => v * w.scaling), [a.outF, w.rank]) };
    m.set(key, t);
  }
  return t;
}

/**
 * The linear of block `layer` with its adapters added after `inner` (the plain or activation-quantized
 * linear). The folded matrices are uploaded now, once per backend (see `folded`).
 */
export function adapterLinear(be: Backend, w: LoraWeights, layer: number, inner: LinearFn): LinearFn {
  const row = w.layers[layer] ?? {};
  const ts = new Map<string, { A: BTensor; B: BTensor }>();
  for (const [name, a] of Object.entries(row)) if (a) ts.set(name, folded(be, w, layer, name as LinearName, a));
  return (name, x, weight) => {
    const y = inner(name, x, weight);
    const t = ts.get(name);
    return t ? be.add(y, be.linear(be.linear(x, t.A), t.B)) : y;
  };
}
