/**
 * A QuIP layer's weight rebuilt on the device from its codes, as tensor/quipPack.ts rebuildQuipWeight
 * computes it on the host in float64: G = grid(codes), G·V, then Uᵀ·(G·V), then r(r(y) ⊘ D).
 * WGSL has no float64, so every value between the codes and the last rounding is a two-float
 * (hi, lo) pair, renormalised after each step (|lo| ≤ ulp(hi)/2, about 48 significand bits), and
 * the rotation blocks are (hi, lo) pairs of the host's float64 entries.
 *
 * A butterfly transposed, Mᵀ = Pinᵀ·S1ᵀ·S2ᵀ·Poutᵀ (tensor/quipTransform.ts applyButterfly with
 * `transpose`), is two dispatches of one kernel over m vectors of n = a·b entries; an invocation makes
 * one entry j = α·b + β of one vector:
 *   run stage (S2ᵀ, first):   out[α·b+β] = Σ_t in[α·b+t] · B1[α][t, β], in[k] = X[gather[k]] (gather = Pout⁻¹)
 *   fiber stage (S1ᵀ, second): out[α·b+β] = Σ_t in[t·b+β] · B0[β][t, α], written at entry scatter[j] (= Pin[j])
 * each sum taken over t ascending, as the host's gemmF64Plain. A factor of 1 is a stage of 1×1 blocks [1]
 * (an exact identity in two-float arithmetic; the host skips it, which gives the same values).
 * Vector v's entry k lives at v·sv + k·sj: V's vectors are the rows of G (sv = cols, sj = 1), U's the
 * columns (sv = 1, sj = cols), so no transpose is made.
 *
 * Three variants, each binding only what it reads and writes:
 *   'codes': the first V stage, its input the grid value of each b-bit code (unpacked as unpackQuipCodes);
 *   'pairs': a stage from one (hi, lo) plane pair to another;
 *   'final': the last U stage, each result rounded to float32 (hi after renormalisation is the float32
 *            nearest the pair), then, as the host, f(y) ⊘ D[c] correctly rounded to float32 (div_cr), or
 *            with the fp16 casts h(h(y) ⊘ D[c]), h the host's half() (float32 to fp16, ties to even).
 * Every intermediate passes keep() (common.wgsl.ts) so that no compiler fuses or reassociates it.
 */
import { DIV_CR, FLAT_INDEX, FLOAT_CONSTS, TWO_PRODUCT, TWO_SUM } from './common.wgsl.js';

export const QUIP_WG = 256;
/** A gather or scatter offset meaning "none". */
export const QUIP_NONE = 0xffffffff;

export type QuipStage = 'codes' | 'pairs' | 'final';

const PARAMS = `struct Params {
  zero: u32, m: u32, n: u32, sv: u32, sj: u32, a: u32, b: u32,
  run: u32,                 // 1: the run stage (blocks of b), 0: the fiber stage (blocks of a)
  gather: u32, scatter: u32, // word offsets in aux, or ${QUIP_NONE}u
  blk_hi: u32, blk_lo: u32,  // word offsets in aux of the stage's blocks (hi and lo planes)
  words: u32, bits: u32,     // 'codes': qweight words per row, bits per code
  dvec: u32, fp16: u32,      // consts: the grid values at 0, D at dvec; 'final': the fp16 casts
};
@group(0) @binding(0) var<uniform> p: Params;`;

/** Two-float steps: x·c added to acc, renormalised. */
const PAIRS = /* wgsl */ `
fn renorm(v: vec2f) -> vec2f { return two_sum(v.x, v.y); }

/** acc + x·c for pairs x, c (x.lo·c.lo, below 2⁻⁴⁸ of the product, left out). */
fn mul_add(acc: vec2f, x: vec2f, c: vec2f) -> vec2f {
  let pe = two_prod(x.x, c.x);
  let cross = keep(keep(x.x * c.y) + keep(x.y * c.x));
  let s = two_sum(acc.x, pe.x);
  return renorm(vec2f(s.x, keep(keep(acc.y + s.y) + keep(pe.y + cross))));
}

fn aux_f(i: u32) -> f32 { return bitcast<f32>(aux[i]); }
fn blk(i: u32) -> vec2f { return vec2f(aux_f(p.blk_hi + i), aux_f(p.blk_lo + i)); }
`;

/** x rounded to fp16 (ties to even), as a float32: the host's half() of a float32 value. */
const HALF = /* wgsl */ `
fn half(x: f32) -> f32 {
  let b = bitcast<u32>(x);
  let s = b & 0x80000000u;
  let e = (b >> 23u) & 0xffu;
  if (e >= 113u && e <= 142u) { // normal fp16 range: 10 significand bits kept
    let r = (b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u;
    if (((r >> 23u) & 0xffu) > 142u) { return bitcast<f32>(s | 0x7f800000u); }
    return bitcast<f32>(r);
  }
  if (e == 255u) { return x; }
  if (e > 142u) { return bitcast<f32>(s | 0x7f800000u); }
  if (e <= 101u) { return bitcast<f32>(s); } // below 2⁻²⁵: zero (2⁻²⁵ itself ties to the even 0)
  // fp16 subnormals: multiples of 2⁻²⁴, the significand shifted right by 126 − e (14..24) with ties to even
  let mant = (b & 0x7fffffu) | 0x800000u;
  let sh = 126u - e;
  var q = mant >> sh;
  let rem = mant & ((1u << sh) - 1u);
  let h = 1u << (sh - 1u);
  if (rem > h || (rem == h && (q & 1u) == 1u)) { q = q + 1u; }
  return bitcast<f32>(bitcast<u32>(f32(q) * 0x1p-24f) | s);
}
`;

const BINDINGS: Record<QuipStage, string> = {
  codes: `@group(0) @binding(1) var<storage, read> qweight: array<u32>;
@group(0) @binding(2) var<storage, read> consts: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_hi: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_lo: array<f32>;`,
  pairs: `@group(0) @binding(1) var<storage, read> aux: array<u32>;
@group(0) @binding(2) var<storage, read> in_hi: array<f32>;
@group(0) @binding(3) var<storage, read> in_lo: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_hi: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_lo: array<f32>;`,
  final: `@group(0) @binding(1) var<storage, read> consts: array<f32>;
@group(0) @binding(2) var<storage, read> aux: array<u32>;
@group(0) @binding(3) var<storage, read> in_hi: array<f32>;
@group(0) @binding(4) var<storage, read> in_lo: array<f32>;
@group(0) @binding(5) var<storage, read_write> w: array<f32>;`,
};

/** Entry k of vector v of the stage's input (before the gather). */
const LOAD: Record<QuipStage, string> = {
  codes: `fn load_in(v: u32, k: u32) -> vec2f {
  // vector v is row v of the codes, entry k its code k (at bit k·bits of the row, least significant first)
  let pos = k * p.bits;
  let o = v * p.words + (pos >> 5u);
  let off = pos & 31u;
  var c = qweight[o] >> off;
  if (off + p.bits > 32u) { c = c | (qweight[o + 1u] << (32u - off)); }
  return vec2f(consts[c & ((1u << p.bits) - 1u)], 0.0);
}`,
  pairs: `fn load_in(v: u32, k: u32) -> vec2f { let i = v * p.sv + k * p.sj; return vec2f(in_hi[i], in_lo[i]); }`,
  final: `fn load_in(v: u32, k: u32) -> vec2f { let i = v * p.sv + k * p.sj; return vec2f(in_hi[i], in_lo[i]); }`,
};

const STORE: Record<QuipStage, string> = {
  codes: `fn store(i: u32, v: u32, y: vec2f) { out_hi[i] = y.x; out_lo[i] = y.y; }`,
  pairs: `fn store(i: u32, v: u32, y: vec2f) { out_hi[i] = y.x; out_lo[i] = y.y; }`,
  // vector v is column v: y.x is the float32 nearest the pair (renormalised), the host's f(y)
  final: `fn store(i: u32, v: u32, y: vec2f) {
  let d = consts[p.dvec + v];
  if (p.fp16 == 1u) { w[i] = half(div_cr(half(y.x), d)); } else { w[i] = div_cr(y.x, d); }
}`,
};

export function quipStageWgsl(stage: QuipStage): string {
  return `${PARAMS}
${BINDINGS[stage]}
const WG: u32 = ${QUIP_WG}u;
${FLAT_INDEX}
${FLOAT_CONSTS}
${TWO_SUM}
${TWO_PRODUCT}
${PAIRS}
${stage === 'final' ? `${DIV_CR}\n${HALF}` : ''}
${LOAD[stage]}
${STORE[stage]}

fn gathered(v: u32, k: u32) -> vec2f {
  if (p.gather == ${QUIP_NONE}u) { return load_in(v, k); }
  return load_in(v, aux[p.gather + k]);
}

@compute @workgroup_size(${QUIP_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = flat_index(gid, nwg);
  if (idx >= p.m * p.n) { return; }
  let v = idx / p.n;
  let j = idx % p.n;
  let al = j / p.b;
  let be = j % p.b;
  var acc = vec2f(0.0);
  if (p.run == 1u) {
    let o = al * p.b * p.b + be; // block α, column β
    for (var t = 0u; t < p.b; t++) { acc = mul_add(acc, gathered(v, al * p.b + t), blk(o + t * p.b)); }
  } else {
    let o = be * p.a * p.a + al; // block β, column α
    for (var t = 0u; t < p.a; t++) { acc = mul_add(acc, gathered(v, t * p.b + be), blk(o + t * p.a)); }
  }
  var e = j;
  if (p.scatter != ${QUIP_NONE}u) { e = aux[p.scatter + j]; }
  store(v * p.sv + e * p.sj, v, acc);
}`;
}
