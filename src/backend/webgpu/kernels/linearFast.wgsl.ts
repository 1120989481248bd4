/**
 * The fast bodies of `linear` (y[M, ldy] columns n0..n0+N = x[M, K] · W[N, K]ᵀ), composed with any
 * weight decoder `fn w_at(n, k) -> f32` exactly as the reference body is (linear.wgsl.ts:
 * linearWithDecoder). Two kernels:
 *
 * tiled: a BM×BN output tile per workgroup of 16×16 invocations, (BM/16)×(BN/16) outputs per
 *   invocation held in vec4 registers, K stepped by BK (16, or 8) through workgroup memory stored
 *   k-major (xs[k][m], ws[k][n]) so the inner loop reads whole vec4s of both operands and does
 *   BM·BN/256 multiply-adds per pair of loads. Invocation (ty, tx) owns rows 4·ty + 64·i + 0..3
 *   and columns 4·tx + 64·j + 0..3 (neighbouring invocations read neighbouring vec4s: no bank
 *   conflicts). x is read as vec4 when K is a multiple of 4 (variant `x4`), else as scalars.
 *   Workgroup memory: (BM + BN)·BK·4 bytes, 16 KiB at 128×128 and BK 16 (lavapipe has 32 KiB);
 *   twice that double-buffered. The K loop's pipeline (GemmPipe) and BK are the GEMM designs that
 *   LOWBIT_WEBGPU_GEMM chooses between (linear.ts: GEMM_DESIGNS); all give the same bits.
 * gemv: for M ≤ GEMV_MAX_M rows (token-by-token decoding): one workgroup of 256 invocations per
 *   GEMV_ROWS = 16 output columns n, each a 16-way K-split: invocation i sums k ≡ i (mod 16) for
 *   its column, the 16 partial sums reduced in workgroup memory by a fixed tree (the order is the
 *   same every run, not the reference's k order). On lavapipe 16 columns × 16 lanes ran 2.4× the
 *   speed of 4 × 64 at M = 1 (fewer barriers).
 * Each output is a float32 sum; the tiled kernel sums in k order like the reference, the GEMV in a
 * different order, so the two agree to rounding (test/backend/fastKernels.test.ts).
 */

import { SHUFFLE_BUILTINS, SHUFFLE_DECLS, shuffleLoop } from './gemmShuffle.wgsl.js';

/** Largest M the GEMV path takes, and output columns per GEMV workgroup. */
export const GEMV_MAX_M = 8;
export const GEMV_ROWS = 16;
const GEMV_SPLIT = 256 / GEMV_ROWS; // invocations per output column

/**
 * How the tiled GEMM moves each K slice from storage to workgroup memory (every way gives the same bits:
 * the same slices, zero-padded the same way, summed by the same loop):
 * - `single`: load the slice, barrier, compute, barrier (two barriers a step, global latency exposed);
 * - `prefetch`: the next slice is loaded into registers before the current one is computed, and stored
 *   into workgroup memory after it (two barriers a step, the loads in flight during the compute);
 * - `double`: as prefetch, into the other of two workgroup buffers, so one barrier a step (twice the memory);
 * - `shuffle`: B is read from storage into registers and passed between the lanes of a subgroup by
 *   subgroupShuffle, never staged in workgroup memory (gemmShuffle.wgsl.ts; the `single` loop where the
 *   subgroups do not allow it). Needs the device feature 'subgroups'.
 */
export type GemmPipe = 'single' | 'prefetch' | 'double' | 'shuffle';

/**
 * Output tile BM×BN per workgroup, K step BK, and the pipeline of the K loop; `lanes`: the `shuffle` pipe's
 * group of lanes sharing B (a divisor of BK and of the device's smallest subgroup; 8 where not given).
 */
export interface TileShape { readonly bm: 64 | 128; readonly bn: 64 | 128; readonly bk: 8 | 16; readonly pipe: GemmPipe; readonly lanes?: ShuffleLanes }
export type ShuffleLanes = 4 | 8 | 16;

/** Workgroup memory of a tiled GEMM, in bytes (`shuffle` keeps B's buffer for its fallback loop, and 12 bytes of flags). */
export function tileBytes(t: TileShape): number {
  return (t.bm + t.bn) * t.bk * 4 * (t.pipe === 'double' ? 2 : 1) + (t.pipe === 'shuffle' ? 12 : 0);
}

/** Pipeline-key name of a tile: `t128x64` for BK 16 single-buffered (the first design), else e.g. `t128x128k8p` / `d` / `s8` (shuffle, 8 lanes). */
export function tileKey(t: TileShape): string {
  return `t${t.bm}x${t.bn}${t.bk === 16 ? '' : `k${t.bk}`}${t.pipe === 'single' ? '' : t.pipe[0]}${t.pipe === 'shuffle' ? shuffleLanes(t) : ''}`;
}

const shuffleLanes = (t: TileShape): ShuffleLanes => t.lanes ?? 8;

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

/**
 * One operand's BK-slice as code: `total` elements (scalars, or vec4s of x) spread over the 256
 * invocations, element `idx` at tile row r, slice column c. `fetch(k)` reads slice k from storage into
 * registers, `put(off)` writes them into k-major workgroup memory at vec4 offset `off`; `direct(dst)`
 * does both at once (the single-buffered kernel's loop, kept as first written).
 */
interface SliceCode { direct: string; regs: string; fetch: (k: string) => string; put: (off: string) => string }

/** The statements of `body(e)` for each of this invocation's elements, `idx` bound; elements past `total` skipped. */
function perInvocation(total: number, body: (e: number) => string): string {
  if (total >= 256) return [...Array(total / 256).keys()].map((e) => `{ let idx = li + ${e * 256}u; ${body(e)} }`).join('\n    ');
  return `if (li < ${total}u) { let idx = li; ${body(0)} }`;
}

/** The opening of the direct load loop over this invocation's elements, `idx` bound (a guard where there are fewer than 256). */
function loopHead(total: number): string {
  return total >= 256 ? `for (var e = 0u; e < ${total / 256}u; e++) {
      let idx = li + e * 256u;` : `if (li < ${total}u) {
      let idx = li;`;
}

/** A BM- (or BN-) row operand read by `at(r, j)` into workgroup memory `dst` (vec4 array, k-major). */
function scalarSlice(name: string, dst: string, rows: number, bk: number, base: string, limit: string, at: (r: string, j: string) => string, rowFast: boolean): SliceCode {
  const total = rows * bk, reg = (e: number) => `${name}${e}`;
  const rc = `let r = ${rowFast ? `idx % ${rows}u` : `idx / ${bk}u`};
      let c = ${rowFast ? `idx / ${rows}u` : `idx % ${bk}u`};`;
  return {
    direct: `${loopHead(total)}
      ${rc}
      var v = 0.0;
      if (${base} + r < ${limit} && k0 + c < J) { v = ${at(`${base} + r`, 'k0 + c')}; }
      ${dst}[(c * ${rows}u + r) / 4u][r % 4u] = v;
    }`,
    regs: [...Array(Math.max(1, total / 256)).keys()].map((e) => `var ${reg(e)} = 0.0;`).join(' '),
    fetch: (k) => perInvocation(total, (e) => `${rc}
      ${reg(e)} = 0.0;
      if (${base} + r < ${limit} && ${k} + c < J) { ${reg(e)} = ${at(`${base} + r`, `${k} + c`)}; }`),
    put: (off) => perInvocation(total, (e) => `${rc}
      ${dst}[${off}(c * ${rows}u + r) / 4u][r % 4u] = ${reg(e)};`),
  };
}

/** x of a linear (K a multiple of 4) read as vec4s, four k-major rows of workgroup memory per vec4. */
function vec4Slice(bm: number, bk: number): SliceCode {
  const total = (bm * bk) / 4, reg = (e: number) => `gx${e}`;
  const rc = `let r = idx / ${bk / 4}u;
      let c = (idx % ${bk / 4}u) * 4u;`;
  const scatter = (dst: string, off: string, v: string) => `let q = r % 4u;
      let i = ${off}(c * BM + r) / 4u;
      ${dst}[i][q] = ${v}.x; ${dst}[i + BM / 4u][q] = ${v}.y; ${dst}[i + BM / 2u][q] = ${v}.z; ${dst}[i + 3u * BM / 4u][q] = ${v}.w;`;
  return {
    direct: `${loopHead(total)}
      ${rc}
      var v = vec4f(0.0);
      if (m0 + r < R && k0 + c < J) { v = x[((m0 + r) * J + k0 + c) / 4u]; }
      ${scatter('xs', '', 'v')}
    }`,
    regs: [...Array(Math.max(1, total / 256)).keys()].map((e) => `var ${reg(e)} = vec4f(0.0);`).join(' '),
    fetch: (k) => perInvocation(total, (e) => `${rc}
      ${reg(e)} = vec4f(0.0);
      if (m0 + r < R && ${k} + c < J) { ${reg(e)} = x[((m0 + r) * J + ${k} + c) / 4u]; }`),
    put: (off) => perInvocation(total, (e) => `${rc}
      ${scatter('xs', off, reg(e))}`),
  };
}

/**
 * out[R, C] = Σ_j A(r, j)·B(c, j) over BM×BN output tiles (see the header), float32 sums in j order;
 * the K loop as `t.pipe` says (GemmPipe), with the same sums in every case.
 * Dispatch: [ceil(C / BN), ceil(R / BM)].
 */
export function tiledGemm(t: TileShape, o: TiledOperands): string {
  const BK = t.bk, VM = t.bm / 64, VN = t.bn / 64; // vec4s per invocation along m and n
  const xsLen = (t.bm * BK) / 4, wsLen = (t.bn * BK) / 4; // vec4s of one buffer of each operand
  const xSlice = o.x4 ? vec4Slice(t.bm, BK) : scalarSlice('gx', 'xs', t.bm, BK, 'm0', 'R', o.a, !!o.aRowFast);
  const wSlice = scalarSlice('gw', 'ws', t.bn, BK, 'n0', 'C', o.b, !!o.bRowFast);
  // one k of the register tile: VM + VN vec4 reads of workgroup memory (from buffer xo / wo), 16·VM·VN multiply-adds
  const shuffle = t.pipe === 'shuffle', ty = shuffle ? 'ty' : 'lid.y', tx = shuffle ? 'tx' : 'lid.x'; // the register tile's row and column group
  // one k of the register tile, b vec4 j from bOf(j)
  const kStep = (kk: string, bOf: (j: number) => string) => [
    ...[...Array(VM).keys()].map((i) => `let a${i} = xs[${kk} * (BM / 4u) + ${ty} + ${16 * i}u];`),
    ...[...Array(VN).keys()].map((j) => `let b${j} = ${bOf(j)};`),
    ...[...Array(VM).keys()].flatMap((i) => [0, 1, 2, 3].flatMap((q) => [...Array(VN).keys()].map((j) =>
      `acc[${(i * 4 + q) * VN + j}] += a${i}.${'xyzw'[q]} * b${j};`))),
  ].join('\n        ');
  const step = (xo: string, wo: string) => kStep(`${xo}kk`, (j) => `ws[${wo}kk * (BN / 4u) + ${tx} + ${16 * j}u]`);
  const compute = (xo = '', wo = '') => `if (k0 + BK <= J) {
      for (var kk = 0u; kk < BK; kk++) { ${step(xo, wo)} }
    } else {
      for (var kk = 0u; kk < J - k0; kk++) { ${step(xo, wo)} }
    }`;
  const fetch = (k: string) => `${xSlice.fetch(k)}
    ${wSlice.fetch(k)}`;
  const put = (xo: string, wo: string) => `${xSlice.put(xo)}
    ${wSlice.put(wo)}`;
  const single = `for (var k0 = 0u; k0 < J; k0 += BK) {
    ${xSlice.direct}
    ${wSlice.direct}
    workgroupBarrier();
    ${compute()}
    workgroupBarrier();
  }`;
  const loop = {
    shuffle: !shuffle ? '' : shuffleLoop({
      lanes: shuffleLanes(t), bk: BK, vn: VN, xDirect: xSlice.direct, wDirect: wSlice.direct,
      wsSteps: `for (var kk = 0u; kk < min(BK, J - k0); kk++) { ${step('', '')} }`, b: o.b, step: kStep,
    }),
    single,
    prefetch: `${xSlice.regs} ${wSlice.regs}
  ${fetch('0u')}
  for (var k0 = 0u; k0 < J; k0 += BK) {
    ${put('', '')}
    workgroupBarrier();
    if (k0 + BK < J) {
    ${fetch('k0 + BK')}
    }
    ${compute()}
    workgroupBarrier();
  }`,
    double: `${xSlice.regs} ${wSlice.regs}
  ${fetch('0u')}
  ${put('', '')}
  workgroupBarrier();
  var cur = 0u;
  for (var k0 = 0u; k0 < J; k0 += BK) {
    let more = k0 + BK < J;
    if (more) {
    ${fetch('k0 + BK')}
    }
    let xo = cur * ${xsLen}u;
    let wo = cur * ${wsLen}u;
    ${compute('xo + ', 'wo + ')}
    if (more) {
    let xn = (1u - cur) * ${xsLen}u;
    let wn = (1u - cur) * ${wsLen}u;
    ${put('xn + ', 'wn + ')}
    }
    workgroupBarrier();
    cur = 1u - cur;
  }`,
  }[t.pipe];
  const bufs = t.pipe === 'double' ? 2 : 1;
  return /* wgsl */ `
const BM: u32 = ${t.bm}u;
const BN: u32 = ${t.bn}u;
const BK: u32 = ${BK}u;
var<workgroup> xs: array<vec4f, ${bufs * xsLen}>;
var<workgroup> ws: array<vec4f, ${bufs * wsLen}>;${shuffle ? `${SHUFFLE_DECLS}
enable subgroups;` : ''}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32${shuffle ? `, ${SHUFFLE_BUILTINS}` : ''}) {
  let R = ${o.rows};
  let C = ${o.cols};
  let J = ${o.red};
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;${o.skipTile ? `
  if (${o.skipTile}) { return; }` : ''}
  var acc: array<vec4f, ${4 * VM * VN}>;
  ${loop}
  for (var i = 0u; i < ${4 * VM}u; i++) {
    let r = m0 + 4u * ${ty} + 64u * (i / 4u) + i % 4u;
    if (r >= R) { continue; }
    for (var j = 0u; j < ${VN}u; j++) {
      let v4 = acc[i * ${VN}u + j];
      for (var q = 0u; q < 4u; q++) {
        let c = n0 + 4u * ${tx} + 64u * j + q;
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
