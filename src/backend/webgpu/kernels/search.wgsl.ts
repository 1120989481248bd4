/**
 * The kernels of a quantizer's search on the device (AWQ's scale search, quant/methods/awq.ts), so that
 * its candidates and their losses never leave the device:
 *   scaled_quant  y = Q(W·diag(s))·diag(s)⁻¹, llm-awq's pseudo_quantize_tensor of the scaled weight
 *                 (zero point, per row and group of `gs` columns), one invocation per (row, group). Every
 *                 operation is the host's (awqQuantizer.ts quantizeScaledInto) as a correctly rounded
 *                 float32 one: products and differences are (WGSL rounds them correctly), the three
 *                 divisions go through div_cr, round() is ties-to-even as the host's, and the optional
 *                 fp16 rounding of the scale is done on the bits. So y equals the host's bit for bit
 *                 (test/backend/searchOps.test.ts).
 *   sq_diff       Σ (a − b)² over two float32 arrays as per-workgroup two-float (hi, lo) partial sums:
 *                 each difference split exactly by TwoSum, its square by TwoProduct (Veltkamp split)
 *                 plus the cross terms, summed by TwoSum per invocation and then over the workgroup
 *                 in a fixed tree; the host adds the partials in float64. About 2⁻⁴⁰ relative, against
 *                 the host's float64 sum (the loss only ranks AWQ's candidates).
 * Intermediates of the exact sums sit behind keep() (common.wgsl.ts: TWO_SUM), as in the Gram.
 */
import { DIV_CR, FLAT_INDEX, FLOAT_CONSTS, TWO_PRODUCT, TWO_SUM } from './common.wgsl.js';

/** grid.ts roundScale(x, 'f16') for a positive finite x: fp16 rounding (ties to even), 0 → 2⁻²⁴, ∞ → 65504. */
export const ROUND_F16 = /* wgsl */ `
fn round_f16(x: f32) -> f32 {
  if (x < 6.103515625e-05) { // below fp16's smallest normal: a multiple of 2⁻²⁴ (x·2²⁴ is exact)
    let r = round(x * 16777216.0) * 5.9604644775390625e-08;
    return select(r, 5.9604644775390625e-08, r == 0.0);
  }
  var b = bitcast<u32>(x);
  b = (b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u;
  if (((b >> 23u) & 0xffu) > 142u) { return 65504.0; } // fp16 overflows
  return bitcast<f32>(b);
}
`;

/**
 * acc + (a − b)² as a two-float pair: the difference split exactly by TwoSum, its leading part squared by
 * Dekker's TwoProduct, the cross terms added to lo. Needs TWO_SUM and TWO_PRODUCT (common.wgsl.ts) before it.
 */
export const ADD_SQUARED_DIFF = /* wgsl */ `
fn add_squared_diff(acc: vec2f, a: f32, b: f32) -> vec2f {
  let d = two_sum(a, -b); // a − b = d.x + d.y exactly
  let sd = split(d.x);
  let sq = two_prod_split(d.x, sd, d.x, sd); // d.x² = sq.x + sq.y exactly
  let cross = keep(keep(2.0 * d.x) * d.y) + keep(d.y * d.y);
  let r = two_sum(acc.x, sq.x);
  return vec2f(r.x, keep(acc.y + keep(r.y + keep(sq.y + cross))));
}
`;

export const SEARCH_WG = 64;
export const SQ_DIFF_WG = 256;

/** params: rows (of this part), cols, gs, maxq, f16 (1: the scale rounded through fp16), min range as bits, zero (0, div_cr's barrier). */
export const SCALED_QUANT_WGSL = /* wgsl */ `
const WG: u32 = ${SEARCH_WG}u;
struct Params { rows: u32, cols: u32, gs: u32, maxq: u32, f16: u32, minRange: u32, zero: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> s: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
${FLOAT_CONSTS}${FLAT_INDEX}${DIV_CR}
${ROUND_F16}
@compute @workgroup_size(${SEARCH_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat_index(gid, nwg);
  let groups = p.cols / p.gs;
  if (j >= p.rows * groups) { return; }
  let o = (j / groups) * p.cols;
  let g0 = (j % groups) * p.gs;
  var mx = neg_inf();
  var mn = -mx;
  for (var c = g0; c < g0 + p.gs; c++) {
    let v = w[o + c] * s[c];
    if (v < mn) { mn = v; }
    if (v > mx) { mx = v; }
  }
  let maxq = f32(p.maxq);
  var scale = div_cr(max(mx - mn, bitcast<f32>(p.minRange)), maxq);
  if (p.f16 == 1u) { scale = round_f16(scale); }
  let zero = clamp(-round(div_cr(mn, scale)), 0.0, maxq);
  for (var c = g0; c < g0 + p.gs; c++) {
    let v = w[o + c] * s[c];
    let k = clamp(round(div_cr(v, scale)) + zero, 0.0, maxq);
    y[o + c] = div_cr(scale * (k - zero), s[c]);
  }
}
`;

/** params: n, zero (keep's runtime 0), out (first pair of this call's partials), stride (invocations in all). */
export const SQ_DIFF_WGSL = /* wgsl */ `
struct Params { n: u32, zero: u32, out: u32, stride: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> parts: array<f32>;
var<workgroup> hi: array<f32, ${SQ_DIFF_WG}>;
var<workgroup> lo: array<f32, ${SQ_DIFF_WG}>;
${TWO_SUM}${TWO_PRODUCT}${ADD_SQUARED_DIFF}
@compute @workgroup_size(${SQ_DIFF_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  var acc = vec2f(0.0, 0.0);
  for (var i = wid.x * ${SQ_DIFF_WG}u + lid.x; i < p.n; i += p.stride) {
    acc = add_squared_diff(acc, a[i], b[i]);
  }
  hi[lid.x] = acc.x;
  lo[lid.x] = acc.y;
  workgroupBarrier();
  for (var w = ${SQ_DIFF_WG / 2}u; w > 0u; w >>= 1u) {
    if (lid.x < w) {
      let r = two_sum(hi[lid.x], hi[lid.x + w]);
      hi[lid.x] = r.x;
      lo[lid.x] = keep(keep(lo[lid.x] + lo[lid.x + w]) + r.y);
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    parts[p.out + 2u * wid.x] = hi[0];
    parts[p.out + 2u * wid.x + 1u] = lo[0];
  }
}
`;
