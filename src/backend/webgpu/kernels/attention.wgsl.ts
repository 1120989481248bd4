/**
 * Causal grouped-query attention, the reference kernel: one invocation per (query row t, head h)
 * walks keys 0..offset+t once with an online softmax (running max m, running sum l, output
 * accumulator rescaled when the max grows), so no score matrix exists at all, not even a tile.
 * Scores scaled by 1/sqrt(hd); head h reads KV head floor(h / (H / KVH)). HD (the head size) is a
 * define: the accumulator is a private array of that length.
 */
import { FLAT_INDEX, FLOAT_CONSTS } from './common.wgsl.js';

export const ATTENTION_WG = 64;

/** Both kernels' parameters and buffers: q [T, H·HD], k and v [S, KVH·HD] (S = offset + T), the output y like q. */
const ATTENTION_IO = `struct Params { T: u32, H: u32, KVH: u32, offset: u32, scale: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
`;

export function attentionWgsl(headDim: number): string {
  return `
const WG: u32 = ${ATTENTION_WG}u;
const HD: u32 = ${headDim}u;
${FLAT_INDEX}${FLOAT_CONSTS}
${ATTENTION_IO}@compute @workgroup_size(${ATTENTION_WG})
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

/** Query rows per workgroup of the tiled attention, and its K/V tile size (keys) for a head size. */
export const FLASH_BQ = 64;
export function flashKeys(headDim: number): number {
  return Math.max(1, Math.min(64, Math.floor(2048 / headDim))); // K and V tiles: 2·keys·HD·4 ≤ 16 KiB
}

/**
 * The fast attention kernel (flash-attention style): a workgroup takes FLASH_BQ query rows of one
 * head (dispatch [ceil(T / FLASH_BQ), H]) and walks the keys its last row sees in tiles of
 * flashKeys(HD) keys, each tile of K and V loaded once into workgroup memory by all its invocations
 * and read by every query row of the block (the reference reads each key once per query row from
 * storage). Each invocation keeps the reference's per-row state (running max, running sum,
 * accumulator) and updates it key by key in the same order with the same arithmetic, so no score
 * matrix and no [T, T] tile exists, and the result is the reference's.
 */
export function attentionFlashWgsl(headDim: number): string {
  const BS = flashKeys(headDim);
  return `
const BQ: u32 = ${FLASH_BQ}u;
const BS: u32 = ${BS}u;
const HD: u32 = ${headDim}u;
${FLOAT_CONSTS}
${ATTENTION_IO}var<workgroup> ks: array<f32, ${BS * headDim}>;
var<workgroup> vs: array<f32, ${BS * headDim}>;

@compute @workgroup_size(${FLASH_BQ})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let t0 = wid.x * BQ;
  let h = wid.y;
  let t = t0 + li;
  let kh = h / (p.H / p.KVH);
  let kw = p.KVH * HD;
  let scale = bitcast<f32>(p.scale);
  let live = t < p.T;
  let qo = t * p.H * HD + h * HD;
  var acc: array<f32, HD>;
  var qv: array<f32, HD>;
  if (live) { for (var i = 0u; i < HD; i++) { qv[i] = q[qo + i]; } }
  var m = neg_inf();
  var l = 0.0;
  let last = p.offset + t;
  let block_last = p.offset + min(t0 + BQ, p.T) - 1u; // the last key any row of this block sees
  for (var s0 = 0u; s0 <= block_last; s0 += BS) {
    for (var e = li; e < BS * HD; e += BQ) {
      let s = s0 + e / HD;
      var kv = 0.0;
      var vv = 0.0;
      if (s <= block_last) { let o = s * kw + kh * HD + e % HD; kv = k[o]; vv = v[o]; }
      ks[e] = kv;
      vs[e] = vv;
    }
    workgroupBarrier();
    if (live) {
      let n = min(BS, last + 1u - min(s0, last + 1u)); // keys of this tile that row t sees
      for (var j = 0u; j < n; j++) {
        var d = 0.0;
        for (var i = 0u; i < HD; i++) { d += qv[i] * ks[j * HD + i]; }
        d *= scale;
        var c = 1.0;
        if (d > m) { c = exp(m - d); m = d; }
        let ex = exp(d - m);
        l = l * c + ex;
        for (var i = 0u; i < HD; i++) { acc[i] = acc[i] * c + ex * vs[j * HD + i]; }
      }
    }
    workgroupBarrier();
  }
  if (live) {
    let inv = 1.0 / l;
    for (var i = 0u; i < HD; i++) { y[qo + i] = acc[i] * inv; }
  }
}`;
}
