/**
 * The CPU backend's backward kernels for training (Backend's GradOps): plain TypeScript over typed
 * arrays, row-major, float32 in and out with float64 row reductions. Matrix products go through the
 * provider's gemm (transposing into its x·wᵀ form); everything else is here.
 * Reference: each is the derivative of the forward kernel of js.ts with the same argument order.
 */

/** out[c, r] = a[r, c] for a[R, C] */
export function transpose(a: Float32Array, R: number, C: number, out = new Float32Array(R * C)): Float32Array {
  const B = 32;
  for (let r0 = 0; r0 < R; r0 += B) {
    const r1 = Math.min(R, r0 + B);
    for (let c0 = 0; c0 < C; c0 += B) {
      const c1 = Math.min(C, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * R + r] = a[r * C + c]!;
    }
  }
  return out;
}

/**
 * dx[M, D] of y = x / sqrt(mean(x²) + eps) · gamma for output gradient dy:
 * with r = 1/sqrt(mean(x²) + eps), dx = r · (gamma ⊙ dy) − r³/D · x · Σ_j x_j gamma_j dy_j.
 */
export function rmsnormBackward(x: Float32Array, gamma: Float32Array, dy: Float32Array, dx: Float32Array, M: number, D: number, eps: number): void {
  for (let m = 0; m < M; m++) {
    const o = m * D;
    let ss = 0, dot = 0;
    for (let j = 0; j < D; j++) { const v = x[o + j]!; ss += v * v; dot += v * gamma[j]! * dy[o + j]!; }
    const r = 1 / Math.sqrt(ss / D + eps);
    const c = (r * r * r * dot) / D;
    for (let j = 0; j < D; j++) dx[o + j] = r * gamma[j]! * dy[o + j]! - c * x[o + j]!;
  }
}

/**
 * Gradients of causal GQA attention (kernels' `attention`: scale 1/sqrt(hd), query t at position
 * offset + t sees keys 0..offset+t). The softmax is recomputed in float64; per query row,
 * dv_s += p_s·dout, ds_s = p_s·(dout·v_s − Σ_l p_l dout·v_l), dq += scale·Σ ds_s k_s, dk_s += scale·ds_s q.
 * dk and dv sum over the query heads that share a KV head.
 */
export function attentionBackward(q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array,
  dq: Float32Array, dk: Float32Array, dv: Float32Array,
  T: number, S: number, offset: number, nHeads: number, nKvHeads: number, hd: number): void {
  const group = nHeads / nKvHeads, qw = nHeads * hd, kw = nKvHeads * hd;
  const scale = 1 / Math.sqrt(hd);
  const p = new Float64Array(S), dp = new Float64Array(S);
  const gq = new Float64Array(hd);
  const gk = new Float64Array(S * kw), gv = new Float64Array(S * kw);
  for (let h = 0; h < nHeads; h++) {
    const kh = Math.floor(h / group);
    for (let t = 0; t < T; t++) {
      const qo = t * qw + h * hd, last = offset + t;
      let mx = -Infinity;
      for (let s = 0; s <= last; s++) {
        const ko = s * kw + kh * hd;
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[qo + i]! * k[ko + i]!;
        p[s] = d * scale;
        if (p[s]! > mx) mx = p[s]!;
      }
      let sum = 0;
      for (let s = 0; s <= last; s++) { p[s] = Math.exp(p[s]! - mx); sum += p[s]!; }
      let pdp = 0;
      for (let s = 0; s <= last; s++) {
        p[s] = p[s]! / sum;
        const vo = s * kw + kh * hd;
        let d = 0;
        for (let i = 0; i < hd; i++) { d += dout[qo + i]! * v[vo + i]!; gv[vo + i] = gv[vo + i]! + p[s]! * dout[qo + i]!; }
        dp[s] = d;
        pdp += p[s]! * d;
      }
      gq.fill(0);
      for (let s = 0; s <= last; s++) {
        const ds = p[s]! * (dp[s]! - pdp) * scale, ko = s * kw + kh * hd;
        if (ds === 0) continue;
        for (let i = 0; i < hd; i++) { gq[i] = gq[i]! + ds * k[ko + i]!; gk[ko + i] = gk[ko + i]! + ds * q[qo + i]!; }
      }
      for (let i = 0; i < hd; i++) dq[qo + i] = gq[i]!;
    }
  }
  for (let i = 0; i < S * kw; i++) { dk[i] = gk[i]!; dv[i] = gv[i]!; }
}

/** out = silu(g)·u: dGate = dy·u·σ(g)·(1 + g·(1 − σ(g))), dUp = dy·silu(g). */
export function siluMulBackward(gate: Float32Array, up: Float32Array, dy: Float32Array, dGate: Float32Array, dUp: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!, sg = 1 / (1 + Math.exp(-g));
    dUp[i] = dy[i]! * g * sg;
    dGate[i] = dy[i]! * up[i]! * sg * (1 + g * (1 - sg));
  }
}

/** d[t, j] = w[t] · (exp(logits[t, j] − lse[t]) − [j = targets[t]]) over rows of V; zero rows where w[t] = 0. */
export function crossEntropyGrad(logits: Float32Array, lse: Float64Array, targets: Int32Array, w: Float32Array, d: Float32Array, T: number, V: number): void {
  for (let t = 0; t < T; t++) {
    const o = t * V, wt = w[t]!;
    if (wt === 0) { d.fill(0, o, o + V); continue; }
    const l = lse[t]!;
    for (let j = 0; j < V; j++) d[o + j] = wt * Math.exp(logits[o + j]! - l);
    const k = targets[t]!;
    d[o + k] = wt * (Math.exp(logits[o + k]! - l) - 1);
  }
}
