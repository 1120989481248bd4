/**
 * In-shader decoders of the stored kinds (tensor/kinds.ts) and of GPTQ with float zero points: each is
 * a `fn w_at(n: u32, k: u32) -> f32` = W[n, k] of a weight [p.N, p.K], composed with the GEMM bodies
 * of linear.wgsl.ts (forward) and gemmT.wgsl.ts (linearT) exactly as the GPTQ/AWQ decoders are. A
 * layer's stored parts live in ONE storage buffer `kw` of u32 words (each part starts on a word, bytes
 * little-endian as the host wrote them), so a kind with seven parts still takes one binding; `kmeta`
 * holds the word offset of each part and the kind's integers (kindDecoders.ts writes both).
 *
 * Every decoder repeats its kind's `decodeRows` in float32, the same operations in the same order, so
 * the value is the CPU's bit for bit (test/backend/kindDecoders.test.ts). Each rounding the CPU does
 * is forced here with `kd_keep` (the value XOR a runtime zero, kmeta[0]): lavapipe's compiler treats
 * float arithmetic as reassociable and may fuse a product into the next add (an fma has one rounding
 * where the CPU has two); an opaque value cannot be rewritten (common.wgsl.ts TWO_SUM does the same).
 */

/** Parameters stored as f32 or f16 (PB-LLM's μ, α and scale; BiLLM's params): `kd_par(off, i)`. */
export type ParamDtype = 'f32' | 'f16';

const HELPERS = /* wgsl */ `
@group(0) @binding(3) var<storage, read> kmeta: array<u32>;
@group(0) @binding(4) var<storage, read> kw: array<u32>;
fn kd_keep(v: f32) -> f32 { return bitcast<f32>(bitcast<u32>(v) ^ kmeta[0]); }
fn kd_byte(off: u32, i: u32) -> u32 { return (kw[off + (i >> 2u)] >> ((i & 3u) * 8u)) & 255u; }
fn kd_f32(off: u32, i: u32) -> f32 { return bitcast<f32>(kw[off + i]); }
fn kd_f16(off: u32, i: u32) -> f32 { let h = unpack2x16float(kw[off + (i >> 1u)]); return select(h.x, h.y, (i & 1u) == 1u); }
/** bit pos of a bit plane stored as bytes (bit pos & 7 of byte pos >> 3) */
fn kd_bit(off: u32, pos: u32) -> u32 { return (kw[off + (pos >> 5u)] >> (pos & 31u)) & 1u; }
`;

const param = (dtype: ParamDtype) => `fn kd_par(off: u32, i: u32) -> f32 { return kd_${dtype}(off, i); }\n`;

/**
 * NF4 / ICQ (tensor/nf4Pack.ts), weight i = n·K + k in blocks of 64. kmeta: [zero, codes, absmax,
 * absmax2, offset, tau_quant, tau_absmax, b0]; b0 = the layer's block of this part's block 0 (a part of
 * rows starts on a block; absmax2 and tau_absmax are whole). The constant tables at binding 5, one
 * buffer per device (kindDecoders.ts): the 16 NF4 levels, then the 256 values of the dynamic map.
 *   absmax_b = absmax[b] | fround(fround(map[q_b] · absmax2[(b0 + b)/256]) + offset)
 *   w = fround(level · absmax_b) (+ τ_b = fround(map[tq_b] · tau_absmax[(b0 + b)/256]), one more rounding)
 */
export function nf4WAt(doubleQuant: boolean, icq: boolean): string {
  const absmax = doubleQuant
    ? 'kd_keep(ktab[16u + kd_byte(kmeta[2], b)] * kd_f32(kmeta[3], (kmeta[7] + b) >> 8u)) + kd_f32(kmeta[4], 0u)'
    : 'kd_f32(kmeta[2], b)';
  const tau = icq ? ' + kd_keep(ktab[16u + kd_byte(kmeta[5], b)] * kd_f32(kmeta[6], (kmeta[7] + b) >> 8u))' : '';
  return `${HELPERS}
@group(0) @binding(5) var<storage, read> ktab: array<f32>;
fn w_at(n: u32, k: u32) -> f32 {
  let i = n * p.K + k;
  let b = i >> 6u;
  let byte = kd_byte(kmeta[1], i >> 1u);
  let code = select(byte & 15u, byte >> 4u, (i & 1u) == 0u);
  let am = kd_keep(${absmax});
  return kd_keep(ktab[code] * am)${tau};
}
`;
}

/**
 * DB-LLM (tensor/dbllmPack.ts). kmeta: [zero, planes, alphas, rows, g, groups]. Bit (plane, n, k) is
 * bit (plane·rows + n)·K + k of the planes (K a multiple of 8); w = α1·b1 + α2·b2, (0, 0) = +0.
 */
export const DBLLM_W_AT = `${HELPERS}
fn w_at(n: u32, k: u32) -> f32 {
  let b1 = kd_bit(kmeta[1], n * p.K + k);
  let b2 = kd_bit(kmeta[1], (kmeta[3] + n) * p.K + k);
  let a = kmeta[2] + (n * kmeta[5] + k / kmeta[4]) * 2u;
  let a1 = kd_f32(a, 0u);
  let a2 = kd_f32(a, 1u);
  if (b1 == 1u && b2 == 1u) { return a1 + a2; }
  if (b1 == 1u) { return a1; }
  if (b2 == 1u) { return a2; }
  return 0.0;
}
`;

/**
 * PB-LLM (tensor/pbllmPack.ts). kmeta: [zero, signs, salient, codes, mu, alpha, scale, zero, prefix,
 * G, groups]. Bit n·K + k of each plane (K a multiple of 8). A coded (salient, sign 0) weight's code is
 * entry j of `codes`, j = the coded bits before it: prefix[pos / 128] (made on the host, one u32 per
 * 128 weights, kindDecoders.ts) plus the popcounts of the words between.
 */
export function pbllmWAt(dtype: ParamDtype): string {
  return `${HELPERS}${param(dtype)}
fn w_at(n: u32, k: u32) -> f32 {
  let pos = n * p.K + k;
  let sal = kd_bit(kmeta[2], pos);
  let sgn = kd_bit(kmeta[1], pos);
  let g = n * kmeta[10] + k / kmeta[9];
  let mu = kd_par(kmeta[4], g);
  if (sal == 0u) {
    let alpha = kd_par(kmeta[5], g);
    return select(mu - alpha, mu + alpha, sgn == 1u);
  }
  if (sgn == 1u) { return mu; }
  var j = kw[kmeta[8] + (pos >> 7u)];
  let w = pos >> 5u;
  for (var v = (pos >> 7u) << 2u; v < w; v++) { j += countOneBits(kw[kmeta[2] + v] & ~kw[kmeta[1] + v]); }
  let below = (1u << (pos & 31u)) - 1u;
  j += countOneBits(kw[kmeta[2] + w] & ~kw[kmeta[1] + w] & below);
  let code = kd_byte(kmeta[3], j);
  let zero = kd_byte(kmeta[7], n);
  return kd_par(kmeta[6], n) * f32(i32(code) - i32(zero));
}
`;
}

/**
 * BiLLM (tensor/billmPack.ts). kmeta: [zero, planes, salient, params, zero_signs, zrow, rows, B, g,
 * blocks]. Plane bytes per row B = ceil(K/8); params [rows, blocks, 8]: μ, α of group 1, group 2,
 * salient order 1, order 2. Non-salient w = fround(s·α + μ); salient w = fround(b1 + b2), each bᵢ
 * one rounding; a sign listed in zero_signs (ascending 2·(n·K + k) + plane) is 0, searched among row
 * n's entries zrow[n]..zrow[n + 1] (an index made at upload, one word per row; most rows have none).
 */
export function billmWAt(dtype: ParamDtype): string {
  return `${HELPERS}${param(dtype)}
fn zero_sign(v: u32, first: u32, end: u32) -> bool {
  var lo = first;
  var hi = end;
  while (lo < hi) {
    let mid = (lo + hi) >> 1u;
    if (kw[kmeta[4] + mid] < v) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo < end && kw[kmeta[4] + lo] == v;
}
fn w_at(n: u32, k: u32) -> f32 {
  let byte = n * kmeta[7] + (k >> 3u);
  let bit = k & 7u;
  let bit0 = (kd_byte(kmeta[1], byte) >> bit) & 1u;
  let bit1 = (kd_byte(kmeta[1], kmeta[6] * kmeta[7] + byte) >> bit) & 1u;
  let pb = (n * kmeta[9] + k / kmeta[8]) * 8u;
  let z = 2u * (n * p.K + k);
  let zfirst = kw[kmeta[5] + n];
  let zend = kw[kmeta[5] + n + 1u];
  var s1 = f32(i32(2u * bit0) - 1);
  if (zfirst < zend && zero_sign(z, zfirst, zend)) { s1 = 0.0; }
  if (kd_byte(kmeta[2], k) == 0u) {
    let q = pb + select(0u, 2u, bit1 == 1u);
    return s1 * kd_par(kmeta[3], q + 1u) + kd_par(kmeta[3], q);
  }
  var s2 = f32(i32(2u * bit1) - 1);
  if (zfirst < zend && zero_sign(z + 1u, zfirst, zend)) { s2 = 0.0; }
  let b1 = kd_keep(s1 * kd_par(kmeta[3], pb + 5u) + kd_par(kmeta[3], pb + 4u));
  let b2 = kd_keep(s2 * kd_par(kmeta[3], pb + 7u) + kd_par(kmeta[3], pb + 6u));
  return b1 + b2;
}
`;
}

/**
 * GPTQ v1 codes with float zero points (GptqPacked.zerosF, QA-LoRA's merge). kmeta: [zero, qweight,
 * scales, g_idx, zerosF, bits]. The CPU computes fround(scale · (q − zF)) in float64; here
 * q − zF = d + e exactly (TwoSum), scale·d = ph + pl exactly (Dekker's TwoProduct), and the float32 result is
 * ph + (pl + scale·e): the correctly rounded value whenever the float64 product needed no rounding
 * of its own (the float64 path can round twice; the test counts the differences).
 */
export const GPTQ_FLOAT_ZEROS_W_AT = `${HELPERS}
fn kd_split(a: f32) -> vec2f {
  let c = kd_keep(4097.0 * a);
  let hi = kd_keep(c - kd_keep(c - a));
  return vec2f(hi, kd_keep(a - hi));
}
/** a·b − p exactly for p = fl(a·b) (Dekker's TwoProduct: WGSL does not promise a fused fma) */
fn two_product_err(a: f32, b: f32, p: f32) -> f32 {
  let x = kd_split(a);
  let y = kd_split(b);
  let t = kd_keep(kd_keep(kd_keep(x.x * y.x) - p) + kd_keep(x.x * y.y));
  return kd_keep(kd_keep(t + kd_keep(x.y * y.x)) + kd_keep(x.y * y.y));
}
fn w_at(n: u32, k: u32) -> f32 {
  let bits = kmeta[5];
  let mask = (1u << bits) - 1u;
  let pos = k * bits;
  let wi = pos >> 5u;
  let off = pos & 31u;
  var v = kw[kmeta[1] + wi * p.N + n] >> off;
  if (off + bits > 32u) { v |= kw[kmeta[1] + (wi + 1u) * p.N + n] << (32u - off); }
  let g = kw[kmeta[3] + k];
  let s = kd_f32(kmeta[2], g * p.N + n);
  let zf = kd_f32(kmeta[4], g * p.N + n);
  let q = f32(v & mask);
  let d = kd_keep(q - zf);
  let bb = kd_keep(d - q);
  let aa = kd_keep(d - bb);
  let e = kd_keep(q - aa) + kd_keep(-zf - bb);
  let ph = kd_keep(s * d);
  let pl = two_product_err(s, d, ph);
  return ph + kd_keep(pl + kd_keep(s * e));
}
`;
