/**
 * The fast Gram kernel: S += xᵀx for x[T, K] (gram.wgsl.ts says what the sums are and how precise),
 * a GRAM_TILE × GRAM_TILE tile of S per workgroup of 16×16 invocations, tiles wholly below the
 * diagonal skipped. Tokens are stepped GRAM_BT at a time through workgroup memory: the tile's
 * x[t0..t0+BT, a-range] and x[t0..t0+BT, b-range], each value stored beside its Veltkamp split
 * (computed once per value instead of once per product). Invocation (ty, tx) holds the (hi, lo)
 * pairs of the 4×4 entries a = row0 + ty + 16·i, b = col0 + tx + 16·j in registers (strided, so
 * neighbours read neighbouring words) and walks the tokens in increasing order.
 * Every entry sees the reference kernel's operations in the reference's order: the same split and
 * merge_stored (one shared WGSL text, GRAM_PRODUCTS), a split being a pure function of its value,
 * and per token the float operations of its two_prod_split and add_product with fewer keep()s
 * (add_product_lean below: which barriers exactness needs, and why); so the sums are the
 * reference's bit for bit (test/backend/gram.test.ts). Each x value is read from global memory once
 * per tile instead of once per entry, and a pair of workgroup-memory reads feeds 16 products.
 * Where the device's fma is fused (the probe, fmaProbe.ts), TwoProduct's error is one fma(a, b, −p) instead
 * and no splits are made (gramFastWgsl's GramProductError): the same exact error, so the same bits.
 * Workgroup memory: 2 · GRAM_BT · GRAM_TILE · 12 bytes = 12 KiB with the splits (under WebGPU's 16 KiB
 * default), 4 KiB without.
 * Bands of rows as the reference: params [T, K, zero, a0, rows, c0], dispatch
 * [ceil((K − c0) / GRAM_TILE), ceil(rows / GRAM_TILE)].
 */
import { GRAM_IO, GRAM_PRODUCTS } from './gram.wgsl.js';
import { tiledGemm, type TileShape } from './linearFast.wgsl.js';

/** Entries per side of a workgroup's tile of S, and tokens per step through workgroup memory. */
export const GRAM_TILE = 64;
export const GRAM_BT = 8;
const PER = GRAM_TILE / 16; // entries per invocation along each side

const range = (n: number) => [...Array(n).keys()];

/**
 * One token of the register tile: PER + PER reads of each operand, PER² product steps; with the
 * splits (the 'split' product error) or without them (the fma paths take a and b alone).
 */
function step(splits: boolean): string {
  return [
    ...range(PER).map((i) => `let a${i} = xa[o + lid.y + ${16 * i}u];${splits ? ` let sa${i} = za[o + lid.y + ${16 * i}u];` : ''}`),
    ...range(PER).map((j) => `let b${j} = xb[o + lid.x + ${16 * j}u];${splits ? ` let sb${j} = zb[o + lid.x + ${16 * j}u];` : ''}`),
    ...range(PER).flatMap((i) => range(PER).map((j) => splits
      ? `acc${i}${j} = add_product_lean(acc${i}${j}, a${i}, sa${i}, b${j}, sb${j});`
      : `acc${i}${j} = add_product_fma(acc${i}${j}, a${i}, b${j});`)),
  ].join('\n      ');
}

/** Loads of one token step of the tile's columns from `base` into xs (values) and, when `zs` is named, zs (splits). */
function load(xs: string, zs: string | undefined, base: string, limit: string): string {
  return `for (var e = 0u; e < ${(GRAM_BT * GRAM_TILE) / 256}u; e++) {
    let idx = li + e * 256u;
    let tt = idx / TS;
    let c = idx % TS; // neighbouring invocations: neighbouring columns of x
    var v = 0.0;
    if (${base} + c < ${limit} && t0 + tt < p.T) { v = x[(t0 + tt) * p.K + ${base} + c]; }
    ${xs}[idx] = v;${zs ? `\n    ${zs}[idx] = split(v);` : ''}
  }`;
}

/**
 * The reference's per-token step, add_product(acc, two_prod_split(a, sa, b, sb)), with the same 17
 * float operations in the same order (so the same roundings) but 3 keep()s instead of 15. A keep()
 * is needed only where a rewrite the shader compilers may apply would change a rounded value
 * (Mesa's nir_opt_algebraic.py names its value-changing rewrites with '~'):
 * - prod: fusing a*b into an add that uses it (WGSL and SPIR-V allow contraction; NIR's late
 *   "fadd(fmul(is_only_used_by_fadd)) → ffma" on drivers with fuse_ffma32, ir3's own pass, every
 *   vendor compiler) would give fma(a, b, hi) for s, or fma(−a, b, hh) for e: not fl(a·b) + …
 * - s: NIR's ('~fadd', ('fneg', a), ('fadd', a, b)) → b folds bb = (hi + prod) − hi to prod, and
 *   TwoSum's error becomes 0 (measured on lavapipe before the keeps: plain float32 sums).
 * - bb: with s opaque, NIR has no rewrite of aa = s − (s − hi) (it does not push fneg into an
 *   fadd), but x − (x − y) → y is a common peephole elsewhere (LLVM's under reassoc + nsz), and
 *   it would make aa = hi and the error prod − bb alone.
 * Not kept:
 * - The four products of halves and e's partial sums: Dekker's proof makes every one of them
 *   exact (12-bit halves; each partial sum representable), so fusing any product into the next
 *   add (fma rounds once, to the same exact value) changes nothing; NIR's factoring rewrites
 *   (a·b + a·c → a·(b + c), ffma(a, b, ffma(a, c, d)) → ffma(a, b + c, d)) turn h·l + h·h into
 *   h·(l + h) = h·x exactly (x = h + l is exact), whose sum with the rest is again one of the
 *   exact partial sums; the add-chain reassociation ('~fadd', ('fadd', fmul, fmul), c) needs an
 *   add of two products, which the chain does not have. Exactness assumes no underflow: with
 *   |x_a·x_b| ≥ 2⁻⁷⁸ (or a zero) every nonzero intermediate is a multiple of
 *   2^(e_a + e_b − 46) ≥ 2⁻¹²⁶ (e_a: the exponent of x_a), so a flush-to-zero device flushes nothing.
 * - aa, hi − aa, prod − bb, their sum and the two adds into lo: additions of opaque or loop-carried
 *   values with no shared operand, no product and no constant, which no '~' rewrite matches; the
 *   reference leaves its err sum and e's last add unkept on the same ground.
 * On lavapipe (llvmpipe: lower_ffma32, no fusing) dropping the keep() on s fails
 * test/backend/gram.test.ts everywhere, dropping the one on prod or on bb passes: those two guard other
 * drivers; the test's adversarial data give other bits under each of the three rewrites (host emulation).
 * A keep() of a vec2 or vec4 would not be cheaper: it is one XOR per lane component on every
 * target (GPUs are scalar per invocation; llvmpipe vectorises across invocations).
 */
const GRAM_STEP_LEAN = /* wgsl */ `
fn add_product_lean(acc: vec2f, a: f32, sa: vec2f, b: f32, sb: vec2f) -> vec2f {
  let prod = keep(a * b);
  let e = (((sa.x * sb.x - prod) + sa.x * sb.y) + sa.y * sb.x) + sa.y * sb.y;
  let s = keep(acc.x + prod);
  let bb = keep(s - acc.x);
  let err = (acc.x - (s - bb)) + (prod - bb);
  return vec2f(s, acc.y + (err + e));
}
`;

/**
 * How the fast kernel gets TwoProduct's error e = a·b − fl(a·b), exact in each case (so every choice gives
 * the reference's sums bit for bit):
 * - 'split': Dekker's products of the Veltkamp halves, made once per value in workgroup memory
 *   (add_product_lean: 17 float operations and 3 keep()s per entry and token);
 * - 'fma': fma(a, b, −p), one rounding of the exact a·b − p, which is representable: the exact error, where
 *   the device's fma is fused (caps.fmaFused, fmaProbe.ts); no splits (add_product_fma: 10 float
 *   operations and 4 keep()s);
 * - 'fmaEmulated': the 'fma' kernel text with the fma replaced by its exact value from the split
 *   products (two_prod, made per product): tests check that text bit for bit on a device whose fma is not fused.
 */
export type GramProductError = 'split' | 'fma' | 'fmaEmulated';

/**
 * The product error of the fma paths, prod_err(a, b, p) = a·b − p for p = fl(a·b): the device's fma
 * where it is fused, else (tests) Dekker's exact TwoProduct error, every intermediate kept.
 */
const PROD_ERR: Record<Exclude<GramProductError, 'split'>, string> = {
  fma: 'fn prod_err(a: f32, b: f32, p: f32) -> f32 { return fma(a, b, -p); }',
  fmaEmulated: 'fn prod_err(a: f32, b: f32, p: f32) -> f32 { return two_prod(a, b).y; } // two_prod\'s own fl(a·b) is p',
};

/**
 * add_product_lean with TwoProduct's error from prod_err: the same TwoSum and adds into lo, the same
 * keep()s (add_product_lean says why each), and one more on e: a fused result that feeds an add is what
 * contraction and reassociation passes look for (fadd(ffma(a, b, c), d) → ffma(a, b, c + d) would round
 * −p + err instead of adding the exact e), and the XOR costs one integer operation. e equals Dekker's e
 * under the same condition (|x_a·x_b| ≥ 2⁻⁷⁸ or a zero: e is zero or a normal float), a zero e included: both
 * are +0 (an exact sum of opposite values rounds to +0).
 */
const GRAM_STEP_FMA = /* wgsl */ `
fn add_product_fma(acc: vec2f, a: f32, b: f32) -> vec2f {
  let prod = keep(a * b);
  let e = keep(prod_err(a, b, prod));
  let s = keep(acc.x + prod);
  let bb = keep(s - acc.x);
  let err = (acc.x - (s - bb)) + (prod - bb);
  return vec2f(s, acc.y + (err + e));
}
`;

/** The fast Gram kernel's text for a way of taking the product error (workgroup memory: 12 KiB with splits, 4 KiB without). */
export function gramFastWgsl(productError: GramProductError): string {
  const splits = productError === 'split';
  return /* wgsl */ `
${GRAM_IO}${GRAM_PRODUCTS}${splits ? GRAM_STEP_LEAN : `${PROD_ERR[productError]}\n${GRAM_STEP_FMA}`}
const TS: u32 = ${GRAM_TILE}u;
const BT: u32 = ${GRAM_BT}u;
var<workgroup> xa: array<f32, ${GRAM_BT * GRAM_TILE}>;
var<workgroup> xb: array<f32, ${GRAM_BT * GRAM_TILE}>;${splits ? `
var<workgroup> za: array<vec2f, ${GRAM_BT * GRAM_TILE}>;
var<workgroup> zb: array<vec2f, ${GRAM_BT * GRAM_TILE}>;` : ''}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let r0 = wid.y * TS; // first band row of the tile: S row p.a0 + r0
  let row0 = p.a0 + r0;
  let col0 = p.c0 + wid.x * TS;
  if (col0 + TS <= row0) { return; } // wholly below the diagonal (uniform across the workgroup)
  let rowEnd = p.a0 + p.rows;
  ${range(PER).flatMap((i) => range(PER).map((j) => `var acc${i}${j} = vec2f(0.0);`)).join(' ')}
  for (var t0 = 0u; t0 < p.T; t0 += BT) {
    ${load('xa', splits ? 'za' : undefined, 'row0', 'rowEnd')}
    ${load('xb', splits ? 'zb' : undefined, 'col0', 'p.K')}
    workgroupBarrier();
    let n = min(BT, p.T - t0);
    for (var tt = 0u; tt < n; tt++) {
      let o = tt * TS;
      ${step(splits)}
    }
    workgroupBarrier();
  }
  ${range(PER).flatMap((i) => range(PER).map((j) => `store(r0 + lid.y + ${16 * i}u, col0 + lid.x + ${16 * j}u, acc${i}${j});`)).join('\n  ')}
}

/** Entry (band row r, column b) += acc where it is in the band and on or above the diagonal. */
fn store(r: u32, b: u32, acc: vec2f) {
  if (r < p.rows && b < p.K && b >= p.a0 + r) { merge_stored(r * p.K + b, acc); }
}`;
}

/**
 * Precision 'f32' (gptq.py's): S += xᵀx of one call as a float32 GEMM through the fast tiled GEMM
 * (linearFast.wgsl.ts: tiledGemm, each entry a float32 sum in token order, not the host sgemm's
 * blocked order), each result added exactly into the stored two-float pair (merge_stored with a zero lo),
 * so the calls' sum is as exact as the host's float64 one. Tiles wholly below the diagonal are
 * skipped; the other entries below it are computed and dropped. Bands and params as the two-float kernels; dispatch
 * [ceil((K − c0) / tile.bn), ceil(rows / tile.bm)].
 */
export function gramF32Wgsl(tile: TileShape): string {
  return /* wgsl */ `
${GRAM_IO}${GRAM_PRODUCTS}
${tiledGemm(tile, {
    rows: 'p.rows', cols: 'p.K - p.c0', red: 'p.T', aRowFast: true, bRowFast: true,
    a: (r, j) => `x[(${j}) * p.K + p.a0 + ${r}]`, b: (c, j) => `x[(${j}) * p.K + p.c0 + ${c}]`,
    store: 'if (p.c0 + c >= p.a0 + r) { merge_stored(r * p.K + p.c0 + c, vec2f(v, 0.0)); }',
    skipTile: 'p.c0 + n0 + BN <= p.a0 + m0',
  })}`;
}
