/**
 * GPTQ's solve on the device, in float32 as gptq.py's `fasterquant` runs it (Frantar et al.'s reference
 * keeps W, H and every update in float32). The host's solve (quant/methods/gptq.ts) is float64; these
 * kernels are the `--device-solve` option. Layout: row-major, n = the layer's input columns in
 * processing order (act-order applied on the host).
 *
 * Hinv, the upper Cholesky factor of H⁻¹, is never formed: with J the reversal, J·H·J = L·Lᵀ and
 * Hinv = J·L⁻¹·J (the host's route, linalg.ts), so the host uploads H, one dispatch reverses it in place
 * (REVERSE_WGSL: J·H·J is the flat array reversed), the device factors it in place
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

/** A[k] ↔ A[m − 1 − k] for k < m / 2: the flat [n, n] array reversed in place (J·H·J). */
export const REVERSE_WGSL = /* wgsl */ `
const WG: u32 = ${ROW_WG}u;
${FLAT_INDEX}
struct Params { m: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = flat_index(gid, nwg);
  if (k >= p.m / 2u) { return; }
  let t = A[k];
  A[k] = A[p.m - 1u - k];
  A[p.m - 1u - k] = t;
}
`;

/** Tile t of a lower triangle of tiles, row by row (t = ti·(ti + 1)/2 + tc, tc ≤ ti): (ti, tc). */
const LOWER_TILE = /* wgsl */ `
fn lower_tile(t: u32) -> vec2u {
  var ti = u32((sqrt(8.0 * f32(t) + 1.0) - 1.0) / 2.0);
  while ((ti + 1u) * (ti + 2u) / 2u <= t) { ti++; }
  while (ti * (ti + 1u) / 2u > t) { ti--; }
  return vec2u(ti, t - ti * (ti + 1u) / 2u);
}
`;

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
${LOWER_TILE}
struct Params { n: u32, j: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;

@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tt = lower_tile(flat_group(wid, nwg));
  let ti = tt.x;
  let tc = tt.y;
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

/** Columns per panel of the blocked factorization and inverse (the fast kernels). */
export const NB = 32;
/** Invocations per workgroup of the panel kernel (one per row below the panel). */
export const PANEL_WG = 64;

/**
 * What the two panel kernels share: NB, the workgroup size WG, the Params (n, the panel's first column k0, its
 * width nb ≤ NB, its slot blk in D), `decls` (bindings and workgroup variables), and main's signature with n, k0
 * and nb bound; `body` is main's rest.
 */
function panelKernel(wg: number, decls: string, body: string): string {
  return /* wgsl */ `
${FLOAT_CONSTS}
const WG: u32 = ${wg}u;
const NB: u32 = ${NB}u;
${FLAT_INDEX}
struct Params { n: u32, k0: u32, nb: u32, blk: u32 };
@group(0) @binding(0) var<uniform> p: Params;
${decls}

@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let n = p.n;
  let k0 = p.k0;
  let nb = p.nb;
${body}}
`;
}


/**
 * Blocked Cholesky, the panel of columns k0 .. k0 + nb (nb ≤ NB): every workgroup loads the diagonal block
 * A[k0.., k0..] into workgroup memory and factors it there (the unblocked steps: pivot √d, column / pivot,
 * rank-1 update, in the same order; status = 1 on a pivot that is not > 0 and finite); workgroup 0 writes that
 * factor L11 to D (slot `blk`, NB×NB row-major, zeros above the diagonal; A's diagonal block is left as it was,
 * since every workgroup reads it); each invocation then solves one row i below the panel in place,
 * L[i, k0 + j] = (A[i, k0 + j] − Σ_{m<j} L[i, k0 + m]·L11[j, m]) / L11[j, j], the products subtracted in m order,
 * exactly the sequence of the unblocked right-looking steps for that entry.
 */
export const CHOL_PANEL_WGSL = panelKernel(PANEL_WG, /* wgsl */ `
@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> D: array<f32>;
@group(0) @binding(3) var<storage, read_write> status: array<u32>;
var<workgroup> d: array<f32, ${NB * NB}>;`, /* wgsl */ `
  for (var e = li; e < NB * NB; e += WG) {
    let r = e / NB;
    let c = e % NB;
    var v = 0.0;
    if (r < nb && c <= r) { v = A[(k0 + r) * n + k0 + c]; }
    d[e] = v;
  }
  workgroupBarrier();
  var bad = false;
  for (var j = 0u; j < nb; j++) {
    let dj = d[j * NB + j];
    var s = 1.0;
    if (dj > 0.0 && dj <= MAX_F32) { s = sqrt(dj); } else { bad = true; }
    workgroupBarrier();
    if (li == 0u) { d[j * NB + j] = s; }
    for (var i = j + 1u + li; i < nb; i += WG) { d[i * NB + j] = d[i * NB + j] / s; }
    workgroupBarrier();
    let m = nb - j - 1u;
    for (var e = li; e < m * m; e += WG) {
      let i = j + 1u + e / m;
      let k = j + 1u + e % m;
      if (k <= i) { d[i * NB + k] = d[i * NB + k] - d[i * NB + j] * d[k * NB + j]; }
    }
    workgroupBarrier();
  }
  if (flat_group(wid, nwg) == 0u) {
    if (li == 0u && bad) { status[0] = 1u; }
    for (var e = li; e < NB * NB; e += WG) { D[p.blk * NB * NB + e] = d[e]; }
  }
  let i = k0 + nb + flat_index(gid, nwg);
  if (i >= n) { return; }
  var x: array<f32, ${NB}>;
  for (var j = 0u; j < nb; j++) {
    var v = A[i * n + k0 + j];
    for (var m = 0u; m < j; m++) { v = v - x[m] * d[j * NB + m]; }
    x[j] = v / d[j * NB + j];
    A[i * n + k0 + j] = x[j];
  }
`);

/**
 * Blocked Cholesky, the trailing update after a panel: A[i, k] −= L[i, k0 + m]·L[k, k0 + m] for m ascending
 * (one subtraction per product, the unblocked order) on start ≤ k ≤ i < n, start = k0 + nb. One workgroup of
 * 16×16 per NB×NB tile on or below the diagonal (tile t = ti·(ti + 1)/2 + tc), each invocation 2×2 entries; the
 * two panels' rows staged in workgroup memory (the column tile's transposed, so reads run along banks).
 */
export const CHOL_SYRK_WGSL = /* wgsl */ `
const NB: u32 = ${NB}u;
const WG: u32 = 256u;
${FLAT_INDEX}
${LOWER_TILE}
struct Params { n: u32, k0: u32, nb: u32, start: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;
var<workgroup> li_: array<f32, ${NB * NB}>;
var<workgroup> lkT: array<f32, ${NB * NB}>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) lx: u32) {
  let tt = lower_tile(flat_group(wid, nwg));
  let ti = tt.x;
  let tc = tt.y;
  let n = p.n;
  let k0 = p.k0;
  let nb = p.nb;
  let i0 = p.start + ti * NB;
  let c0 = p.start + tc * NB;
  for (var e = lx; e < NB * NB; e += 256u) {
    let r = e / NB;
    let m = e % NB;
    var a = 0.0;
    var b = 0.0;
    if (m < nb && i0 + r < n) { a = A[(i0 + r) * n + k0 + m]; }
    if (m < nb && c0 + r < n) { b = A[(c0 + r) * n + k0 + m]; }
    li_[e] = a;
    lkT[m * NB + r] = b;
  }
  workgroupBarrier();
  let ri = lid.y;
  let ck = lid.x;
  var v: array<f32, 4>;
  var ok: array<bool, 4>;
  for (var q = 0u; q < 4u; q++) {
    let i = i0 + ri + 16u * (q / 2u);
    let k = c0 + ck + 16u * (q % 2u);
    ok[q] = i < n && k <= i;
    v[q] = 0.0;
    if (ok[q]) { v[q] = A[i * n + k]; }
  }
  for (var m = 0u; m < nb; m++) {
    let a0 = li_[ri * NB + m];
    let a1 = li_[(ri + 16u) * NB + m];
    let b0 = lkT[m * NB + ck];
    let b1 = lkT[m * NB + ck + 16u];
    v[0] = v[0] - a0 * b0;
    v[1] = v[1] - a0 * b1;
    v[2] = v[2] - a1 * b0;
    v[3] = v[3] - a1 * b1;
  }
  for (var q = 0u; q < 4u; q++) {
    if (ok[q]) { A[(i0 + ri + 16u * (q / 2u)) * n + c0 + ck + 16u * (q % 2u)] = v[q]; }
  }
}
`;

/** Invocations (columns) per workgroup of the blocked inverse. */
export const TRI_WG = 64;

/**
 * Blocked inverse of L (X = L⁻¹, lower), the panel of rows k0 .. k0 + nb: one invocation per column c of
 * [0, k0 + nb), holding that column's nb panel entries. X[i, c] is the unblocked sequence for that entry: from
 * δ(i, c), minus L[i, k]·X[k, c] for k = c .. i − 1 ascending, then / L[i, i]: the rows above the panel
 * (k < k0: final; L's panel rows staged NB columns at a time from A) first, then the panel's own rows in order
 * (L11 from D). X is zero above its diagonal (a new buffer, written on and below it only), so the products for
 * k < c subtract zeros from the starting +0 and leave it +0: the same bits as skipping them. Reads rows < k0 of X
 * and writes rows k0 .. k0 + nb only, so workgroups do not race.
 */
export const TRI_PANEL_WGSL = panelKernel(TRI_WG, /* wgsl */ `
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> D: array<f32>;
@group(0) @binding(3) var<storage, read_write> X: array<f32>;
var<workgroup> ls: array<f32, ${NB * NB}>;`, /* wgsl */ `
  let c0 = flat_group(wid, nwg) * WG;
  let c = flat_index(gid, nwg);
  let live = c < k0 + nb;
  var acc: array<f32, ${NB}>;
  for (var r = 0u; r < NB; r++) { acc[r] = select(0.0, 1.0, k0 + r == c); }
  for (var kb = c0 - c0 % NB; kb < k0; kb += NB) {
    workgroupBarrier();
    for (var e = li; e < NB * NB; e += WG) {
      let r = e / NB;
      let kk = e % NB;
      var a = 0.0;
      if (r < nb && kb + kk < k0) { a = A[(k0 + r) * n + kb + kk]; }
      ls[e] = a;
    }
    workgroupBarrier();
    let kend = min(NB, k0 - kb);
    if (live) {
      for (var kk = 0u; kk < kend; kk++) {
        let xv = X[(kb + kk) * n + c];
        for (var r = 0u; r < NB; r++) { acc[r] = acc[r] - ls[r * NB + kk] * xv; }
      }
    }
  }
  if (!live) { return; }
  let dbase = p.blk * NB * NB;
  for (var r = 0u; r < NB; r++) {
    if (r < nb && c <= k0 + r) {
      let x = acc[r] / D[dbase + r * NB + r];
      X[(k0 + r) * n + c] = x;
      for (var r2 = r + 1u; r2 < NB; r2++) { acc[r2] = acc[r2] - D[dbase + r2 * NB + r] * x; }
    }
  }
`);

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

/**
 * The lazy batch update, tiled (the fast kernels): the same sums as GPTQ_LAZY_WGSL (from 0, products added in k
 * order, then subtracted from W), one 16×16 workgroup per 32×32 tile of W[:, i2:] with each invocation 2×2
 * entries; the block's errors and Hinv rows staged 32 k at a time in workgroup memory.
 */
export const LAZY_TILE = 32;
export const GPTQ_LAZY_TILED_WGSL = /* wgsl */ `
const T: u32 = ${LAZY_TILE}u;
struct Params { rows: u32, n: u32, last: u32, i1: u32, count: u32, i2: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> E: array<f32>;
var<workgroup> es: array<f32, ${LAZY_TILE * LAZY_TILE}>;
var<workgroup> hs: array<f32, ${LAZY_TILE * LAZY_TILE}>;
${HINV}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) lx: u32) {
  let col0 = p.i2 + wid.x * T;
  let r0 = wid.y * T;
  var v = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var k0 = 0u; k0 < p.count; k0 += T) {
    workgroupBarrier();
    for (var e = lx; e < T * T; e += 256u) {
      let a = e / T;
      let b = e % T;
      var ev = 0.0;
      var hv = 0.0;
      if (r0 + a < p.rows && k0 + b < p.count) { ev = E[(r0 + a) * p.count + k0 + b]; }
      if (k0 + a < p.count && col0 + b < p.n) { hv = hinv(p.i1 + k0 + a, col0 + b); }
      es[e] = ev;
      hs[e] = hv;
    }
    workgroupBarrier();
    let kend = min(T, p.count - k0);
    for (var k = 0u; k < kend; k++) {
      let e0 = es[lid.y * T + k];
      let e1 = es[(lid.y + 16u) * T + k];
      let h0 = hs[k * T + lid.x];
      let h1 = hs[k * T + lid.x + 16u];
      v[0] = v[0] + e0 * h0;
      v[1] = v[1] + e0 * h1;
      v[2] = v[2] + e1 * h0;
      v[3] = v[3] + e1 * h1;
    }
  }
  for (var q = 0u; q < 4u; q++) {
    let r = r0 + lid.y + 16u * (q / 2u);
    let col = col0 + lid.x + 16u * (q % 2u);
    if (r < p.rows && col < p.n) { W[r * p.n + col] = W[r * p.n + col] - v[q]; }
  }
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
