/**
 * The reference LLaMA forward pass: float64 throughout, one plain loop per formula, written from
 * the HF LlamaForCausalLM definition (RMSNorm, rotate-half RoPE with llama3 scaling, causal GQA
 * attention, SwiGLU MLP, LM head). Slow and obvious on purpose: the engine is checked against it.
 */
import type { ModelCheckpoint } from '../../src/io/checkpoint.js';
import { NAMES, type LayerPart } from '../../src/io/source.js';

type M = Float64Array;

function weight(ck: ModelCheckpoint, name: string): M {
  return Float64Array.from(ck.weights.read(name).toF32());
}

/** y[T, N] = x[T, K] · W[N, K]ᵀ */
function linear(x: M, T: number, K: number, W: M, N: number): M {
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += x[t * K + k]! * W[n * K + k]!;
    y[t * N + n] = s;
  }
  return y;
}

function rmsnorm(x: M, T: number, D: number, g: M, eps: number): M {
  const y = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[t * D + i]! ** 2;
    const r = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) y[t * D + i] = x[t * D + i]! * r * g[i]!;
  }
  return y;
}

function invFreq(ck: ModelCheckpoint): number[] {
  const { headDim: hd, ropeTheta: base, ropeScaling: s } = ck.config;
  const out: number[] = [];
  for (let i = 0; i < hd / 2; i++) {
    let f = 1 / base ** ((2 * i) / hd);
    if (s) {
      const wl = (2 * Math.PI) / f, low = s.originalMaxPositionEmbeddings / s.lowFreqFactor, high = s.originalMaxPositionEmbeddings / s.highFreqFactor;
      if (wl > low) f = f / s.factor;
      else if (wl >= high) {
        const sm = (s.originalMaxPositionEmbeddings / wl - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        f = (1 - sm) * (f / s.factor) + sm * f;
      }
    }
    out.push(f);
  }
  return out;
}

function rope(x: M, T: number, H: number, hd: number, freqs: number[]): void {
  const half = hd / 2;
  for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) for (let i = 0; i < half; i++) {
    const o = t * H * hd + h * hd, a = x[o + i]!, b = x[o + i + half]!, ang = t * freqs[i]!;
    x[o + i] = a * Math.cos(ang) - b * Math.sin(ang);
    x[o + i + half] = b * Math.cos(ang) + a * Math.sin(ang);
  }
}

/** logits [T, vocab] of `ids` from position 0, float64. */
export function referenceLogits(ck: ModelCheckpoint, ids: number[]): Float64Array {
  const c = ck.config, T = ids.length, D = c.hiddenSize, H = c.numHeads, KVH = c.numKvHeads, hd = c.headDim, F = c.intermediateSize;
  const emb = weight(ck, NAMES.embed);
  let x = new Float64Array(T * D);
  ids.forEach((id, t) => x.set(emb.subarray(id * D, id * D + D), t * D));
  const freqs = invFreq(ck);
  for (let l = 0; l < c.numLayers; l++) {
    const w = (p: LayerPart) => weight(ck, NAMES.layer(l, p));
    const n1 = rmsnorm(x, T, D, w('input_layernorm'), c.rmsNormEps);
    const q = linear(n1, T, D, w('self_attn.q_proj'), H * hd);
    const k = linear(n1, T, D, w('self_attn.k_proj'), KVH * hd);
    const v = linear(n1, T, D, w('self_attn.v_proj'), KVH * hd);
    rope(q, T, H, hd, freqs); rope(k, T, KVH, hd, freqs);
    const att = new Float64Array(T * H * hd);
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / (H / KVH));
      for (let t = 0; t < T; t++) {
        const sc: number[] = [];
        for (let s = 0; s <= t; s++) {
          let d = 0;
          for (let i = 0; i < hd; i++) d += q[t * H * hd + h * hd + i]! * k[s * KVH * hd + kh * hd + i]!;
          sc.push(d / Math.sqrt(hd));
        }
        const mx = Math.max(...sc), e = sc.map((z) => Math.exp(z - mx)), z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let i = 0; i < hd; i++) att[t * H * hd + h * hd + i]! += (e[s]! / z) * v[s * KVH * hd + kh * hd + i]!;
      }
    }
    const o = linear(att, T, H * hd, w('self_attn.o_proj'), D);
    const h1 = x.map((xv, i) => xv + o[i]!);
    const n2 = rmsnorm(h1, T, D, w('post_attention_layernorm'), c.rmsNormEps);
    const g = linear(n2, T, D, w('mlp.gate_proj'), F), u = linear(n2, T, D, w('mlp.up_proj'), F);
    const m = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]!);
    const dn = linear(m, T, F, w('mlp.down_proj'), D);
    x = h1.map((hv, i) => hv + dn[i]!);
  }
  const nf = rmsnorm(x, T, D, weight(ck, NAMES.finalNorm), c.rmsNormEps);
  const head = ck.weights.has(NAMES.lmHead) ? weight(ck, NAMES.lmHead) : emb;
  return linear(nf, T, D, head, c.vocabSize);
}
