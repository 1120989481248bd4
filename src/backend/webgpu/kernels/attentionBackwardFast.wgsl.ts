/**
 * The fast (tiled) kernels of attention's backward: the reference's two kernels
 * (attentionBackward.wgsl.ts) with their operands stepped through workgroup memory, as the tiled
 * forward does (attention.wgsl.ts: attentionFlashWgsl).
 *   rows  a workgroup takes BWD_BQ query rows of one head (dispatch [ceil(T / BWD_BQ), H]) and walks
 *         the keys its last row sees three times (statistics m and l, then δ, then dq), in tiles of
 *         `keys` keys of K (and V) loaded once by all its invocations and read by every row.
 *   keys  a workgroup takes BWD_BK key rows of one KV head (dispatch [ceil(S / BWD_BK), KVH]) and, for
 *         each query head of the group, walks the queries that see its first key in tiles of
 *         `queries` rows of q and dout with their [m, l, δ], read by every key row.
 * The reference reads every key (or query) from storage once per query row (or key row). Here each
 * invocation keeps the reference's state for its row (the same private arrays) and updates it term by
 * term in the reference's order (keys ascending; heads, then queries ascending) with the same
 * expressions; a tile only changes where an operand is read from, not its value. So each output is the
 * reference's bit for bit (test/backend/fastAttentionBackward.test.ts checks it).
 * Workgroup memory, at most 16 KiB (WebGPU's default limit; less where the adapter has less): rows
 * 2·keys·HD floats, keys (2·HD + 3)·queries floats, tiles of at most 64 (bwdTiles).
 * attentionBackward.ts falls back to the reference where not even a one-row tile fits (at 16 KiB, HD
 * above 2048 for rows, above 2046 for keys).
 */
import { FLOAT_CONSTS } from './common.wgsl.js';
import { ATTN_BWD_IO } from './attentionBackward.wgsl.js';

/** Query rows per workgroup of the rows kernel, key rows per workgroup of the keys kernel (one per invocation). */
export const BWD_BQ = 64;
export const BWD_BK = 64;
/** Bytes of workgroup memory the tiles may take at most: WebGPU's default limit. */
const TILE_BYTES = 16384;

/** Tile sizes at a head size: keys per K/V tile of the rows kernel, queries per q/dout/stats tile of the keys kernel (0: none fits). */
export interface BwdTiles { keys: number; queries: number }

/** The largest tiles (at most 64 rows) within min(16 KiB, the adapter's workgroup memory): for HD = 16, 64, 128: 64/64, 32/31, 16/15. */
export function bwdTiles(headDim: number, wgBytes: number): BwdTiles {
  const floats = Math.floor(Math.min(TILE_BYTES, wgBytes) / 4);
  return { keys: Math.min(64, Math.floor(floats / (2 * headDim))), queries: Math.min(64, Math.floor(floats / (2 * headDim + 3))) };
}

/** One walk of the rows kernel over the key tiles its block sees; `body` runs per key j of the tile that row t sees. */
const keyWalk = (withV: boolean, body: string) => `for (var s0 = 0u; s0 <= block_last; s0 += BS) {
    load_keys(s0, block_last, kh, li, ${withV});
    workgroupBarrier();
    if (live) {
      let n = min(BS, last + 1u - min(s0, last + 1u)); // keys of this tile that row t sees
      for (var j = 0u; j < n; j++) {
        ${body}
      }
    }
    workgroupBarrier();
  }`;

/** dq[T, H·hd] and stats[T·H, 3] = (m, l, δ), as attentionRowsWgsl. */
export function attentionRowsFastWgsl(headDim: number, keys: number): string {
  const BS = keys;
  return `
const BQ: u32 = ${BWD_BQ}u;
const BS: u32 = ${BS}u;
const HD: u32 = ${headDim}u;
${FLOAT_CONSTS}${ATTN_BWD_IO}@group(0) @binding(5) var<storage, read_write> dq: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
var<workgroup> ks: array<f32, ${BS * headDim}>;
var<workgroup> vs: array<f32, ${BS * headDim}>;

/** Keys s0..s0 + BS − 1 of KV head kh into ks (and v into vs when with_v); zeros past last_key. */
fn load_keys(s0: u32, last_key: u32, kh: u32, li: u32, with_v: bool) {
  for (var e = li; e < BS * HD; e += BQ) {
    let s = s0 + e / HD;
    var kv = 0.0;
    var vv = 0.0;
    if (s <= last_key) {
      let o = s * p.KVH * HD + kh * HD + e % HD;
      kv = k[o];
      if (with_v) { vv = v[o]; }
    }
    ks[e] = kv;
    vs[e] = vv;
  }
}

@compute @workgroup_size(${BWD_BQ})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let t0 = wid.x * BQ;
  let h = wid.y;
  let t = t0 + li;
  let kh = h / (p.H / p.KVH);
  let scale = bitcast<f32>(p.scale);
  let live = t < p.T;
  let qo = t * p.H * HD + h * HD;
  var qv: array<f32, HD>;
  var dov: array<f32, HD>;
  var acc: array<f32, HD>;
  if (live) { for (var i = 0u; i < HD; i++) { qv[i] = q[qo + i]; dov[i] = dout[qo + i]; } }
  let last = p.offset + t;
  let block_last = p.offset + min(t0 + BQ, p.T) - 1u; // the last key any row of this block sees
  var m = neg_inf();
  var l = 0.0;
  ${keyWalk(false, `var d = 0.0;
        for (var i = 0u; i < HD; i++) { d += qv[i] * ks[j * HD + i]; }
        d *= scale;
        var c = 1.0;
        if (d > m) { c = exp(m - d); m = d; }
        l = l * c + exp(d - m);`)}
  let inv = 1.0 / l;
  var delta = 0.0;
  ${keyWalk(true, `var d = 0.0;
        var dp = 0.0;
        for (var i = 0u; i < HD; i++) { d += qv[i] * ks[j * HD + i]; dp += dov[i] * vs[j * HD + i]; }
        delta += exp(d * scale - m) * inv * dp;`)}
  ${keyWalk(true, `var d = 0.0;
        var dp = 0.0;
        for (var i = 0u; i < HD; i++) { d += qv[i] * ks[j * HD + i]; dp += dov[i] * vs[j * HD + i]; }
        let ds = exp(d * scale - m) * inv * (dp - delta) * scale;
        for (var i = 0u; i < HD; i++) { acc[i] += ds * ks[j * HD + i]; }`)}
  if (live) {
    for (var i = 0u; i < HD; i++) { dq[qo + i] = acc[i]; }
    let j = t * p.H + h;
    stats[3u * j] = m;
    stats[3u * j + 1u] = l;
    stats[3u * j + 2u] = delta;
  }
}`;
}

/** dk, dv[S, KVH·hd] from the stats of the rows kernel, as attentionKeysWgsl. */
export function attentionKeysFastWgsl(headDim: number, queries: number): string {
  const BT = queries;
  return `
const BK: u32 = ${BWD_BK}u;
const BT: u32 = ${BT}u;
const HD: u32 = ${headDim}u;
${ATTN_BWD_IO}@group(0) @binding(5) var<storage, read> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
var<workgroup> qs: array<f32, ${BT * headDim}>;
var<workgroup> dos: array<f32, ${BT * headDim}>;
var<workgroup> sts: array<f32, ${3 * BT}>;

/** Query rows tq0..tq0 + BT − 1 of head h: q into qs, dout into dos, their (m, l, δ) into sts; zeros past T. */
fn load_queries(tq0: u32, h: u32, li: u32) {
  for (var e = li; e < BT * HD; e += BK) {
    let t = tq0 + e / HD;
    var qv = 0.0;
    var ov = 0.0;
    if (t < p.T) { let o = t * p.H * HD + h * HD + e % HD; qv = q[o]; ov = dout[o]; }
    qs[e] = qv;
    dos[e] = ov;
  }
  for (var e = li; e < 3u * BT; e += BK) {
    let t = tq0 + e / 3u;
    var x = 0.0;
    if (t < p.T) { x = stats[3u * (t * p.H + h) + e % 3u]; }
    sts[e] = x;
  }
}

@compute @workgroup_size(${BWD_BK})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let s_first = wid.x * BK;
  let kh = wid.y;
  let s = s_first + li;
  let live = s < p.S;
  let group = p.H / p.KVH;
  let ko = s * p.KVH * HD + kh * HD;
  let scale = bitcast<f32>(p.scale);
  var kv: array<f32, HD>;
  var vv: array<f32, HD>;
  var gk: array<f32, HD>;
  var gv: array<f32, HD>;
  if (live) { for (var i = 0u; i < HD; i++) { kv[i] = k[ko + i]; vv[i] = v[ko + i]; } }
  var t0 = 0u; // the first query that sees key s (offset + t ≥ s)
  if (s > p.offset) { t0 = s - p.offset; }
  var t_first = 0u; // the first query that sees the block's first key
  if (s_first > p.offset) { t_first = s_first - p.offset; }
  for (var h = kh * group; h < (kh + 1u) * group; h++) {
    for (var tq0 = t_first; tq0 < p.T; tq0 += BT) {
      load_queries(tq0, h, li);
      workgroupBarrier();
      if (live) {
        let n = min(BT, p.T - tq0);
        for (var j = max(t0, tq0) - tq0; j < n; j++) {
          let st = 3u * j;
          var d = 0.0;
          var dp = 0.0;
          for (var i = 0u; i < HD; i++) { d += qs[j * HD + i] * kv[i]; dp += dos[j * HD + i] * vv[i]; }
          let pr = exp(d * scale - sts[st]) / sts[st + 1u];
          let ds = pr * (dp - sts[st + 2u]) * scale;
          for (var i = 0u; i < HD; i++) { gv[i] += pr * dos[j * HD + i]; gk[i] += ds * qs[j * HD + i]; }
        }
      }
      workgroupBarrier();
    }
  }
  if (live) { for (var i = 0u; i < HD; i++) { dk[ko + i] = gk[i]; dv[ko + i] = gv[i]; } }
}`;
}
