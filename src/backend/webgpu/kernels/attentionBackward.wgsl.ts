/**
 * Gradients of causal grouped-query attention (attention.wgsl.ts), without float atomics: two
 * kernels, each output element written by one invocation.
 *   rows  one invocation per (query row t, head h): the row's softmax statistics (max m and sum l
 *         by the forward's online recurrence), then δ = Σ_s p_s·(dout·v_s), then
 *         dq = scale·Σ_s p_s·(dout·v_s − δ)·k_s, over keys 0..offset+t; writes dq and [m, l, δ].
 *   keys  one invocation per (key row s, KV head kh): over the query heads of the group and the
 *         queries that see s (offset + t ≥ s), p = exp(scale·q·k_s − m)/l from the stats,
 *         dv_s += p·dout, dk_s += scale·p·(dout·v_s − δ)·q.
 * Float32 throughout (the CPU reference is float64); scale = 1/sqrt(hd); HD is a define, as in the
 * forward, sizing the private accumulators.
 */
import { FLAT_INDEX, FLOAT_CONSTS } from './common.wgsl.js';

export const ATTN_BWD_WG = 64;

/**
 * Parameters and inputs shared with the tiled kernels (attentionBackwardFast.wgsl.ts): q and dout
 * [T, H·HD], k and v [S, KVH·HD]; outputs from binding 5.
 */
export const ATTN_BWD_IO = /* wgsl */ `
struct Params { T: u32, S: u32, H: u32, KVH: u32, offset: u32, scale: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
`;

const HEAD = (headDim: number) => `
const WG: u32 = ${ATTN_BWD_WG}u;
const HD: u32 = ${headDim}u;
${FLAT_INDEX}${FLOAT_CONSTS}${ATTN_BWD_IO}`;

/** dq[T, H·hd] and stats[T·H, 3] = (m, l, δ) per (t, h). */
export function attentionRowsWgsl(headDim: number): string {
  return `${HEAD(headDim)}
@group(0) @binding(5) var<storage, read_write> dq: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@compute @workgroup_size(${ATTN_BWD_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat_index(gid, nwg);
  if (j >= p.T * p.H) { return; }
  let t = j / p.H;
  let h = j % p.H;
  let kh = h / (p.H / p.KVH);
  let qo = t * p.H * HD + h * HD;
  let kw = p.KVH * HD;
  let scale = bitcast<f32>(p.scale);
  var qv: array<f32, HD>;
  var dov: array<f32, HD>;
  var acc: array<f32, HD>;
  for (var i = 0u; i < HD; i++) { qv[i] = q[qo + i]; dov[i] = dout[qo + i]; }
  let last = p.offset + t;
  var m = neg_inf();
  var l = 0.0;
  for (var s = 0u; s <= last; s++) {
    let ko = s * kw + kh * HD;
    var d = 0.0;
    for (var i = 0u; i < HD; i++) { d += qv[i] * k[ko + i]; }
    d *= scale;
    var c = 1.0;
    if (d > m) { c = exp(m - d); m = d; }
    l = l * c + exp(d - m);
  }
  let inv = 1.0 / l;
  var delta = 0.0;
  for (var s = 0u; s <= last; s++) {
    let ko = s * kw + kh * HD;
    var d = 0.0;
    var dp = 0.0;
    for (var i = 0u; i < HD; i++) { d += qv[i] * k[ko + i]; dp += dov[i] * v[ko + i]; }
    delta += exp(d * scale - m) * inv * dp;
  }
  for (var s = 0u; s <= last; s++) {
    let ko = s * kw + kh * HD;
    var d = 0.0;
    var dp = 0.0;
    for (var i = 0u; i < HD; i++) { d += qv[i] * k[ko + i]; dp += dov[i] * v[ko + i]; }
    let ds = exp(d * scale - m) * inv * (dp - delta) * scale;
    for (var i = 0u; i < HD; i++) { acc[i] += ds * k[ko + i]; }
  }
  for (var i = 0u; i < HD; i++) { dq[qo + i] = acc[i]; }
  stats[3u * j] = m;
  stats[3u * j + 1u] = l;
  stats[3u * j + 2u] = delta;
}`;
}

/** dk, dv[S, KVH·hd] from the stats of the rows kernel. */
export function attentionKeysWgsl(headDim: number): string {
  return `${HEAD(headDim)}
@group(0) @binding(5) var<storage, read> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
@compute @workgroup_size(${ATTN_BWD_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat_index(gid, nwg);
  if (j >= p.S * p.KVH) { return; }
  let s = j / p.KVH;
  let kh = j % p.KVH;
  let group = p.H / p.KVH;
  let kw = p.KVH * HD;
  let ko = s * kw + kh * HD;
  let scale = bitcast<f32>(p.scale);
  var kv: array<f32, HD>;
  var vv: array<f32, HD>;
  var gk: array<f32, HD>;
  var gv: array<f32, HD>;
  for (var i = 0u; i < HD; i++) { kv[i] = k[ko + i]; vv[i] = v[ko + i]; }
  var t0 = 0u;
  if (s > p.offset) { t0 = s - p.offset; }
  for (var h = kh * group; h < (kh + 1u) * group; h++) {
    for (var t = t0; t < p.T; t++) {
      let qo = t * p.H * HD + h * HD;
      let st = 3u * (t * p.H + h);
      var d = 0.0;
      var dp = 0.0;
      for (var i = 0u; i < HD; i++) { d += q[qo + i] * kv[i]; dp += dout[qo + i] * vv[i]; }
      let pr = exp(d * scale - stats[st]) / stats[st + 1u];
      let ds = pr * (dp - stats[st + 2u]) * scale;
      for (var i = 0u; i < HD; i++) { gv[i] += pr * dout[qo + i]; gk[i] += ds * q[qo + i]; }
    }
  }
  for (var i = 0u; i < HD; i++) { dk[ko + i] = gk[i]; dv[ko + i] = gv[i]; }
}`;
}
