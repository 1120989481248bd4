/**
 * GPTQ's solve on the device, in float32 as gptq.py's `fasterquant` runs it (Frantar et al.'s reference
 * keeps W, H and every update in float32). The host's solve (quant/methods/gptq.ts) is float64; these
 * kernels are the `--device-solve` option. Layout: row-major, n = the layer's input columns in
 * processing order (act-order applied on the host).
 *
 * Hinv, the upper Cholesky factor of H⁻¹, is never formed: with J the reversal, J·H·J = L·Lᵀ and
 * Hinv = J·L⁻¹·J (the host's route, linalg.ts), so the host uploads J·H·J, the device factors it in place
 * (right-looking: per column a pivot step, then a rank-1 update of the trailing lower triangle) and
 * inverts L by forward substitution into X (per row k: X[k, :k] /= L[k, k], then a rank-1 update of the
 * rows below), and the solve reads Hinv[a, b] as X[n−1−a, n−1−b]. Each X[i, c] is the js reference's
 * triangularInverse sum in its order (0 − Σ_{k=c}^{i−1} L[i, k]·X[k, c], then / L[i, i]).
 *
 * The column loop: one invocation per row of W walks a block of `count` columns as gptq.py does (code =
 * clamp(round(w / s) + z, 0, maxq), q = s·(code − z), err = (w − q) / d, the rest of the block's row
 * −= err·Hinv[col, ·]); the division w / s is correctly rounded (div_cr, as the host's Math.fround), since a
 * code is decided by it, and round() is WGSL's ties-to-even, as the host's. The lazy batch update
 * W[:, i2:] −= Err·Hinv[i1:i2, i2:] is one invocation per weight, its products summed in k order.
 */
import { DIV_CR, FLAT_INDEX, FLOAT_CONSTS } from './common.wgsl.js';

export const CHOL_WG = 256;
export const TILE = 16;
export const ROW_WG = 64;

/** Pivot step of column j: L[j, j] = √A[j, j] (status = 1 if it is not > 0 and finite), L[i, j] = A[i, j] / L[j, j] below. */
export const CHOL_COL_WGSL = /* wgsl */ `
${FLOAT_CONSTS}
struct Params { n: u32, j: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> status: array<u32>;
var<workgroup> piv: f32;

@compute @workgroup_size(${CHOL_WG})
fn main(@builtin(local_invocation_index) li: u32) {
  let n = p.n;
  let j = p.j;
  if (li == 0u) {
    let d = A[j * n + j];
    var s = 1.0;
    if (d > 0.0 && d <= MAX_F32) { s = sqrt(d); } else { status[0] = 1u; }
    A[j * n + j] = s;
    piv = s;
  }
  workgroupBarrier();
  let s = workgroupUniformLoad(&piv);
  for (var i = j + 1u + li; i < n; i += ${CHOL_WG}u) { A[i * n + j] = A[i * n + j] / s; }
}
`;

/**
 * Rank-1 update after column j: A[i, k] −= L[i, j]·L[k, j] for j < k ≤ i < n; one TILE×TILE workgroup per
 * tile on or below the diagonal of the trailing triangle (tile t = ti·(ti + 1)/2 + tc, tc ≤ ti; the
 * workgroups are folded into x·y as GpuDevice.dispatch does).
 */
export const CHOL_UPDATE_WGSL = /* wgsl */ `
const WG: u32 = ${TILE * TILE}u;
${FLAT_INDEX}
struct Params { n: u32, j: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;

@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = flat_group(wid, nwg);
  var ti = u32((sqrt(8.0 * f32(t) + 1.0) - 1.0) / 2.0);
  while ((ti + 1u) * (ti + 2u) / 2u <= t) { ti++; }
  while (ti * (ti + 1u) / 2u > t) { ti--; }
  let tc = t - ti * (ti + 1u) / 2u;
  let n = p.n;
  let j = p.j;
  let k = j + 1u + tc * ${TILE}u + lid.x;
  let i = j + 1u + ti * ${TILE}u + lid.y;
  if (i >= n || k > i) { return; }
  A[i * n + k] = A[i * n + k] - A[i * n + j] * A[k * n + j];
}
`;

/** Forward substitution, row k: X[k, c] = X[k, c] / L[k, k] for c ≤ k (X starts as I; rows above are final). */
export const TRI_SCALE_WGSL = /* wgsl */ `
const WG: u32 = ${ROW_WG}u;
${FLAT_INDEX}
struct Params { n: u32, k: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read_write> X: array<f32>;

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = flat_index(gid, nwg);
  let n = p.n;
  let k = p.k;
  if (c > k) { return; }
  X[k * n + c] = X[k * n + c] / L[k * n + k];
}
`;

/** Forward substitution after row k: X[i, c] −= L[i, k]·X[k, c] for k < i < n, c ≤ k. */
export const TRI_UPDATE_WGSL = /* wgsl */ `
struct Params { n: u32, k: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read_write> X: array<f32>;

@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n = p.n;
  let k = p.k;
  let c = gid.x;
  let i = k + 1u + gid.y;
  if (i >= n || c > k) { return; }
  X[i * n + c] = X[i * n + c] - L[i * n + k] * X[k * n + c];
}
`;

/** X = I on the lower triangle (the forward substitution's right-hand side); one invocation per row. */
export const TRI_INIT_WGSL = /* wgsl */ `
const WG: u32 = ${ROW_WG}u;
${FLAT_INDEX}
struct Params { n: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  for (var c = 0u; c <= i; c++) { X[i * p.n + c] = select(0.0, 1.0, c == i); }
}
`;

/** Hinv[a, b] from X (see the file's comment); needs p.n and p.last = n − 1. */
const HINV = /* wgsl */ `
fn hinv(a: u32, b: u32) -> f32 { return X[(p.last - a) * p.n + (p.last - b)]; }
`;

/**
 * One gptq.py block of `count` columns from i1, one invocation per row: codes, q, the block's errors
 * (E [rows, count]) and the row's Σ err² / 2 (added to loss[r]). group[c] is column c's slot in the
 * parameters: sz holds the scales [slot][row], then from p.zoff the zero points (8 storage bindings, the
 * least WebGPU promises).
 */
export const GPTQ_BLOCK_WGSL = /* wgsl */ `
${FLOAT_CONSTS}
const WG: u32 = ${ROW_WG}u;
${FLAT_INDEX}
struct Params { rows: u32, n: u32, last: u32, i1: u32, count: u32, maxq: u32, zero: u32, zoff: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> group: array<u32>;
@group(0) @binding(4) var<storage, read> sz: array<f32>;
@group(0) @binding(5) var<storage, read_write> codes: array<u32>;
@group(0) @binding(6) var<storage, read_write> Q: array<f32>;
@group(0) @binding(7) var<storage, read_write> E: array<f32>;
@group(0) @binding(8) var<storage, read_write> loss: array<f32>;
${HINV}
${DIV_CR}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = flat_index(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.n;
  let maxq = f32(p.maxq);
  var acc = 0.0;
  for (var i = 0u; i < p.count; i++) {
    let col = p.i1 + i;
    let w = W[base + col];
    let g = group[col] * p.rows + r;
    let s = sz[g];
    let z = sz[p.zoff + g];
    let code = clamp(round(div_cr(w, s)) + z, 0.0, maxq);
    let q = s * (code - z);
    let err = (w - q) / hinv(col, col);
    codes[base + col] = u32(code);
    Q[base + col] = q;
    E[r * p.count + i] = err;
    acc = acc + err * err / 2.0;
    for (var j = i + 1u; j < p.count; j++) {
      W[base + p.i1 + j] = W[base + p.i1 + j] - err * hinv(col, p.i1 + j);
    }
  }
  loss[r] = loss[r] + acc;
}
`;

/** The lazy batch update after a block: W[r, i2 + c] −= Σ_k E[r, k]·Hinv[i1 + k, i2 + c], k ascending. */
export const GPTQ_LAZY_WGSL = /* wgsl */ `
struct Params { rows: u32, n: u32, last: u32, i1: u32, count: u32, i2: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> E: array<f32>;
${HINV}

@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let col = p.i2 + gid.x;
  let r = gid.y;
  if (col >= p.n || r >= p.rows) { return; }
  var s = 0.0;
  for (var k = 0u; k < p.count; k++) { s = s + E[r * p.count + k] * hinv(p.i1 + k, col); }
  W[r * p.n + col] = W[r * p.n + col] - s;
}
`;

/** Per row, min and max of W[r, c0 .. c0 + gs) (a dynamic group's range at its block's start): out [2][rows]. */
export const GPTQ_RANGE_WGSL = /* wgsl */ `
const WG: u32 = ${ROW_WG}u;
${FLAT_INDEX}
struct Params { rows: u32, n: u32, c0: u32, gs: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = flat_index(gid, nwg);
  if (r >= p.rows) { return; }
  var lo = W[r * p.n + p.c0];
  var hi = lo;
  for (var c = 1u; c < p.gs; c++) {
    let x = W[r * p.n + p.c0 + c];
    if (x < lo) { lo = x; }
    if (x > hi) { hi = x; }
  }
  out[r] = lo;
  out[p.rows + r] = hi;
}
`;
