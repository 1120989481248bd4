/**
 * The fast bodies of `linear` (y[M, ldy] columns n0..n0+N = x[M, K] · W[N, K]ᵀ), composed with any
 * weight decoder `fn w_at(n, k) -> f32` exactly as the reference body is (linear.wgsl.ts:
 * linearWithDecoder). Two kernels:
 *
 * tiled: a BM×BN output tile per workgroup of 16×16 invocations, (BM/16)×(BN/16) outputs per
 *   invocation held in vec4 registers, K stepped by BK = 16 through workgroup memory stored
 *   k-major (xs[k][m], ws[k][n]) so the inner loop reads whole vec4s of both operands and does
 *   BM·BN/256 multiply-adds per pair of loads. Invocation (ty, tx) owns rows 4·ty + 64·i + 0..3
 *   and columns 4·tx + 64·j + 0..3 (neighbouring invocations read neighbouring vec4s: no bank
 *   conflicts). x is read as vec4 when K is a multiple of 4 (variant `x4`), else as scalars.
 *   Workgroup memory: (BM + BN)·BK·4 bytes, 16 KiB at 128×128 (lavapipe has 32 KiB).
 * gemv: for M ≤ GEMV_MAX_M rows (token-by-token decoding): one workgroup of 256 invocations per
 *   GEMV_ROWS = 16 output columns n, each a 16-way K-split: invocation i sums k ≡ i (mod 16) for
 *   its column, the 16 partial sums reduced in workgroup memory by a fixed tree (the order is the
 *   same every run, not the reference's k order). On lavapipe 16 columns × 16 lanes ran 2.4× the
 *   speed of 4 × 64 at M = 1 (fewer barriers).
 * Each output is a float32 sum; the tiled kernel sums in k order like the reference, the GEMV in a
 * different order, so the two agree to rounding (test/backend/fastKernels.test.ts).
 */

/** K step of the tiled kernel through workgroup memory. */
export const FAST_BK = 16;
/** Largest M the GEMV path takes, and output columns per GEMV workgroup. */
export const GEMV_MAX_M = 8;
export const GEMV_ROWS = 16;
const GEMV_SPLIT = 256 / GEMV_ROWS; // invocations per output column

export interface TileShape { readonly bm: 64 | 128; readonly bn: 64 | 128 }

/** Params and x for the fast bodies: the reference's fields (the decoders read p.N, p.K, p.bits, p.zw, p.gsize). */
export function fastParams(x4: boolean): string {
  return /* wgsl */ `
struct Params { M: u32, N: u32, K: u32, ldy: u32, n0: u32, bits: u32, groups: u32, zw: u32, gsize: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<${x4 ? 'vec4f' : 'f32'}>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
`;
}

/**
 * How the generic tiled GEMM out[R, C] = Σ_j A(r, j)·B(c, j) reads its operands and writes: `rows`,
 * `cols`, `red` are WGSL expressions for R, C and the reduction length J; `a(r, j)` / `b(c, j)` are
 * called only in bounds; `store` is a WGSL statement writing `v` at output (r, c), both in bounds.
 * `aRowFast` / `bRowFast`: neighbouring invocations load neighbouring rows (r) of the tile rather than
 * neighbouring j (pick the one that is contiguous in storage); `x4`: A is the vec4 `x` of a linear;
 * `skipTile`: a WGSL condition on the tile's first row m0 and column n0 (uniform across the workgroup)
 * under which the workgroup writes nothing and returns at once (e.g. a tile below a diagonal).
 */
export interface TiledOperands {
  readonly rows: string; readonly cols: string; readonly red: string;
  readonly a: (r: string, j: string) => string; readonly b: (c: string, j: string) => string;
  readonly store: string; readonly aRowFast?: boolean; readonly bRowFast?: boolean; readonly x4?: boolean;
  readonly skipTile?: string;
}

/** Loads of one BK-slice of a BM- (or BN-) row tile into k-major vec4 workgroup memory `dst`. */
function tileLoad(dst: string, rows: number, base: string, limit: string, at: (r: string, j: string) => string, rowFast: boolean): string {
  const BK = FAST_BK;
  return `for (var e = 0u; e < ${(rows * BK) / 256}u; e++) {
      let idx = li + e * 256u;
      let r = ${rowFast ? `idx % ${rows}u` : `idx / ${BK}u`};
      let c = ${rowFast ? `idx / ${rows}u` : `idx % ${BK}u`};
      var v = 0.0;
      if (${base} + r < ${limit} && k0 + c < J) { v = ${at(`${base} + r`, 'k0 + c')}; }
      ${dst}[(c * ${rows}u + r) / 4u][r % 4u] = v;
    }`;
}

/**
 * out[R, C] = Σ_j A(r, j)·B(c, j) over BM×BN output tiles (see the header), float32 sums in j order.
 * Dispatch: [ceil(C / BN), ceil(R / BM)].
 */
export function tiledGemm(t: TileShape, o: TiledOperands): string {
  const BK = FAST_BK, VM = t.bm / 64, VN = t.bn / 64; // vec4s per invocation along m and n
  const loadX = o.x4
    ? `for (var e = 0u; e < ${(t.bm * BK) / 4 / 256}u; e++) {
      let idx = li + e * 256u;
      let r = idx / ${BK / 4}u;
      let c = (idx % ${BK / 4}u) * 4u;
      var v = vec4f(0.0);
      if (m0 + r < R && k0 + c < J) { v = x[((m0 + r) * J + k0 + c) / 4u]; }
      let q = r % 4u;
      let i = (c * BM + r) / 4u;
      xs[i][q] = v.x; xs[i + BM / 4u][q] = v.y; xs[i + BM / 2u][q] = v.z; xs[i + 3u * BM / 4u][q] = v.w;
    }`
    : tileLoad('xs', t.bm, 'm0', 'R', o.a, !!o.aRowFast);
  // one k of the register tile: VM + VN vec4 reads of workgroup memory, 16·VM·VN multiply-adds
  const step = [
    ...[...Array(VM).keys()].map((i) => `let a${i} = xs[kk * (BM / 4u) + lid.y + ${16 * i}u];`),
    ...[...Array(VN).keys()].map((j) => `let b${j} = ws[kk * (BN / 4u) + lid.x + ${16 * j}u];`),
    ...[...Array(VM).keys()].flatMap((i) => [0, 1, 2, 3].flatMap((q) => [...Array(VN).keys()].map((j) =>
      `acc[${(i * 4 + q) * VN + j}] += a${i}.${'xyzw'[q]} * b${j};`))),
  ].join('\n        ');
  return /* wgsl */ `
const BM: u32 = ${t.bm}u;
const BN: u32 = ${t.bn}u;
const BK: u32 = ${BK}u;
var<workgroup> xs: array<vec4f, ${(t.bm * BK) / 4}>;
var<workgroup> ws: array<vec4f, ${(t.bn * BK) / 4}>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let R = ${o.rows};
  let C = ${o.cols};
  let J = ${o.red};
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;${o.skipTile ? `
  if (${o.skipTile}) { return; }` : ''}
  var acc: array<vec4f, ${4 * VM * VN}>;
  for (var k0 = 0u; k0 < J; k0 += BK) {
    ${loadX}
    ${tileLoad('ws', t.bn, 'n0', 'C', o.b, !!o.bRowFast)}
    workgroupBarrier();
    if (k0 + BK <= J) {
      for (var kk = 0u; kk < BK; kk++) { ${step} }
    } else {
      for (var kk = 0u; kk < J - k0; kk++) { ${step} }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${4 * VM}u; i++) {
    let r = m0 + 4u * lid.y + 64u * (i / 4u) + i % 4u;
    if (r >= R) { continue; }
    for (var j = 0u; j < ${VN}u; j++) {
      let v4 = acc[i * ${VN}u + j];
      for (var q = 0u; q < 4u; q++) {
        let c = n0 + 4u * lid.x + 64u * j + q;
        if (c < C) { let v = v4[q]; ${o.store} }
      }
    }
  }
}
`;
}

/** The linear body: A = x [M, K] (vec4 loads when x4), B = w_at, y[m, n0 + n] with row stride ldy. */
export function tiledBody(t: TileShape, x4: boolean): string {
  return tiledGemm(t, {
    rows: 'p.M', cols: 'p.N', red: 'p.K', x4,
    a: (r, j) => `x[(${r}) * p.K + ${j}]`, b: (c, j) => `w_at(${c}, ${j})`,
    store: 'y[r * p.ldy + p.n0 + c] = v;',
  });
}

/** The GEMV body (M ≤ GEMV_MAX_M); x read as scalars. Dispatch: ceil(N / GEMV_ROWS) workgroups. */
export const GEMV_BODY = /* wgsl */ `
const ROWS: u32 = ${GEMV_ROWS}u;
const SPLIT: u32 = ${GEMV_SPLIT}u;
const MAXM: u32 = ${GEMV_MAX_M}u;
var<workgroup> part: array<f32, ${256 * GEMV_MAX_M}>;

fn flat_group(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = li / SPLIT;
  let s = li % SPLIT;
  let n = flat_group(wid, nwg) * ROWS + r;
  var acc: array<f32, ${GEMV_MAX_M}>;
  if (n < p.N) {
    for (var k = s; k < p.K; k += SPLIT) {
      let w = w_at(n, k);
      for (var m = 0u; m < p.M; m++) { acc[m] += x[m * p.K + k] * w; }
    }
  }
  for (var m = 0u; m < MAXM; m++) { part[m * 256u + li] = acc[m]; }
  workgroupBarrier();
  for (var width = SPLIT / 2u; width > 0u; width /= 2u) {
    if (s < width) {
      for (var m = 0u; m < p.M; m++) { part[m * 256u + li] += part[m * 256u + li + width]; }
    }
    workgroupBarrier();
  }
  if (s == 0u && n < p.N) {
    for (var m = 0u; m < p.M; m++) { y[m * p.ldy + p.n0 + n] = part[m * 256u + li]; }
  }
}
`;
