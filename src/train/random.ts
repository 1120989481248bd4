/**
 * The training engine's random numbers, counter-based: adapter initialisation and LoRA dropout masks.
 * Dropout masks: element i of the mask keyed by (seed, step, micro-batch, layer,
 * linear) is a pure function of those numbers, so the backward pass's recompute of a block (and a
 * resumed run) draws exactly the masks of the forward pass, with no generator state to carry.
 * Inverted dropout as torch.nn.Dropout: kept elements are scaled by 1/(1 − p).
 */

/** A 32-bit mix (the finaliser of MurmurHash3): a bijection of 32-bit words with good avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** One 32-bit key from several non-negative integers (each mixed in turn). */
export function maskKey(...parts: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    if (!Number.isSafeInteger(p) || p < 0) throw new RangeError(`maskKey: ${p} is not a non-negative integer`);
    h = fmix32(h ^ fmix32((p >>> 0) ^ Math.imul(Math.floor(p / 2 ** 32), 0x27d4eb2f)));
  }
  return h;
}

/** A dropout mask of n elements with drop probability p: 0 or 1/(1 − p) each (float32). */
export function dropoutMask(n: number, p: number, key: number): Float32Array {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout probability ${p} is not in [0, 1)`);
  const keep = Math.fround(1 / (1 - p));
  const m = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = fmix32(key ^ fmix32(i + 0x632be5ab)) / 2 ** 32;
    m[i] = u >= p ? keep : 0;
  }
  return m;
}

/** n float32 values uniform in [lo, hi), element i a pure function of (key, i): seeded adapter init. */
export function uniformArray(n: number, lo: number, hi: number, key: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // 53 random bits from two mixed words
    const a = fmix32(key ^ fmix32(2 * i + 0x3c6ef372)), b = fmix32(key ^ fmix32(2 * i + 0x5be0cd19));
    const u = (a * 2 ** 21 + (b >>> 11)) / 2 ** 53;
    out[i] = lo + (hi - lo) * u;
  }
  return out;
}
