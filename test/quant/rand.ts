import { HessianAccumulator } from '../../src/quant/core/hessian.js';

/** Seeded random matrices for the quantization tests (mulberry32 + Box-Muller; no Math.random). */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = 1 - this.next(), v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  normals(n: number, sd = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = sd * this.normal();
    return a;
  }
}

/** X = Z · A: [tokens, cols] inputs correlated by a random mixing A [cols, cols] (plus a little own noise). */
export function correlatedInputs(rng: Rng, tokens: number, cols: number): Float32Array {
  const Z = rng.normals(tokens * cols), A = rng.normals(cols * cols, 1 / Math.sqrt(cols));
  const X = new Float32Array(tokens * cols);
  for (let t = 0; t < tokens; t++) {
    for (let k = 0; k < cols; k++) {
      const z = Z[t * cols + k]!;
      for (let c = 0; c < cols; c++) X[t * cols + c]! += z * A[k * cols + c]!;
    }
  }
  for (let i = 0; i < X.length; i++) X[i]! += 0.05 * rng.normal();
  return X;
}

/** H = 2/n Σ x xᵀ computed plainly in float64 (the reference for the accumulator). */
/** A seeded layer: W [rows, cols] ~ N(0, 0.05²) and the Hessian of `tokens` correlated inputs. */
export function layer(seed: number, rows: number, cols: number, tokens = 256): { W: Float32Array; H: Float64Array } {
  const rng = new Rng(seed);
  const W = rng.normals(rows * cols, 0.05);
  const acc = new HessianAccumulator(cols);
  acc.add(correlatedInputs(rng, tokens, cols), tokens);
  return { W, H: acc.finish() };
}

export function naiveHessian(X: Float32Array, tokens: number, cols: number, nSamples: number): Float64Array {
  const H = new Float64Array(cols * cols);
  for (let t = 0; t < tokens; t++) {
    for (let a = 0; a < cols; a++) {
      const xa = X[t * cols + a]!;
      for (let b = 0; b < cols; b++) H[a * cols + b]! += xa * X[t * cols + b]!;
    }
  }
  for (let i = 0; i < H.length; i++) H[i]! *= 2 / nSamples;
  return H;
}

/** tr(ΔW H ΔWᵀ) for ΔW = W − Q (both [rows, cols]): proportional to ‖WX − QX‖². */
export function proxyLoss(W: Float32Array, Q: Float32Array, rows: number, cols: number, H: Float64Array): number {
  let total = 0;
  const d = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) d[c] = W[r * cols + c]! - Q[r * cols + c]!;
    for (let a = 0; a < cols; a++) {
      let s = 0;
      for (let b = 0; b < cols; b++) s += H[a * cols + b]! * d[b]!;
      total += d[a]! * s;
    }
  }
  return total;
}

/** A random SPD matrix with eigenvalues spread over `decades` orders of magnitude: Qᵀ diag(λ) Q. */
export function illConditionedSpd(rng: Rng, n: number, decades: number): Float64Array {
  // Random orthogonal Q by Gram-Schmidt on Gaussian rows.
  const Qm = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) Qm[i * n + j] = rng.normal();
    for (let k = 0; k < i; k++) {
      let dot = 0;
      for (let j = 0; j < n; j++) dot += Qm[i * n + j]! * Qm[k * n + j]!;
      for (let j = 0; j < n; j++) Qm[i * n + j]! -= dot * Qm[k * n + j]!;
    }
    let norm = 0;
    for (let j = 0; j < n; j++) norm += Qm[i * n + j]! ** 2;
    norm = Math.sqrt(norm);
    for (let j = 0; j < n; j++) Qm[i * n + j]! /= norm;
  }
  const H = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const lambda = 10 ** (-decades * k / Math.max(1, n - 1));
    for (let i = 0; i < n; i++) {
      const qi = Qm[k * n + i]! * lambda;
      for (let j = 0; j < n; j++) H[i * n + j]! += qi * Qm[k * n + j]!;
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) H[i * n + j] = H[j * n + i]!; // exact symmetry
  return H;
}

export function matmul(A: Float64Array, B: Float64Array, n: number): Float64Array {
  const C = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) {
    const a = A[i * n + k]!;
    if (a === 0) continue;
    for (let j = 0; j < n; j++) C[i * n + j]! += a * B[k * n + j]!;
  }
  return C;
}

export function transpose(A: Float64Array, n: number): Float64Array {
  const T = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) T[j * n + i] = A[i * n + j]!;
  return T;
}

export function frobenius(A: Float64Array): number {
  let s = 0;
  for (const x of A) s += x * x;
  return Math.sqrt(s);
}
