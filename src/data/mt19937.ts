/**
 * CPython's `random` module, the parts GPTQ's samplers use: MT19937 seeded by `random.seed(int)`,
 * `getrandbits`, `_randbelow` (rejection sampling), `randint`, `random()`.
 * reference: CPython Modules/_randommodule.c (init_genrand, init_by_array, genrand_uint32,
 * random_seed, getrandbits) and Lib/random.py (_randbelow_with_getrandbits, randrange, randint).
 * Draws are bit-for-bit those of CPython 3.x for the same seed.
 */
import { UsageError } from '../errors.js';

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export class PyRandom {
  private readonly mt = new Uint32Array(N);
  private mti = N + 1;

  /** `random.seed(seed)` for an int seed: init_by_array over the 32-bit words of |seed|, least significant first. */
  constructor(seed: number | bigint) {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) throw new UsageError(`random seed must be an integer (got ${seed})`);
    let s = BigInt(seed);
    if (s < 0n) s = -s;
    const key: number[] = [];
    do {
      key.push(Number(s & 0xffffffffn));
      s >>= 32n;
    } while (s > 0n);
    this.initByArray(key);
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1]!;
      mt[i] = (Math.imul(1812433253, (prev ^ (prev >>> 30)) >>> 0) + i) >>> 0;
    }
    this.mti = N;
  }

  private initByArray(key: readonly number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1]!;
      mt[i] = ((mt[i]! ^ Math.imul((prev ^ (prev >>> 30)) >>> 0, 1664525)) + key[j]! + j) >>> 0; // non linear
      i++;
      j++;
      if (i >= N) { mt[0] = mt[N - 1]!; i = 1; }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1]!;
      mt[i] = ((mt[i]! ^ Math.imul((prev ^ (prev >>> 30)) >>> 0, 1566083941)) - i) >>> 0; // non linear
      i++;
      if (i >= N) { mt[0] = mt[N - 1]!; i = 1; }
    }
    mt[0] = 0x80000000; // MSB is 1, assuring a non-zero initial array
  }

  /** One 32-bit output (genrand_uint32). */
  nextUint32(): number {
    const mt = this.mt;
    if (this.mti >= N) {
      let kk = 0;
      for (; kk < N - M; kk++) {
        const y = (mt[kk]! & UPPER_MASK) | (mt[kk + 1]! & LOWER_MASK);
        mt[kk] = mt[kk + M]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      for (; kk < N - 1; kk++) {
        const y = (mt[kk]! & UPPER_MASK) | (mt[kk + 1]! & LOWER_MASK);
        mt[kk] = mt[kk + (M - N)]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      const y = (mt[N - 1]! & UPPER_MASK) | (mt[0]! & LOWER_MASK);
      mt[N - 1] = mt[M - 1]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      this.mti = 0;
    }
    let y = mt[this.mti++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** `random.random()`: a float in [0, 1) with 53 random bits. */
  random(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** `random.getrandbits(k)`: k ≥ 0 bits, built from 32-bit words least significant first (the last word keeps its top bits). */
  getrandbits(k: number): bigint {
    if (!Number.isInteger(k) || k < 0) throw new UsageError(`getrandbits: number of bits must be a non-negative integer (got ${k})`);
    if (k <= 32) return BigInt(this.bits32(k));
    let out = 0n;
    let shift = 0n;
    for (let left = k; left > 0; left -= 32) {
      const r = left < 32 ? this.nextUint32() >>> (32 - left) : this.nextUint32();
      out |= BigInt(r) << shift;
      shift += 32n;
    }
    return out;
  }

  /** getrandbits(k) for k ≤ 32, as a number (CPython's fast path: one word, top k bits). */
  private bits32(k: number): number {
    if (k === 0) return 0;
    return this.nextUint32() >>> (32 - k);
  }

  /** getrandbits(k) for k ≤ 53, as a number (the same draws as the bigint path). */
  private bitsNumber(k: number): number {
    if (k <= 32) return this.bits32(k);
    const lo = this.nextUint32();
    const hi = this.nextUint32() >>> (64 - k);
    return hi * 4294967296 + lo;
  }

  /** `random._randbelow(n)`: uniform in [0, n) by rejection with getrandbits(n.bit_length()); n a positive safe integer. */
  randbelow(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`randbelow: n must be a positive safe integer (got ${n})`);
    const k = bitLength(n);
    let r = this.bitsNumber(k);
    while (r >= n) r = this.bitsNumber(k);
    return r;
  }

  /** `random.randint(a, b)`: uniform in [a, b], both ends included; fails as CPython does when b < a. */
  randint(a: number, b: number): number {
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b)) throw new UsageError(`randint: bounds must be safe integers (got ${a}, ${b})`);
    const width = b + 1 - a;
    if (width <= 0) throw new UsageError(`randint: empty range (${a}, ${b}) (CPython raises ValueError here)`);
    return a + this.randbelow(width);
  }
}

/** int.bit_length() for a positive safe integer. */
function bitLength(n: number): number {
  if (n < 4294967296) return 32 - Math.clz32(n);
  return 32 + bitLength(Math.floor(n / 4294967296));
}
