/**
 * QuIP's random orthogonal transforms (Chee et al. 2023; Cornell-RelaxML/QuIP method.py), seeded.
 *
 * The reference draws, per linear layer, U (out × out) and V (in × in) with `rand_ortho_butterfly`.
 * `--incoh_processing` means to select the Kronecker variant (`pre_proj_extra = 1`), but opt.py sets
 * `args.proj_extra = 1`, a typo: `pre_proj_extra` keeps its default 0, so what the reference actually
 * runs, and what this file builds, is the two-stage *block* butterfly `gen_rand_ortho_butterfly`:
 *   n = a·b with (a, b) = butterflyFactors(n) (the ascending prime factors of n dealt alternately into
 *   two products: 4096 → 64×64, 14336 → 64×224, 11008 → 688×16, 384 → 16×24; a prime n → n×1);
 *   writing an index r = α·b + β (α < a, β < b),
 *   S1[α·b+β, α'·b+β] = B0[β][α, α']   (b independent a×a special-orthogonal blocks, one per β),
 *   S2[α·b+β, α·b+β'] = B1[α][β, β']   (a independent b×b special-orthogonal blocks, one per α),
 *   M = Pout · S2 · S1 · Pin, (Pin x)[i] = x[pin[i]], (Pout y)[i] = y[pout[i]]  (two random permutations).
 * This is not a Kronecker product: n/a + n/b independent small rotations (method.py mul_ortho_butterfly).
 * A prime n gives one dense n×n rotation (the 1-factor is the identity), which is what current SciPy does
 * (older SciPy refused `special_ortho_group` of dimension 1); factors above MAX_BLOCK are refused.
 *
 * Seeding. The reference's draws are unseeded (NumPy's global RandomState for SciPy's
 * `special_ortho_group`, torch's global generator for the 2×2 angles and `randperm`), so not even the
 * reference reproduces them; a port can only match their distribution. Here every draw comes from a
 * generator of our own, seeded from the run's `--seed` and the layer's name (quipLayerSeed):
 * - xoshiro128** (Blackman & Vigna) on 32-bit words, its state filled by splitmix32 from the seed and
 *   a stream number (1 for U, 2 for V);
 * - uniforms on [0, 1) from 53 bits (two words), integers below n by rejection (no modulo bias);
 * - standard normals by Marsaglia's polar method (both values of a pair used, in order), with a
 *   logarithm of our own (detLog: range reduction by exact powers of two and the atanh series), so
 *   that only IEEE-754 basic operations and Math.sqrt (correctly rounded) are involved: the stream
 *   is bit-identical on every JavaScript engine, which the stored checkpoint relies on (it stores the
 *   seed, not the matrices);
 * - Haar special-orthogonal blocks: a p×p Gaussian matrix (its columns drawn one after the other),
 *   Householder QR, Q's columns multiplied by sign(R_jj) (Haar on O(p), Mezzadri 2007), then row 0
 *   negated if det = −1 (Haar on SO(p); what SciPy's special_ortho_group does). 2×2 blocks come from
 *   the same QR (Haar on SO(2) is the reference's uniform angle); 1×1 blocks are [1] and draw nothing;
 * - permutations by Fisher–Yates (i from n−1 down to 1, j uniform in 0..i).
 * Draw order per transform, as the reference: the b blocks of size a, the a blocks of size b, pin, pout.
 *
 * The generator, detLog and Fisher–Yates live in tensor/xoshiro.ts (shared with training); QuipRng is
 * that generator under the name this file has always exported.
 *
 * All arithmetic is float64. applyButterfly's default product is a fixed-order TypeScript loop, so a
 * rebuilt layer (tensor/quipPack.ts) is bit-identical to the one the quantizer computed.
 */

import { detLog, fmix32, shuffle, Xoshiro128 } from './xoshiro.js';

export { detLog, Xoshiro128 as QuipRng };

/** The largest rotation block built (a prime dimension above it, e.g. 4099, is refused). */
export const MAX_BLOCK = 4096;

/**
 * The layer's transform seed (uint32): FNV-1a over the UTF-16 code units of `${runSeed}/${layer}`,
 * then fmix32. The checkpoint stores it, so a reader needs neither the run's seed nor the name.
 */
export function quipLayerSeed(runSeed: number, layer: string): number {
  const s = `${runSeed}/${layer}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
  return fmix32(h >>> 0);
}

/**
 * A Haar-distributed p×p special-orthogonal matrix (row-major): Householder QR of a Gaussian matrix,
 * Q·diag(sign R_jj), row 0 negated when the determinant is −1. p = 1 gives [1] and draws nothing.
 */
export function haarSpecialOrthogonal(p: number, rng: Xoshiro128): Float64Array {
  if (p === 1) return Float64Array.of(1);
  // M's row j is A's column j (A = QR); columns drawn one after the other
  const M = new Float64Array(p * p);
  for (let i = 0; i < M.length; i++) M[i] = rng.normal();
  const vs: (Float64Array | undefined)[] = [];
  const tau = new Float64Array(p);
  let det = 1;
  const sign = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    const o = j * p;
    if (j === p - 1) { sign[j] = M[o + j]! < 0 ? -1 : 1; break; }
    let nx = 0;
    for (let i = j; i < p; i++) nx += M[o + i]! * M[o + i]!;
    nx = Math.sqrt(nx);
    const x0 = M[o + j]!;
    const alpha = x0 >= 0 ? -nx : nx; // R_jj
    const v = M.slice(o + j, o + p);
    v[0]! -= alpha;
    let vv = 0;
    for (let i = 0; i < v.length; i++) vv += v[i]! * v[i]!;
    sign[j] = alpha < 0 ? -1 : 1;
    if (vv === 0) { vs.push(undefined); continue; }
    det = -det;
    vs.push(v);
    tau[j] = 2 / vv;
    for (let k = j + 1; k < p; k++) { // column k of A ← H_j · column k
      const ok = k * p + j;
      let d = 0;
      for (let i = 0; i < v.length; i++) d += v[i]! * M[ok + i]!;
      d *= tau[j]!;
      for (let i = 0; i < v.length; i++) M[ok + i]! -= d * v[i]!;
    }
  }
  // Qᵀ = H_{p−2} ⋯ H_0 built as I·H_{p−2}⋯H_0 (row operations: row r ← row r − τ (row r · v) vᵀ)
  const Qt = new Float64Array(p * p);
  for (let i = 0; i < p; i++) Qt[i * p + i] = 1;
  for (let j = p - 2; j >= 0; j--) {
    const v = vs[j];
    if (!v) continue;
    const t = tau[j]!;
    for (let r = j; r < p; r++) {
      const o = r * p + j;
      let d = 0;
      for (let i = 0; i < v.length; i++) d += Qt[o + i]! * v[i]!;
      d *= t;
      if (d !== 0) for (let i = 0; i < v.length; i++) Qt[o + i]! -= d * v[i]!;
    }
  }
  // Q[i][j] = Qt[j][i] · sign_j; det(Q) = det · Π sign_j
  for (let j = 0; j < p; j++) det *= sign[j]!;
  const Q = new Float64Array(p * p);
  for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) Q[i * p + j] = Qt[j * p + i]! * sign[j]!;
  if (det < 0) for (let j = 0; j < p; j++) Q[j] = -Q[j]!;
  return Q;
}

/** Prime factors of n ≥ 1, ascending, with multiplicity (trial division). */
export function primeFactors(n: number): number[] {
  const out: number[] = [];
  let m = n;
  for (let p = 2; p * p <= m; p += p === 2 ? 1 : 2) while (m % p === 0) { out.push(p); m /= p; }
  if (m > 1) out.push(m);
  return out;
}

/** method.py butterfly_factors: (Π pf[0::2], Π pf[1::2]) of the ascending prime factors; (1, 1) for n = 1. */
export function butterflyFactors(n: number): [number, number] {
  const pf = primeFactors(n);
  let a = 1, b = 1;
  pf.forEach((p, i) => { if (i % 2 === 0) a *= p; else b *= p; });
  return [a, b];
}

/** Why QuIP cannot build a transform of dimension n, or undefined when it can. */
export function butterflyProblem(n: number): string | undefined {
  if (!Number.isInteger(n) || n < 1) return `${n} is not a positive dimension`;
  const [a, b] = butterflyFactors(n);
  const big = Math.max(a, b);
  if (big <= MAX_BLOCK) return undefined;
  return a === n ? `${n} is a prime above ${MAX_BLOCK}: the butterfly has no factors and one dense random ${n}×${n} rotation is too large to draw`
    : `${n} = ${a}·${b} needs random ${big}×${big} rotation blocks (larger than ${MAX_BLOCK})`;
}

/** One random orthogonal butterfly M = Pout·S2·S1·Pin of dimension n = a·b. */
export interface Butterfly {
  readonly n: number;
  readonly a: number;
  readonly b: number;
  /** b blocks of a×a (row-major, block β at β·a²): stage 1 */
  readonly B0: Float64Array;
  /** a blocks of b×b (block α at α·b²): stage 2 */
  readonly B1: Float64Array;
  readonly pin: Int32Array;
  readonly pout: Int32Array;
}

/** The butterfly of dimension n drawn from (seed, stream): the reference's gen_rand_ortho_butterfly. Throws (an Error) for a dimension it cannot factor. */
export function randomButterfly(n: number, seed: number, stream: number): Butterfly {
  const problem = butterflyProblem(n);
  if (problem) throw new Error(problem);
  const [a, b] = butterflyFactors(n);
  const rng = new Xoshiro128(seed, stream);
  const B0 = new Float64Array(b * a * a), B1 = new Float64Array(a * b * b);
  for (let i = 0; i < b; i++) B0.set(haarSpecialOrthogonal(a, rng), i * a * a);
  for (let i = 0; i < a; i++) B1.set(haarSpecialOrthogonal(b, rng), i * b * b);
  const perm = () => Int32Array.from(shuffle(n, rng));
  const pin = perm(), pout = perm();
  return { n, a, b, B0, B1, pin, pout };
}

/** y[M, N] = x[M, K] · w[N, K]ᵀ in float64 (the contract of QuantLinalg.gemmF64). */
export type GemmF64 = (x: Float64Array, w: Float64Array, y: Float64Array, M: number, N: number, K: number) => void;

/**
 * gemmF64 as a fixed-order TypeScript loop: every y[i, j] is one accumulator summed over k ascending,
 * so the result is the same bits on every engine (rows and columns are taken two by two only to reuse
 * the loads; that does not change any sum).
 */
export const gemmF64Plain: GemmF64 = (x, w, y, M, N, K) => {
  let i = 0;
  for (; i + 1 < M; i += 2) {
    const x0 = i * K, x1 = x0 + K;
    let j = 0;
    for (; j + 3 < N; j += 4) {
      const w0 = j * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let k = 0; k < K; k++) {
        const a0 = x[x0 + k]!, a1 = x[x1 + k]!, b0 = w[w0 + k]!, b1 = w[w1 + k]!, b2 = w[w2 + k]!, b3 = w[w3 + k]!;
        s00 += a0 * b0; s01 += a0 * b1; s02 += a0 * b2; s03 += a0 * b3;
        s10 += a1 * b0; s11 += a1 * b1; s12 += a1 * b2; s13 += a1 * b3;
      }
      const y0 = i * N + j, y1 = y0 + N;
      y[y0] = s00; y[y0 + 1] = s01; y[y0 + 2] = s02; y[y0 + 3] = s03;
      y[y1] = s10; y[y1 + 1] = s11; y[y1 + 2] = s12; y[y1 + 3] = s13;
    }
    for (; j + 1 < N; j += 2) {
      const w0 = j * K, w1 = w0 + K;
      let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
      for (let k = 0; k < K; k++) {
        const a0 = x[x0 + k]!, a1 = x[x1 + k]!, b0 = w[w0 + k]!, b1 = w[w1 + k]!;
        s00 += a0 * b0; s01 += a0 * b1; s10 += a1 * b0; s11 += a1 * b1;
      }
      y[i * N + j] = s00; y[i * N + j + 1] = s01; y[(i + 1) * N + j] = s10; y[(i + 1) * N + j + 1] = s11;
    }
    if (j < N) {
      const w0 = j * K;
      let s0 = 0, s1 = 0;
      for (let k = 0; k < K; k++) { const b = w[w0 + k]!; s0 += x[x0 + k]! * b; s1 += x[x1 + k]! * b; }
      y[i * N + j] = s0; y[(i + 1) * N + j] = s1;
    }
  }
  if (i < M) {
    const x0 = i * K;
    for (let j = 0; j < N; j++) {
      const w0 = j * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += x[x0 + k]! * w[w0 + k]!;
      y[i * N + j] = s;
    }
  }
};

const TILE = 64; // rows of X gathered per stage at most
const STAGE_VALUES = 1 << 19; // values of X gathered at once (4 MiB)

/**
 * Each of the m rows x of X [m, n] (row-major) replaced in place by M·x, or by Mᵀ·x when `transpose`.
 * So applyButterfly(V, W, rows) turns W into W·Vᵀ, and with `transpose` into W·V. Works a tile of rows at
 * a time: each stage gathers the tile block-major (the permutations folded into the first stage's gather
 * and the last stage's scatter), multiplies every block by its rotation through `gemm` (default:
 * gemmF64Plain, the deterministic loop), and scatters the result back.
 */
export function applyButterfly(t: Butterfly, X: Float64Array, m: number, transpose = false, gemm: GemmF64 = gemmF64Plain): void {
  const { n, a, b } = t;
  if (X.length < m * n) throw new RangeError(`applyButterfly: ${X.length} values for ${m} rows of ${n}`);
  const inverse = (p: Int32Array) => { const q = new Int32Array(n); for (let i = 0; i < n; i++) q[p[i]!] = i; return q; };
  const blocksT = (B: Float64Array, p: number, count: number) => {
    const T = new Float64Array(B.length);
    for (let k = 0; k < count; k++) {
      const o = k * p * p;
      for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) T[o + j * p + i] = B[o + i * p + j]!;
    }
    return T;
  };
  // stage 1 (fiber): blocks β < b of size a over the entries α·b + β; stage 2 (run): blocks α < a of size b over α·b + β
  const s1 = { fiber: true, p: a, blocks: transpose ? blocksT(t.B0, a, b) : t.B0 };
  const s2 = { fiber: false, p: b, blocks: transpose ? blocksT(t.B1, b, a) : t.B1 };
  const stages = (transpose ? [s2, s1] : [s1, s2]).filter((st) => st.p > 1);
  if (stages.length === 0) return; // n = 1
  // forward: x ← Pin x first (gather x[pin[j]]), Pout last (y[j] to poutInv[j]); transposed: Poutᵀ first
  // (gather x[poutInv[j]]), Pinᵀ last (w[j] to pin[j])
  const gatherIdx = transpose ? inverse(t.pout) : t.pin, scatterIdx = transpose ? t.pin : inverse(t.pout);
  const R1 = Math.max(1, Math.min(TILE, Math.floor(STAGE_VALUES / n)));
  const F = new Float64Array(R1 * n), G = new Float64Array(R1 * n);
  stages.forEach((st, si) => {
    const g = si === 0 ? gatherIdx : undefined, sc = si === stages.length - 1 ? scatterIdx : undefined;
    const p = st.p, count = n / p;
    for (let r0 = 0; r0 < m; r0 += R1) {
      const R = Math.min(R1, m - r0), slab = R * p;
      // F[k][r][i] for entry j = α·b + β: (k, i) = (β, α) in stage 1, (α, β) in stage 2
      for (let r = 0; r < R; r++) {
        const o = (r0 + r) * n;
        for (let al = 0, j = 0; al < a; al++) {
          for (let be = 0; be < b; be++, j++) {
            const pos = st.fiber ? be * slab + r * a + al : al * slab + r * b + be;
            F[pos] = X[o + (g ? g[j]! : j)]!;
          }
        }
      }
      for (let k = 0; k < count; k++) {
        // G[k][r, i] = Σ_i' F[k][r, i'] · B_k[i, i']
        gemm(F.subarray(k * slab, (k + 1) * slab), st.blocks.subarray(k * p * p, (k + 1) * p * p), G.subarray(k * slab, (k + 1) * slab), R, p, p);
      }
      for (let r = 0; r < R; r++) {
        const o = (r0 + r) * n;
        for (let al = 0, j = 0; al < a; al++) {
          for (let be = 0; be < b; be++, j++) {
            const pos = st.fiber ? be * slab + r * a + al : al * slab + r * b + be;
            X[o + (sc ? sc[j]! : j)] = G[pos]!;
          }
        }
      }
    }
  });
}

/** The dense n×n matrix of a butterfly (tests, small n). */
export function butterflyMatrix(t: Butterfly): Float64Array {
  // rows of I transformed give (M·e_i) as rows: Mᵀ; transpose back
  const n = t.n, E = new Float64Array(n * n);
  for (let i = 0; i < n; i++) E[i * n + i] = 1;
  applyButterfly(t, E, n);
  const M = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) M[i * n + j] = E[j * n + i]!;
  return M;
}

/** In-place transpose of a square n×n matrix. */
export function transposeSquare(A: Float64Array, n: number): void {
  const B = 32;
  for (let i0 = 0; i0 < n; i0 += B) {
    const i1 = Math.min(n, i0 + B);
    for (let j0 = i0; j0 < n; j0 += B) {
      const j1 = Math.min(n, j0 + B);
      for (let i = i0; i < i1; i++) {
        for (let j = Math.max(j0, i + 1); j < j1; j++) { const t = A[i * n + j]!; A[i * n + j] = A[j * n + i]!; A[j * n + i] = t; }
      }
    }
  }
}

/** [rows, cols] → [cols, rows] (new array). */
export function transposed(A: Float64Array, rows: number, cols: number): Float64Array {
  const T = new Float64Array(rows * cols);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) T[c * rows + r] = A[r * cols + c]!;
    }
  }
  return T;
}
