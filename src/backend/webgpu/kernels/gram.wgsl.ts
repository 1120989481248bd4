/**
 * S += xᵀx for x[T, K] (GPTQ's Hessian sum), one invocation per entry S[a, b] with b ≥ a (the lower
 * triangle is mirrored on the host). WGSL has no float64, so each entry is a two-float (hi, lo)
 * pair: every product x[t, a]·x[t, b] is split exactly into p + e (Dekker's TwoProduct; not fma,
 * which WGSL does not promise to fuse), p is added to hi with TwoSum (Knuth) and the rounding errors
 * gather in lo; at the end of a call its pair is added into the stored pair the same way and
 * renormalised; the host reads hi + lo into float64.
 * Precision: lo is a float32 sum within a call, so an entry's error is at most about
 * (T·2⁻²⁴)²·Σ|x_a·x_b| per call of T tokens, and in practice near N·2⁻⁴⁸·Σ|x_a·x_b| over N tokens
 * (5e-14 relative measured over 3 × 200 tokens; test/backend/gram.test.ts holds it to (N + 2)·2⁻⁴⁷),
 * against about N·2⁻⁵³ for the host's float64 sums of exact products.
 * Reference kernel: one entry per invocation, tokens read from global memory (the tiled kernel that the fast
 * kernel choice runs, gramFast.wgsl.ts, gives the same bits). S is kept in bands of rows (p.a0, p.rows: each
 * plane within one storage binding); a dispatch covers its band's columns from p.c0.
 */
import { TWO_PRODUCT, TWO_SUM } from './common.wgsl.js';

/**
 * The product and sum steps both Gram kernels share, as one text so that every entry's operations are the
 * same in each (the fast kernel, gramFast.wgsl.ts, splits each x once and calls two_prod_split).
 */
export const GRAM_PRODUCTS = /* wgsl */ `
${TWO_SUM}
${TWO_PRODUCT}
/** hi + lo += the product pe (a pair from two_prod), the reference's per-token step. */
fn add_product(acc: vec2f, pe: vec2f) -> vec2f {
  let r = two_sum(acc.x, pe.x);
  return vec2f(r.x, keep(acc.y + keep(r.y + pe.y)));
}

/** The stored pair (s_hi[i], s_lo[i]) += this call's (hi, lo), renormalised: |lo| ≤ ulp(hi)/2. */
fn merge_stored(i: u32, acc: vec2f) {
  let q = two_sum(s_hi[i], acc.x);
  let l = keep(keep(s_lo[i] + acc.y) + q.y);
  let n = two_sum(q.x, l);
  s_hi[i] = n.x;
  s_lo[i] = n.y;
}
`;

export const GRAM_WG = 8;

/** Both Gram kernels' parameters and buffers: x [T, K], and one band's hi and lo planes [rows, K] (S rows a0..). */
export const GRAM_IO = `struct Params { T: u32, K: u32, zero: u32, a0: u32, rows: u32, c0: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> s_hi: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_lo: array<f32>;
`;

export const GRAM_WGSL = `
${GRAM_IO}
${GRAM_PRODUCTS}
@compute @workgroup_size(${GRAM_WG}, ${GRAM_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.y; // row of the band: S row a0 + r, stored at row r of the band's planes
  let a = p.a0 + row;
  let b = p.c0 + gid.x;
  if (row >= p.rows || b >= p.K || b < a) { return; }
  var acc = vec2f(0.0); // (hi, lo)
  for (var t = 0u; t < p.T; t++) {
    acc = add_product(acc, two_prod(x[t * p.K + a], x[t * p.K + b])); // x_a·x_b = pe.x + pe.y exactly
  }
  merge_stored(row * p.K + b, acc);
}`;
