/**
 * The matrix products of the backward (GradOps): y[R, C] (+)= Σ_j a_at(r, j) · b_at(c, j), the
 * tiled kernel of linear.wgsl.ts (64×64 output tile per 16×16 workgroup, 4×4 outputs per
 * invocation, the reduction stepped by 16 through workgroup memory, float32 accumulation in j
 * order) with its operands read through per-variant accessors:
 *   linearT  dx[M, K] = dy[M, N] · W[N, K]: a_at(m, n) = dy[m, n0 + n], b_at(k, n) = w_at(n, k), the
 *            forward's weight decoders read transposed (dense f32/f16/bf16 panels, GPTQ, AWQ); a
 *            weight in row parts runs once per part, each part after the first adding into y (p.acc);
 *   matmulTN dW[N, K] = a[M, N]ᵀ · b[M, K]: a_at(n, m) = a[m, n], b_at(k, m) = b[m, k].
 * Params keep linear's field names because the weight decoders read p.N, p.K, p.bits, p.zw, p.gsize.
 */
import type { WeightDtype } from './common.wgsl.js';
import { AWQ_W_AT, GPTQ_W_AT, LINEAR_TILE, denseWAt } from './linear.wgsl.js';
import { tiledGemm, type TileShape } from './linearFast.wgsl.js';

export const GEMMT_TILE = LINEAR_TILE;
const BK = 16;
const PER = 4;
const THREADS = GEMMT_TILE / PER;

/**
 * linearT: M rows of dy, N = rows of this weight part (the reduction), K = weight columns (output
 * columns), ldy = dy's row length, n0 = this part's first row (dy's column offset).
 * matmulTN: M = the reduction, N = a's columns (output rows), K = b's columns (output columns).
 */
const PARAMS = /* wgsl */ `
struct Params { M: u32, N: u32, K: u32, ldy: u32, n0: u32, bits: u32, groups: u32, zw: u32, gsize: u32, acc: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
`;

const LINEAR_T_ACCESS = /* wgsl */ `
fn out_rows() -> u32 { return p.M; }
fn out_cols() -> u32 { return p.K; }
fn red_len() -> u32 { return p.N; }
fn a_at(m: u32, n: u32) -> f32 { return x[m * p.ldy + p.n0 + n]; }
fn b_at(k: u32, n: u32) -> f32 { return w_at(n, k); }
`;

const MATMUL_TN_ACCESS = /* wgsl */ `
@group(0) @binding(3) var<storage, read> b: array<f32>;
fn out_rows() -> u32 { return p.N; }
fn out_cols() -> u32 { return p.K; }
fn red_len() -> u32 { return p.M; }
fn a_at(n: u32, m: u32) -> f32 { return x[m * p.N + n]; }
fn b_at(k: u32, m: u32) -> f32 { return b[m * p.K + k]; }
`;

// Invocation (ty, tx) owns output rows r0 + ty + 16i and columns c0 + tx + 16j (i, j < 4).
const BODY = /* wgsl */ `
const TILE: u32 = ${GEMMT_TILE}u;
const BK: u32 = ${BK}u;
const T: u32 = ${THREADS}u;
var<workgroup> tile_a: array<f32, ${GEMMT_TILE * BK}>;
var<workgroup> tile_b: array<f32, ${GEMMT_TILE * BK}>;

@compute @workgroup_size(${THREADS}, ${THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let R = out_rows();
  let C = out_cols();
  let J = red_len();
  let r0 = wid.y * TILE;
  let c0 = wid.x * TILE;
  var acc: array<f32, ${PER * PER}>;
  for (var j0 = 0u; j0 < J; j0 += BK) {
    for (var e = 0u; e < ${(GEMMT_TILE * BK) / (THREADS * THREADS)}u; e++) {
      let idx = li + e * T * T;
      let r = idx / BK;
      let j = j0 + idx % BK;
      var av = 0.0;
      if (r0 + r < R && j < J) { av = a_at(r0 + r, j); }
      tile_a[idx] = av;
      var bv = 0.0;
      if (c0 + r < C && j < J) { bv = b_at(c0 + r, j); }
      tile_b[idx] = bv;
    }
    workgroupBarrier();
    let jn = min(BK, J - j0);
    for (var jj = 0u; jj < jn; jj++) {
      var a: array<f32, ${PER}>;
      var bb: array<f32, ${PER}>;
      for (var i = 0u; i < ${PER}u; i++) { a[i] = tile_a[(lid.y + T * i) * BK + jj]; bb[i] = tile_b[(lid.x + T * i) * BK + jj]; }
      for (var i = 0u; i < ${PER}u; i++) {
        for (var q = 0u; q < ${PER}u; q++) { acc[i * ${PER}u + q] += a[i] * bb[q]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${PER}u; i++) {
    let r = r0 + lid.y + T * i;
    for (var q = 0u; q < ${PER}u; q++) {
      let c = c0 + lid.x + T * q;
      if (r < R && c < C) {
        var v = acc[i * ${PER}u + q];
        if (p.acc == 1u) { v = y[r * C + c] + v; }
        y[r * C + c] = v;
      }
    }
  }
}
`;

export type LinearTVariant = WeightDtype | 'gptq' | 'awq';

/** linearT with the weight read by its stored dtype or kind (binding 3 on). */
export function linearTWgsl(v: LinearTVariant): string {
  const dec = v === 'gptq' ? GPTQ_W_AT : v === 'awq' ? AWQ_W_AT : denseWAt(v);
  return `${PARAMS}${dec}${LINEAR_T_ACCESS}${BODY}`;
}

/**
 * linearT with a weight decoder `fn w_at(n, k) -> f32` given by the caller (its buffers from binding 3): the
 * reference body, or the fast tiled one with `tile`.
 */
export function linearTWithDecoder(wAt: string, tile?: TileShape): string {
  return tile ? linearTFastBody(wAt, tile) : `${PARAMS}${wAt}${LINEAR_T_ACCESS}${BODY}`;
}

export const MATMUL_TN_WGSL = `${PARAMS}${MATMUL_TN_ACCESS}${BODY}`;

/** Adds into the output when p.acc is 1 (a weight's later row parts), else writes. */
const STORE_ACC = 'let o = r * C + c; if (p.acc == 1u) { y[o] = y[o] + v; } else { y[o] = v; }';

/**
 * The fast versions: the same products through the fast tiled GEMM (linearFast.wgsl.ts: tiledGemm),
 * float32 sums in the same j order as the reference. linearT reads dy along its rows and the weight
 * along k (contiguous for a dense panel); matmulTN reads both operands along their rows.
 */
export function linearTFastWgsl(v: LinearTVariant, tile: TileShape): string {
  return linearTFastBody(v === 'gptq' ? GPTQ_W_AT : v === 'awq' ? AWQ_W_AT : denseWAt(v), tile);
}

function linearTFastBody(dec: string, tile: TileShape): string {
  return `${PARAMS}${dec}${tiledGemm(tile, {
    rows: 'p.M', cols: 'p.K', red: 'p.N', bRowFast: true,
    a: (r, j) => `x[(${r}) * p.ldy + p.n0 + ${j}]`, b: (c, j) => `w_at(${j}, ${c})`, store: STORE_ACC,
  })}`;
}

export function matmulTNFastWgsl(tile: TileShape): string {
  return `${PARAMS}
@group(0) @binding(3) var<storage, read> b: array<f32>;
${tiledGemm(tile, {
    rows: 'p.N', cols: 'p.K', red: 'p.M', aRowFast: true, bRowFast: true,
    a: (r, j) => `x[(${j}) * p.N + ${r}]`, b: (c, j) => `b[(${j}) * p.K + ${c}]`, store: STORE_ACC,
  })}`;
}
