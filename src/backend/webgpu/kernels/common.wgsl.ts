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
 * rounding, which equals the correctly rounded float32 quotient). WGSL allows 2.5 ULP for '/', so
 * the quotient's neighbours within 3 ULP are compared by their exact residual |c·b − a|, computed
 * with fma (fused on every GPU and on lavapipe; the parity suite checks this bit for bit).
 */
export const DIV_CR = /* wgsl */ `
fn div_cr(a: f32, b: f32) -> f32 {
  let q = a / b;
  if (a == 0.0 || !(abs(q) <= MAX_F32) || !(abs(b) <= MAX_F32)) { return q; }
  var best = q;
  var best_r = abs(fma(q, b, -a));
  let bits = bitcast<u32>(q);
  for (var d = 1u; d <= 3u; d++) {
    let up = bitcast<f32>(bits + d);
    let r_up = abs(fma(up, b, -a));
    if (r_up < best_r) { best = up; best_r = r_up; }
    let down = bitcast<f32>(bits - d);
    let r_down = abs(fma(down, b, -a));
    if (r_down < best_r) { best = down; best_r = r_down; }
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
 * lavapipe's is not.
 */
fn two_prod_split(a: f32, sa: vec2f, b: f32, sb: vec2f) -> vec2f {
  let prod = keep(a * b);
  let e = keep(keep(keep(keep(sa.x * sb.x) - prod) + keep(sa.x * sb.y)) + keep(sa.y * sb.x)) + keep(sa.y * sb.y);
  return vec2f(prod, e);
}

fn two_prod(a: f32, b: f32) -> vec2f { return two_prod_split(a, split(a), b, split(b)); }
`;
