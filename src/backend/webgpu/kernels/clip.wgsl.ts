/**
 * The kernels of AWQ's clip search on the device (llm-awq auto_clip, quant/methods/awq.ts autoClip), for
 * one group of `gs` input columns and a chunk of R output rows at a time (clip.ts drives them):
 *   gather_cols  xg[t, c] = x[t, g0 + c]: the group's columns of the sampled tokens, contiguous for the GEMM.
 *   clip_quant   the candidates, [(steps + 1)·R, gs]: for step s < steps and row r, the group clamped to
 *                ±maxv[s, row, g] and pseudo-quantized, every operation the host's clampQuantizeGroup
 *                (awqQuantizer.ts) as a correctly rounded float32 one (the min/max clamped as the host
 *                does, the two divisions through div_cr, round() ties-to-even, the fp16 scale rounded on
 *                its bits as scaled_quant does), so equal to the host's bit for bit; slot s = steps holds
 *                the group unchanged, so one GEMM gives the original partial products beside the candidates'.
 *   clip_err     per (step, row): Σ_t (out[t, s·R + r] − out[t, steps·R + r])² over the n tokens, as a
 *                two-float (hi, lo) sum (TwoSum of the difference, Dekker's square), as sq_diff
 *                (search.wgsl.ts): about 2⁻⁴⁰ relative, where the host sums in float64.
 *   clip_argmin  per row, the first step whose two-float error is strictly below every earlier one (the
 *                pairs renormalised, then compared hi first, lo on equal hi), as the host's `e < minErr`
 *                from +∞: a NaN error is never chosen, and a row with none finite keeps step 0.
 *                Written to step[row, g] (u32) of the whole weight.
 * Intermediates of the exact sums sit behind keep() (common.wgsl.ts: TWO_SUM).
 */
import { DIV_CR, FLAT_INDEX, FLOAT_CONSTS, TWO_PRODUCT, TWO_SUM } from './common.wgsl.js';
import { ADD_SQUARED_DIFF, ROUND_F16 } from './search.wgsl.js';

export const CLIP_WG = 64;

/** params: n, cols, gs, g0 (the group's first column). */
export const GATHER_COLS_WGSL = /* wgsl */ `
const WG: u32 = ${CLIP_WG}u;
struct Params { n: u32, cols: u32, gs: u32, g0: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> xg: array<f32>;
${FLAT_INDEX}
@compute @workgroup_size(${CLIP_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat_index(gid, nwg);
  if (j >= p.n * p.gs) { return; }
  xg[j] = x[(j / p.gs) * p.cols + p.g0 + j % p.gs];
}
`;

/**
 * params: R (rows of this chunk), cols, gs, g (group index), r0 (the chunk's first row in the weight part w),
 * row0 (its row in the whole weight), rows (of the whole weight), steps, maxq, f16 (1: the scale rounded
 * through fp16), minRange (as bits), zero (0, div_cr's barrier).
 */
export const CLIP_QUANT_WGSL = /* wgsl */ `
const WG: u32 = ${CLIP_WG}u;
struct Params { R: u32, cols: u32, gs: u32, g: u32, r0: u32, row0: u32, rows: u32, steps: u32, maxq: u32, f16: u32, minRange: u32, zero: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> maxv: array<f32>;
@group(0) @binding(3) var<storage, read_write> cand: array<f32>;
${FLOAT_CONSTS}${FLAT_INDEX}${DIV_CR}
${ROUND_F16}
@compute @workgroup_size(${CLIP_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat_index(gid, nwg);
  if (j >= (p.steps + 1u) * p.R) { return; }
  let s = j / p.R;
  let r = j % p.R;
  let src = (p.r0 + r) * p.cols + p.g * p.gs;
  let dst = j * p.gs;
  if (s == p.steps) {
    for (var c = 0u; c < p.gs; c++) { cand[dst + c] = w[src + c]; }
    return;
  }
  let groups = p.cols / p.gs;
  let mv = maxv[(s * p.rows + p.row0 + r) * groups + p.g];
  var mx = neg_inf();
  var mn = -mx;
  for (var c = 0u; c < p.gs; c++) {
    let v = w[src + c];
    if (v < mn) { mn = v; }
    if (v > mx) { mx = v; }
  }
  // the host's order: lo = min < −mv ? −mv : min > mv ? mv : min, hi = max > mv ? mv : max < −mv ? −mv : max
  let lo = select(select(mn, mv, mn > mv), -mv, mn < -mv);
  let hi = select(select(mx, -mv, mx < -mv), mv, mx > mv);
  let maxq = f32(p.maxq);
  var scale = div_cr(max(hi - lo, bitcast<f32>(p.minRange)), maxq);
  if (p.f16 == 1u) { scale = round_f16(scale); }
  let zero = clamp(-round(div_cr(lo, scale)), 0.0, maxq);
  for (var c = 0u; c < p.gs; c++) {
    let v = w[src + c];
    let x = select(select(v, -mv, v < -mv), mv, v > mv);
    let k = clamp(round(div_cr(x, scale)) + zero, 0.0, maxq);
    cand[dst + c] = scale * (k - zero);
  }
}
`;

/** params: n, R, steps, zero (keep's runtime 0). out is [n, (steps + 1)·R]; errs [steps·R] (hi, lo) pairs. */
export const CLIP_ERR_WGSL = /* wgsl */ `
const WG: u32 = ${CLIP_WG}u;
struct Params { n: u32, R: u32, steps: u32, zero: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> errs: array<f32>;
${FLAT_INDEX}${TWO_SUM}${TWO_PRODUCT}${ADD_SQUARED_DIFF}
@compute @workgroup_size(${CLIP_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat_index(gid, nwg);
  if (j >= p.steps * p.R) { return; }
  let ld = (p.steps + 1u) * p.R;
  let org = p.steps * p.R + j % p.R;
  var acc = vec2f(0.0, 0.0);
  for (var t = 0u; t < p.n; t++) {
    acc = add_squared_diff(acc, out[t * ld + j], out[t * ld + org]);
  }
  let h = keep(acc.x + acc.y); // renormalised: |lo| at most half an ulp of hi, so pairs compare hi first
  errs[2u * j] = h;
  errs[2u * j + 1u] = keep(acc.y - keep(h - acc.x));
}
`;

/** params: R, steps, row0 (the chunk's first row in the whole weight), groups, g. */
export const CLIP_ARGMIN_WGSL = /* wgsl */ `
const WG: u32 = ${CLIP_WG}u;
struct Params { R: u32, steps: u32, row0: u32, groups: u32, g: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> errs: array<f32>;
@group(0) @binding(2) var<storage, read_write> step: array<u32>;
${FLAT_INDEX}
@compute @workgroup_size(${CLIP_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = flat_index(gid, nwg);
  if (r >= p.R) { return; }
  var best = 0u;
  var found = false;
  var bh = 0.0;
  var bl = 0.0;
  for (var s = 0u; s < p.steps; s++) {
    let i = 2u * (s * p.R + r);
    let h = errs[i];
    let l = errs[i + 1u];
    // NaN or infinite (tested on the bits, which no compiler folds): never below the host's +∞ start
    if ((bitcast<u32>(h) & 0x7f800000u) == 0x7f800000u || (bitcast<u32>(l) & 0x7f800000u) == 0x7f800000u) { continue; }
    if (!found || h < bh || (h == bh && l < bl)) { best = s; bh = h; bl = l; found = true; }
  }
  step[(p.row0 + r) * p.groups + p.g] = best;
}
`;
