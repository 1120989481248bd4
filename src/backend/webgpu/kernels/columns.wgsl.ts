/**
 * Per-column work on activation rows x[T, C] for AWQ's captured inputs (quant/methods/awq.ts), so they
 * stay on the device for the whole block:
 *   column_abs_sum  acc[c] += Σ_t |x[t, c]| as the host sums it: a float64 accumulator, one addition per
 *                   row in order, each correctly rounded (nearest, ties to even). WGSL has no f64, so the
 *                   accumulator is the float64's bits in two u32 words and every addition is done on
 *                   integers: both operands normalized to 53-bit significands M·2^a (the term's exactly: a
 *                   float32 has 24 bits), the smaller shifted against the larger inside a 128-bit integer
 *                   S = M_A·2⁶⁴ + M_B·2^(64−d) (exact for an exponent gap d ≤ 53; for d ≥ 54 the smaller is
 *                   under half an ulp of the larger and the sum rounds to the larger), S has 117 or 118 bits,
 *                   its top 53 are kept and the rest decides the rounding (half bit, sticky bits, the last
 *                   kept bit for ties). Both operands are ≥ 0, so there is no cancellation and no float64
 *                   subnormal (every nonzero |x| is ≥ 2⁻¹⁴⁹). x is read as bits, so a device that flushes
 *                   float32 subnormals still sees them. NaN and ±∞ propagate as in float64 (NaN wins).
 *                   One invocation per column walks its rows: equal to the host's sum bit for bit
 *                   (test/backend/columnOps.test.ts).
 *   div_columns     y[t, c] = x[t, c] / s[c] correctly rounded (div_cr, common.wgsl.ts): the host's
 *                   Math.fround(x / s).
 */
import { DIV_CR, FLAT_INDEX, FLOAT_CONSTS } from './common.wgsl.js';

export const COLUMNS_WG = 64;

/** params: T, C; acc: [C] float64 as (low, high) words, as the host's Float64Array holds them. */
export const COLUMN_ABS_SUM_WGSL = /* wgsl */ `
struct Params { T: u32, C: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> acc: array<u32>;

/** v·2^k as a 128-bit integer (words low to high) for v = (hi, lo) < 2⁵³ and k in 11..64. */
fn shl128(hi: u32, lo: u32, k: u32) -> vec4u {
  if (k == 64u) { return vec4u(0u, 0u, lo, hi); }
  if (k >= 32u) {
    let j = k - 32u;
    let carry_lo = select(lo >> (32u - j), 0u, j == 0u);
    let carry_hi = select(hi >> (32u - j), 0u, j == 0u);
    return vec4u(0u, lo << j, (hi << j) | carry_lo, carry_hi);
  }
  return vec4u(lo << k, (hi << k) | (lo >> (32u - k)), hi >> (32u - k), 0u);
}

@compute @workgroup_size(${COLUMNS_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.C) { return; }
  let w_lo = acc[2u * c];
  let w_hi = acc[2u * c + 1u];
  let E = (w_hi >> 20u) & 0x7ffu;
  // special: 0 finite, 1 +∞, 2 NaN; the finite value is mh·2³² + ml times 2^a, mh < 2²¹ (0 when zero)
  var special = 0u;
  var zero = E == 0u;
  var mh = (w_hi & 0xfffffu) | 0x100000u;
  var ml = w_lo;
  var a = i32(E) - 1075;
  if (E == 0x7ffu) { special = select(1u, 2u, (w_hi & 0xfffffu) != 0u || w_lo != 0u); }
  for (var t = 0u; t < p.T; t++) {
    let b = x[t * p.C + c] & 0x7fffffffu;
    if (b == 0u) { continue; }
    if (b >= 0x7f800000u) { special = max(special, select(1u, 2u, b > 0x7f800000u)); continue; }
    if (special != 0u) { continue; }
    // the term m·2^e, normalized to 53 bits (th, tl)·2^ta
    let be = b >> 23u;
    let m = (b & 0x7fffffu) | select(0u, 0x800000u, be != 0u);
    let e = i32(max(be, 1u)) - 150;
    let k = 53u - (32u - countLeadingZeros(m)); // 29..52
    var th = m << (k - 32u);
    var tl = 0u;
    if (k < 32u) { th = m >> (32u - k); tl = m << k; }
    let ta = e - i32(k);
    if (zero) { mh = th; ml = tl; a = ta; zero = false; continue; }
    // A: the operand with the larger exponent, B the other
    var ah = mh; var al = ml; var aa = a; var bh = th; var bl = tl; var ba = ta;
    if (ta > a) { ah = th; al = tl; aa = ta; bh = mh; bl = ml; ba = a; }
    let d = u32(aa - ba);
    if (d >= 54u) { mh = ah; ml = al; a = aa; continue; }
    let y = shl128(bh, bl, 64u - d);
    let s2 = al + y.z;
    let s3 = ah + y.w + select(0u, 1u, s2 < al);
    var half = false;
    var sticky = false;
    if (s3 >= 0x200000u) { // 118 bits: keep bits 65..117
      mh = s3 >> 1u; ml = (s2 >> 1u) | (s3 << 31u); a = aa + 1;
      half = (s2 & 1u) != 0u; sticky = (y.y | y.x) != 0u;
    } else { // 117 bits: keep bits 64..116
      mh = s3; ml = s2; a = aa;
      half = (y.y >> 31u) != 0u; sticky = ((y.y & 0x7fffffffu) | y.x) != 0u;
    }
    if (half && (sticky || (ml & 1u) != 0u)) {
      ml += 1u;
      if (ml == 0u) { mh += 1u; }
      if (mh == 0x200000u) { mh = 0x100000u; a += 1; }
    }
  }
  if (special == 1u) { acc[2u * c] = 0u; acc[2u * c + 1u] = 0x7ff00000u; return; }
  if (special == 2u) { acc[2u * c] = 0u; acc[2u * c + 1u] = 0x7ff80000u; return; }
  if (zero) { acc[2u * c] = 0u; acc[2u * c + 1u] = 0u; return; }
  acc[2u * c] = ml;
  acc[2u * c + 1u] = (u32(a + 1075) << 20u) | (mh & 0xfffffu);
}
`;

/** params: n (elements), C, zero (0, div_cr's barrier). */
export const DIV_COLUMNS_WGSL = /* wgsl */ `
const WG: u32 = ${COLUMNS_WG}u;
struct Params { n: u32, C: u32, zero: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> s: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
${FLOAT_CONSTS}${FLAT_INDEX}${DIV_CR}
@compute @workgroup_size(${COLUMNS_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  y[i] = div_cr(x[i], s[i % p.C]);
}
`;
