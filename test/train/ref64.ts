/**
 * Float64 references of the decoder's forward ops and of a whole block with LoRA adapters, written
 * naively from their definitions (not from the backend's kernels), and central finite differences
 * over them: the ground truth the training engine's float32 backward is checked against.
 */
import assert from 'node:assert/strict';

export type F64 = Float64Array;

export function linear64(x: F64, w: F64, M: number, N: number, K: number): F64 {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
    y[m * N + n] = s;
  }
  return y;
}

export function rmsnorm64(x: F64, g: F64, M: number, D: number, eps: number): F64 {
  const y = new Float64Array(M * D);
  for (let m = 0; m < M; m++) {
    let ss = 0;
    for (let j = 0; j < D; j++) ss += x[m * D + j]! ** 2;
    const r = 1 / Math.sqrt(ss / D + eps);
    for (let j = 0; j < D; j++) y[m * D + j] = x[m * D + j]! * r * g[j]!;
  }
  return y;
}

/** rotate-half RoPE: pairs (i, i + hd/2) of each head rotated by the angle of row t, pair i */
export function rope64(x: F64, T: number, H: number, hd: number, cos: ArrayLike<number>, sin: ArrayLike<number>): F64 {
  const y = new Float64Array(x.length), half = hd / 2;
  for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) for (let i = 0; i < half; i++) {
    const o = t * H * hd + h * hd, c = cos[t * half + i]!, s = sin[t * half + i]!;
    const a = x[o + i]!, b = x[o + i + half]!;
    y[o + i] = a * c - b * s;
    y[o + i + half] = b * c + a * s;
  }
  return y;
}

export function attention64(q: F64, k: F64, v: F64, T: number, H: number, KVH: number, hd: number): F64 {
  const out = new Float64Array(T * H * hd), g = H / KVH, sc = 1 / Math.sqrt(hd);
  for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) {
    const kh = Math.floor(h / g), p: number[] = [];
    for (let s = 0; s <= t; s++) {
      let d = 0;
      for (let i = 0; i < hd; i++) d += q[t * H * hd + h * hd + i]! * k[s * KVH * hd + kh * hd + i]!;
      p.push(d * sc);
    }
    const mx = Math.max(...p), e = p.map((z) => Math.exp(z - mx)), Z = e.reduce((a, b) => a + b, 0);
    for (let s = 0; s <= t; s++) for (let i = 0; i < hd; i++) out[t * H * hd + h * hd + i]! += (e[s]! / Z) * v[s * KVH * hd + kh * hd + i]!;
  }
  return out;
}

export function siluMul64(g: F64, u: F64): F64 {
  return g.map((x, i) => (x / (1 + Math.exp(-x))) * u[i]!);
}

export function add64(a: F64, b: F64): F64 { return a.map((x, i) => x + b[i]!); }

/** Σ_t w[t] · (logsumexp(logits[t]) − logits[t, targets[t]]) */
export function crossEntropy64(logits: F64, targets: Int32Array, w: ArrayLike<number>, T: number, V: number): number {
  let L = 0;
  for (let t = 0; t < T; t++) {
    let mx = -Infinity;
    for (let j = 0; j < V; j++) mx = Math.max(mx, logits[t * V + j]!);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(logits[t * V + j]! - mx);
    L += w[t]! * (mx + Math.log(s) - logits[t * V + targets[t]!]!);
  }
  return L;
}

export interface Dims { D: number; F: number; H: number; KVH: number; hd: number; T: number; eps: number }
export const LIN = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
export type Lin = typeof LIN[number];
export function linShape(d: Dims, n: Lin): [number, number] {
  const qd = d.H * d.hd, kvd = d.KVH * d.hd;
  return ({ q: [qd, d.D], k: [kvd, d.D], v: [kvd, d.D], o: [d.D, qd], gate: [d.F, d.D], up: [d.F, d.D], down: [d.D, d.F] } as const)[n] as [number, number];
}

export interface Block64 {
  norm1: F64; norm2: F64; w: Record<Lin, F64>;
  /**
   * adapters: A[r, in'], B[out, r], scaling, optional mask [T, in']; `pool` = QA-LoRA's group size
   * (in' = in/pool, A sees group means); `iec` = IR-QLoRA's elastic connections with βA, βB.
   */
  ad: Partial<Record<Lin, { A: F64; B: F64; r: number; s: number; mask?: F64 | undefined; pool?: number; iec?: { betaA: F64; betaB: F64 } }>>;
  cos: ArrayLike<number>; sin: ArrayLike<number>;
}

/** One decoder block with LoRA in float64: the definition the engine's blockGrad must differentiate. */
export function block64(d: Dims, b: Block64, x: F64): F64 {
  const L = (n: Lin, inp: F64): F64 => {
    const [N, K] = linShape(d, n), y = linear64(inp, b.w[n], d.T, N, K), a = b.ad[n];
    if (!a) return y;
    const g = a.pool ?? 1, Kp = K / g;
    const xin = new Float64Array(d.T * Kp);
    for (let t = 0; t < d.T; t++) for (let c = 0; c < Kp; c++) {
      let m = 0;
      for (let j = 0; j < g; j++) m += inp[t * K + c * g + j]!;
      xin[t * Kp + c] = m / g;
    }
    const xd = a.mask ? xin.map((z, i) => z * a.mask![i]!) : xin;
    const h = linear64(xd, a.A, d.T, a.r, Kp);
    if (a.iec) {
      const c = K / a.r;
      for (let t = 0; t < d.T; t++) for (let i = 0; i < a.r; i++) {
        let m = 0;
        for (let j = 0; j < c; j++) m += inp[t * K + i * c + j]!;
        h[t * a.r + i] = h[t * a.r + i]! + a.iec.betaA[0]! * (m / c);
      }
    }
    const l = linear64(h, a.B, d.T, N, a.r);
    if (a.iec) for (let t = 0; t < d.T; t++) for (let j = 0; j < N; j++) l[t * N + j] = l[t * N + j]! + a.iec.betaB[0]! * h[t * a.r + Math.floor(j / (N / a.r))]!;
    return y.map((z, i) => z + a.s * l[i]!);
  };
  const n1 = rmsnorm64(x, b.norm1, d.T, d.D, d.eps);
  const q = rope64(L('q', n1), d.T, d.H, d.hd, b.cos, b.sin);
  const k = rope64(L('k', n1), d.T, d.KVH, d.hd, b.cos, b.sin);
  const v = L('v', n1);
  const h = add64(x, L('o', attention64(q, k, v, d.T, d.H, d.KVH, d.hd)));
  const n2 = rmsnorm64(h, b.norm2, d.T, d.D, d.eps);
  return add64(h, L('down', siluMul64(L('gate', n2), L('up', n2))));
}

/** Central differences of a scalar f with respect to every element of p (modified in place, restored). */
export function finiteDiff(f: () => number, p: F64, h = 1e-6): F64 {
  const g = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const v = p[i]!;
    p[i] = v + h; const fp = f();
    p[i] = v - h; const fm = f();
    p[i] = v;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** ‖got − want‖ / ‖want‖ ≤ tol, with the figure in the message. */
export function assertRelClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert(got.length === want.length, `${what}: length ${got.length} ≠ ${want.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) { num += (got[i]! - want[i]!) ** 2; den += want[i]! ** 2; }
  assert(den > 0, `${what}: the reference gradient is all zeros (the test would prove nothing)`);
  const rel = Math.sqrt(num / den);
  assert(rel <= tol, `${what}: relative error ${rel.toExponential(2)} > ${tol}`);
}
