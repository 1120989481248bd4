/**
 * WGSL pieces shared by the kernel families. Kernel sources are TypeScript string constants (this
 * file and every `*.wgsl.ts`) rather than `.wgsl` files: tsc puts them in dist/ and any bundler puts
 * them in a browser bundle with no copy step, no loader plugin and no file reads at run time.
 */

/** Stored weight dtypes a kernel can read: f32 as is, f16/bf16 as u32 words of two halves (no `shader-f16`). */
export type WeightDtype = 'f32' | 'f16' | 'bf16';

/**
 * `var` declaration of storage buffer `name` at `binding` holding `dtype` values, and
 * `fn load_<name>(i: u32) -> f32` returning element i as float32 (exact for all three dtypes;
 * element 0 of a word is its low half, as the little-endian host wrote it).
 */
export function weightAccess(name: string, binding: number, dtype: WeightDtype): string {
  if (dtype === 'f32') {
    return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<f32>;
fn load_${name}(i: u32) -> f32 { return ${name}[i]; }`;
  }
  const decode = dtype === 'bf16'
    ? 'return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));'
    : 'let h = unpack2x16float(word); return select(h.x, h.y, (i & 1u) == 1u);';
  return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<u32>;
fn load_${name}(i: u32) -> f32 { let word = ${name}[i >> 1u]; ${decode} }`;
}

/**
 * −∞ (WGSL has no literal for it, and a const expression may not be infinite: it is made at run
 * time from its bits) and the largest finite float32.
 */
export const FLOAT_CONSTS = /* wgsl */ `
fn neg_inf() -> f32 { let bits = 0xff800000u; return bitcast<f32>(bits); }
const MAX_F32: f32 = 0x1.fffffep+127f;
`;

/**
 * Flat invocation index of a 1-D dispatch folded into x·y workgroups (device.ts: dispatch), for a
 * workgroup size of WG.
 */
export const FLAT_INDEX = /* wgsl */ `
fn flat_index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }
fn flat_group(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }
`;

/**
 * a / b correctly rounded to float32, as the host's Math.fround(a / b) (float64 division then one
 * rounding, which equals the correctly rounded float32 quotient). WGSL allows 2.5 ULP for '/', so from
 * the quotient q the search steps (at most 3 ULP) towards a/b, the side the sign of q's residual
 * c·b − a names, while |c·b − a| shrinks (usually one step, two residuals). c·b = p + e exactly
 * (Dekker's TwoProduct, the factors split by masking their low 12 significand bits, so every partial
 * product is exact), p − a exact (Sterbenz: p is within a few ULP of a), then (p − a) + e rounded once,
 * which cannot reorder two candidates (a quotient of floats is never a midpoint). Not fma(c, b, −a):
 * WGSL does not promise a fused fma, and lavapipe's is not (2⁻²⁰ / 3.2492032 came out one ULP up). Where the
 * probe finds it fused (caps.fmaFused, fmaProbe.ts), fma(c, b, −a) would give the same value (one rounding of
 * the same exact c·b − a), but division is rare (a few per weight group) and its kernels (search, quipRebuild)
 * keep one text on every device.
 * Checked in float32 emulation (no fused operations) on 3·10⁶ quotients of mixed signs, powers of two and
 * 12-bit divisors, starting up to 2 ULP off: none wrong. A quotient that underflows to ±0 steps to ±2⁻¹⁴⁹ (it
 * stepped to NaN before), and a subnormal quotient exactly between two floats (a/b = 3·2⁻¹⁵⁰ for a = 3·2⁻¹⁴⁹,
 * b = 2; a normal quotient never is) takes the even one, as the host. Before the steps a and b are both scaled
 * by the power of two that puts their exponents symmetric about 0 (the quotient unchanged; skipped when they
 * differ by more than 200), so Dekker's partial products stay normal where a tiny dividend made them subnormal
 * and inexact. Checked on lavapipe against Math.fround(a / b) on 5·10⁶ pairs (every exponent, subnormal
 * dividends and quotients, power-of-two divisors, 6-bit significands): none wrong. p and the
 * partial sums are kept opaque (`div_keep`: an XOR with the uniform `p.zero`, which every dispatch
 * sets to 0) so that no compiler contracts p into a sum or reassociates the steps. Needs a uniform `p`
 * with a `zero: u32` field.
 */
export const DIV_CR = /* wgsl */ `
fn div_keep(v: f32) -> f32 { return bitcast<f32>(bitcast<u32>(v) ^ p.zero); }
fn residual(c: f32, b: f32, a: f32) -> f32 {
  let hc = bitcast<f32>(bitcast<u32>(c) & 0xfffff000u);
  let lc = c - hc;
  let hb = bitcast<f32>(bitcast<u32>(b) & 0xfffff000u);
  let lb = b - hb;
  let pr = div_keep(c * b);
  let e = div_keep(div_keep(div_keep(div_keep(hc * hb) - pr) + div_keep(hc * lb)) + div_keep(lc * hb)) + div_keep(lc * lb);
  return div_keep(div_keep(pr - a) + e);
}
fn div_cr(a0: f32, b0: f32) -> f32 {
  var a = a0;
  var b = b0;
  let q = a / b;
  if (a == 0.0 || !(abs(q) <= MAX_F32) || !(abs(b) <= MAX_F32)) { return q; }
  // a and b scaled by one power of two so that a is near 1: the same quotient, and Dekker's partial products
  // stay normal (a tiny dividend made them subnormal and inexact)
  let ea = frexp(a).exp;
  let eb = frexp(b).exp;
  if (abs(ea - eb) <= 200) { let k = -((ea + eb) >> 1u); a = ldexp(a, k); b = ldexp(b, k); }
  let r = residual(q, b, a);
  if (r == 0.0) { return q; }
  // q·b − a > 0 with b > 0 (or < 0 with b < 0): q lies above a/b, so step towards smaller values
  let down = (r > 0.0) == (b > 0.0);
  var best = q;
  var best_r = abs(r);
  for (var d = 0u; d < 3u; d++) {
    let bits = bitcast<u32>(best);
    // from ±0 (a quotient that underflowed) the next float down is −2⁻¹⁴⁹, up +2⁻¹⁴⁹
    let c = bitcast<f32>(select(select(bits + 1u, bits - 1u, down == (best > 0.0)), select(1u, 0x80000001u, down), best == 0.0));
    let rc = abs(residual(c, b, a));
    // equal residuals: a/b is their midpoint, which only a subnormal quotient can be; ties to even
    if (rc == best_r && (bitcast<u32>(c) & 1u) == 0u) { best = c; break; }
    if (rc >= best_r) { break; }
    best = c;
    best_r = rc;
  }
  return best;
}
`;

/**
 * Exact two-float addition for the compensated sums (gram, log-softmax). `keep(v)` hides v from the
 * shader compiler: its bits XOR a zero it cannot see at compile time (the kernel's uniform `p.zero`,
 * which the dispatch sets to 0). Mesa's NIR (lavapipe) treats float arithmetic as inexact and rewrites
 * (a + b) − a as b, or factors and reassociates sums, which erases TwoSum's error term and leaves a
 * plain float32 sum; an opaque value cannot be rewritten. Needs a uniform `p` with a `zero: u32` field.
 */
export const TWO_SUM = /* wgsl */ `
fn keep(v: f32) -> f32 { return bitcast<f32>(bitcast<u32>(v) ^ p.zero); }

/** (fl(a + b), its rounding error) exactly (TwoSum, Knuth). */
fn two_sum(a: f32, b: f32) -> vec2f {
  let s = keep(a + b);
  let bb = keep(s - a);
  let aa = keep(s - bb);
  return vec2f(s, keep(a - aa) + keep(b - bb));
}
`;

/**
 * Dekker's exact product for the two-float kernels (gram, the QuIP rebuild), after TWO_SUM (its keep()).
 */
export const TWO_PRODUCT = /* wgsl */ `
/** a = hi + lo with hi holding a's top 12 significand bits (Veltkamp's split, factor 2¹² + 1). */
fn split(a: f32) -> vec2f {
  let c = keep(4097.0 * a);
  let hi = keep(c - keep(c - a));
  return vec2f(hi, keep(a - hi));
}

/**
 * (fl(a·b), its rounding error) exactly (Dekker's TwoProduct) from a, b and their splits: the halves'
 * products are exact in float32. Not fma(a, b, −fl(a·b)): WGSL does not promise a fused fma, and
 * lavapipe's is not (the fast Gram kernel uses fma where a probe finds it fused: gramFast.wgsl.ts).
 */
fn two_prod_split(a: f32, sa: vec2f, b: f32, sb: vec2f) -> vec2f {
  let prod = keep(a * b);
  let e = keep(keep(keep(keep(sa.x * sb.x) - prod) + keep(sa.x * sb.y)) + keep(sa.y * sb.x)) + keep(sa.y * sb.y);
  return vec2f(prod, e);
}

fn two_prod(a: f32, b: f32) -> vec2f { return two_prod_split(a, split(a), b, split(b)); }
`;
