/**
 * Causal grouped-query attention, the reference kernel: one invocation per (query row t, head h)
 * walks keys 0..offset+t once with an online softmax (running max m, running sum l, output
 * accumulator rescaled when the max grows), so no score matrix exists at all, not even a tile.
 * Scores scaled by 1/sqrt(hd); head h reads KV head floor(h / (H / KVH)). HD (the head size) is a
 * define: the accumulator is a private array of that length.
 */
import { FLAT_INDEX, FLOAT_CONSTS } from './common.wgsl.js';

export const ATTENTION_WG = 64;

export function attentionWgsl(headDim: number): string {
  return `
const WG: u32 = ${ATTENTION_WG}u;
const HD: u32 = ${headDim}u;
${FLAT_INDEX}${FLOAT_CONSTS}
struct Params { T: u32, H: u32, KVH: u32, offset: u32, scale: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${ATTENTION_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat_index(gid, nwg);
  if (j >= p.T * p.H) { return; }
  let t = j / p.H;
  let h = j % p.H;
  let kh = h / (p.H / p.KVH);
  let qo = t * p.H * HD + h * HD;
  let kw = p.KVH * HD;
  let scale = bitcast<f32>(p.scale);
  var acc: array<f32, HD>;
  var qv: array<f32, HD>;
  for (var i = 0u; i < HD; i++) { qv[i] = q[qo + i]; }
  var m = neg_inf();
  var l = 0.0;
  let last = p.offset + t;
  for (var s = 0u; s <= last; s++) {
    let ko = s * kw + kh * HD;
    var d = 0.0;
    for (var i = 0u; i < HD; i++) { d += qv[i] * k[ko + i]; }
    d *= scale;
    var c = 1.0;
    if (d > m) { c = exp(m - d); m = d; }
    let e = exp(d - m);
    l = l * c + e;
    for (var i = 0u; i < HD; i++) { acc[i] = acc[i] * c + e * v[ko + i]; }
  }
  let inv = 1.0 / l;
  for (var i = 0u; i < HD; i++) { y[qo + i] = acc[i] * inv; }
}`;
}
