/**
 * The project's seeded generator: xoshiro128** (Blackman & Vigna) on 32-bit words, its state filled by
 * splitmix32 from (seed, stream). Used by QuIP's transforms (tensor/quipTransform.ts, whose stored
 * checkpoints depend on this exact stream) and by training (data order, adapter initialisation).
 *
 * - uniforms on [0, 1) from 53 bits (two words), integers below n by rejection (no modulo bias);
 * - standard normals by Marsaglia's polar method (both values of a pair used, in order), with a
 *   logarithm of our own (detLog), so that only IEEE-754 basic operations and Math.sqrt (correctly
 *   rounded) are involved: the stream is bit-identical on every JavaScript engine;
 * - `state()` / `Xoshiro128.restore(state)`: the four state words plus the pending second normal of a
 *   polar pair, so a restored generator continues exactly where the saved one stood (JSON-safe).
 */

const LN2 = 0.6931471805599453;
const SQRT_HALF = 0.7071067811865476;
/** 1/(2k+1), k = 0..13: the atanh series of detLog */
const ATANH_COEF = Array.from({ length: 14 }, (_, k) => 1 / (2 * k + 1));

/**
 * ln(x) for x > 0 from basic operations only: x = m·2^e with m in [1/√2, √2) (exact scalings), then
 * ln m = 2·atanh(z), z = (m − 1)/(m + 1), |z| < 0.172, by 14 terms of the series (error < 1e-16 relative).
 */
export function detLog(x: number): number {
  if (!(x > 0) || x === Infinity) return x === 0 ? -Infinity : x === Infinity ? Infinity : NaN;
  let e = 0;
  while (x < SQRT_HALF) { x *= 2; e--; }
  while (x >= 2 * SQRT_HALF) { x /= 2; e++; }
  const z = (x - 1) / (x + 1), z2 = z * z;
  let p = ATANH_COEF[13]!;
  for (let k = 12; k >= 0; k--) p = p * z2 + ATANH_COEF[k]!;
  return 2 * z * p + e * LN2;
}

/** splitmix32 over a 32-bit state (the seeding of xoshiro128**). */
function splitmix32(state: number): () => number {
  let s = state | 0;
  return () => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** murmur3's 32-bit finaliser. */
export function fmix32(h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number { return (x << k) | (x >>> (32 - k)); }

/** A generator's complete state: four uint32 words and the pending normal (null when none). */
export interface XoshiroState {
  readonly s: readonly [number, number, number, number];
  readonly spare: number | null;
}

/** xoshiro128** with splitmix32 seeding; one stream per (seed, stream number). */
export class Xoshiro128 {
  private s0: number; private s1: number; private s2: number; private s3: number;
  private spare: number | undefined;
  constructor(seed: number, stream: number) {
    const sm = splitmix32(fmix32((seed >>> 0) ^ Math.imul(stream + 1, 0x9e3779b9)));
    this.s0 = sm(); this.s1 = sm(); this.s2 = sm(); this.s3 = sm();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A copy of the state, to save (JSON-safe: the spare normal is a finite double or null). */
  state(): XoshiroState {
    return { s: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0], spare: this.spare ?? null };
  }

  /** A generator continuing from `state`; a RangeError when the state is not four uint32 words (not all zero). */
  static restore(state: XoshiroState): Xoshiro128 {
    const s: unknown = state?.s;
    if (!Array.isArray(s) || s.length !== 4 || !s.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
      throw new RangeError('xoshiro128** state must be four uint32 words');
    }
    if (s.every((w: number) => w === 0)) throw new RangeError('xoshiro128** state must not be all zero');
    if (state.spare !== null && !Number.isFinite(state.spare)) throw new RangeError('xoshiro128** spare normal must be a finite number or null');
    const r = new Xoshiro128(0, 0);
    [r.s0, r.s1, r.s2, r.s3] = (s as number[]).map((w) => w | 0) as [number, number, number, number];
    r.spare = state.spare ?? undefined;
    return r;
  }

  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0; this.s3 ^= this.s1; this.s1 ^= this.s2; this.s0 ^= this.s3;
    this.s2 ^= t; this.s3 = rotl(this.s3, 11);
    return r;
  }

  /** uniform on [lo, hi) from 53 random bits; uniform() is on [0, 1) (lo + (hi − lo)·u, exact for the default). */
  uniform(lo = 0, hi = 1): number {
    const hiBits = this.nextU32() >>> 5, loBits = this.nextU32() >>> 6;
    const u = (hiBits * 67108864 + loBits) / 9007199254740992;
    return lo + (hi - lo) * u;
  }

  /** uniform integer in [0, n), 1 ≤ n ≤ 2^32, by rejection */
  int(n: number): number {
    const limit = 4294967296 - (4294967296 % n);
    for (;;) { const u = this.nextU32(); if (u < limit) return u % n; }
  }

  /** standard normal (Marsaglia's polar method, both values of a pair used) */
  normal(): number {
    if (this.spare !== undefined) { const v = this.spare; this.spare = undefined; return v; }
    for (;;) {
      const u = 2 * this.uniform() - 1, v = 2 * this.uniform() - 1, s = u * u + v * v;
      if (s > 0 && s < 1) {
        const f = Math.sqrt((-2 * detLog(s)) / s);
        this.spare = v * f;
        return u * f;
      }
    }
  }
}

/** A uniformly random permutation of 0..n−1 by Fisher–Yates (i from n−1 down to 1, j uniform in 0..i). */
export function shuffle(n: number, rng: Xoshiro128): Uint32Array {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`shuffle: n must be an integer in [0, 2^32), got ${n}`);
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i >= 1; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!; p[i] = p[j]!; p[j] = t;
  }
  return p;
}
