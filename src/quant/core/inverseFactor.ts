/**
 * The inverse factor of the GPTQ family (GPTQ, PB-LLM, BiLLM): U = chol_upper((H + λI)⁻¹) with gptq.py's
 * damping, λ = percdamp · mean(diag H), multiplied by 10 after each failed Cholesky.
 *
 * And one factor per input: the linears that read one input (q/k/v 3, gate/up 2) are quantized against the
 * same H, and their factors are the same bits, since a factor depends on nothing but H, how it was prepared
 * (act-order's permutation, the damping and its retries: the key) and the provider that factored it. So the
 * first reader keeps what it made, the others take it (its damping-retry notes replayed), and the last drops
 * it. Dead columns (H_ii = 0) are read from H alone, so every reader finds the same ones; what they do to a
 * reader's weights stays with that reader.
 */
import { LowbitError } from '../../errors.js';
import { QuantLinalg, upperCholeskyOfInverse } from './linalgProvider.js';

/** A factor and how it was made: U itself on the host (Float64Array), or a handle to it on a device. */
export interface InverseFactor<U = Float64Array> {
  /** U [n, n], row-major (only read by its users), or where it lives */
  readonly Hinv: U;
  /** the damping used, as a fraction of mean(diag H) */
  readonly dampUsed: number;
  /** the damping retries' notes */
  readonly notes: readonly string[];
}

/**
 * Who shares a factor: how many layers read H, the key of the settings it depends on, and who made it (the
 * host provider, or the backend that holds it): a factor is taken only with the same key and maker.
 */
export interface FactorShare {
  readonly readers: number;
  readonly key: string;
  readonly linalg?: object | undefined;
}

/** The key of what a factor depends on besides H and the provider: act-order, damping, retries. */
export function factorKey(actOrder: boolean, percdamp: number, maxRetries: number): string {
  return `${actOrder}/${percdamp}/${maxRetries}`;
}

interface Kept { readonly share: FactorShare; readonly factor: InverseFactor<unknown>; left: number }
const kept = new WeakMap<Float64Array, Kept>();

/**
 * The factor an earlier reader of H kept with the same key and maker, this reader counted off (`last`: no reader
 * is left, the caller may free it after use), else undefined. The caller's key must name the factor's kind.
 */
export function takeFactor<U = Float64Array>(H: Float64Array, share: FactorShare): (InverseFactor<U> & { last: boolean }) | undefined {
  if (share.readers <= 1) return undefined;
  const k = kept.get(H);
  if (!k || k.share.key !== share.key || k.share.linalg !== share.linalg) return undefined;
  const last = --k.left <= 0;
  if (last) kept.delete(H);
  return { ...(k.factor as InverseFactor<U>), last };
}

/** Keeps a factor just made from H for the other readers (nothing when there are none). */
export function keepFactor<U>(H: Float64Array, share: FactorShare, factor: InverseFactor<U>): void {
  if (share.readers > 1) kept.set(H, { share, factor, left: share.readers - 1 });
}

/** The note of a factorization that needed more damping than asked (host and device alike). */
export function dampingRetried(percdamp: number, frac: number): string {
  return `Cholesky failed with damping ${percdamp}; succeeded with ${frac} of mean(diag H)`;
}

/** The error when no damping within the retries makes H positive definite (`precision`: '' or ' in float32'). */
export function notPositiveDefinite(at: string, precision: string, frac: number, attempt: number, percdamp: number): LowbitError {
  return new LowbitError(`${at}the Hessian is not positive definite${precision} even with damping ${frac} of mean(diag H) `
    + `(${attempt} retries from ${percdamp}); use more calibration samples or a larger damping`);
}

/**
 * Adds percdamp · mean(diag H) to the diagonal and replaces Hinv (holding H) with the upper Cholesky
 * factor of its inverse. A failed factorization multiplies the damping by 10, up to maxRetries times.
 */
export function dampedInverseFactor(Hinv: Float64Array, n: number, percdamp: number, maxRetries: number, notes: string[], at: string,
  linalg?: QuantLinalg): number {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += Hinv[i * n + i]!;
  mean /= n;
  const diag0 = new Float64Array(n);
  for (let i = 0; i < n; i++) diag0[i] = Hinv[i * n + i]!;
  let frac = percdamp;
  for (let attempt = 0; ; attempt++) {
    const damp = frac * mean;
    for (let i = 0; i < n; i++) Hinv[i * n + i] = diag0[i]! + damp;
    if (upperCholeskyOfInverse(Hinv, n, linalg)) {
      if (attempt > 0) notes.push(dampingRetried(percdamp, frac));
      return frac;
    }
    if (attempt >= maxRetries) throw notPositiveDefinite(at, '', frac, attempt, percdamp);
    frac *= 10;
  }
}

/**
 * The factor of H for one of `readers` layers without act-order (PB-LLM, BiLLM): the one an earlier reader kept,
 * else H (dead columns' diagonal set to 1: read from H, the same for every reader) damped and factored, kept.
 */
export function inputFactor(H: Float64Array, n: number, o: { readers?: number | undefined; percdamp: number; at: string; linalg?: QuantLinalg | undefined }): InverseFactor {
  const share = { readers: o.readers ?? 1, key: factorKey(false, o.percdamp, 3), linalg: o.linalg };
  const taken = takeFactor(H, share);
  if (taken) return taken;
  const Hinv = H.slice(), notes: string[] = [];
  for (let i = 0; i < n; i++) if (Hinv[i * n + i] === 0) Hinv[i * n + i] = 1;
  const made = { Hinv, dampUsed: dampedInverseFactor(Hinv, n, o.percdamp, 3, notes, o.at, o.linalg), notes };
  keepFactor(H, share, made);
  return made;
}
