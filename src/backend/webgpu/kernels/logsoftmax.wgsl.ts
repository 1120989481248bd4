/**
 * Per-row log-softmax parts of logits[T, C], one workgroup per row, for nll and logSoftmaxParts.
 * WGSL has no float64, so the row's Σ exp(x − max) is accumulated as a two-float (hi, lo) pair:
 * each invocation sums its strided share with TwoSum (Knuth), the pairs combine in a fixed tree,
 * and the host finishes lse = max + log(hi + lo) in float64. Output per row: [max, hi, lo, x[pick]]
 * (pick: a column the host chose, the target's when it lies in this chunk).
 */
import { FLAT_INDEX, FLOAT_CONSTS, TWO_SUM } from './common.wgsl.js';

export const LSM_WG = 64;

export const LOGSOFTMAX_WGSL = `
const WG: u32 = ${LSM_WG}u;
${FLAT_INDEX}${FLOAT_CONSTS}
struct Params { T: u32, C: u32, zero: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> pick: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
var<workgroup> part_hi: array<f32, ${LSM_WG}>;
var<workgroup> part_lo: array<f32, ${LSM_WG}>;

${TWO_SUM}
@compute @workgroup_size(${LSM_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = flat_group(wid, nwg);
  if (row >= p.T) { return; }
  let o = row * p.C;
  var mx = neg_inf();
  for (var j = lid.x; j < p.C; j += WG) { let v = x[o + j]; if (v > mx) { mx = v; } }
  part_hi[lid.x] = mx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s && part_hi[lid.x + s] > part_hi[lid.x]) { part_hi[lid.x] = part_hi[lid.x + s]; }
    workgroupBarrier();
  }
  mx = part_hi[0];
  workgroupBarrier();
  var hi = 0.0;
  var lo = 0.0;
  if (abs(mx) <= MAX_F32) {
    for (var j = lid.x; j < p.C; j += WG) {
      let r = two_sum(hi, exp(x[o + j] - mx));
      hi = r.x;
      lo += r.y;
    }
  }
  part_hi[lid.x] = hi;
  part_lo[lid.x] = lo;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      let r = two_sum(part_hi[lid.x], part_hi[lid.x + s]);
      part_hi[lid.x] = r.x;
      part_lo[lid.x] = part_lo[lid.x] + part_lo[lid.x + s] + r.y;
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    out[row * 4u] = mx;
    out[row * 4u + 1u] = part_hi[0];
    out[row * 4u + 2u] = part_lo[0];
    out[row * 4u + 3u] = x[o + pick[row]];
  }
}`;

/**
 * crossEntropyGrad: d[t, j] = w[t] · (exp(x[t, j] − lse[t]) − [j = target[t]]), zero rows where
 * w[t] = 0; one invocation per element. The float64 lse arrives as two floats (hi, lo) per row and
 * is subtracted in two steps, (x − hi) − lo, so the exponent keeps what one float32 lse would lose.
 */
export const CROSS_ENTROPY_GRAD_WGSL = `
const WG: u32 = 256u;
${FLAT_INDEX}
struct Params { T: u32, V: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> lse: array<vec2f>;
@group(0) @binding(3) var<storage, read> tgt: array<u32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read_write> d: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i >= p.T * p.V) { return; }
  let t = i / p.V;
  let wt = w[t];
  if (wt == 0.0) { d[i] = 0.0; return; }
  let l = lse[t];
  var e = exp((x[i] - l.x) - l.y);
  if (i % p.V == tgt[t]) { e = e - 1.0; }
  d[i] = wt * e;
}`;
