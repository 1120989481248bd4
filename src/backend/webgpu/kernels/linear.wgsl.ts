/**
 * y[M, ldy] (columns n0..n0+N) = x[M, K] · W[N, K]ᵀ: the reference kernel, the weight decoders and
 * their composition with any body (linearWithDecoder; the fast bodies are in linearFast.wgsl.ts).
 * The reference is a plain tiled kernel. A 16×16 workgroup
 * computes a 64×64 output tile, 4×4 outputs per invocation, stepping K by 16 through workgroup
 * memory; float32 accumulation in k order (the first version, one output per invocation, ran at a
 * third of this speed on lavapipe). The weight is read through `w_at(n, k)`, given per
 * variant: a dense f32/f16/bf16 panel, or GPTQ / AWQ codes decoded on the fly (scale · (q − zero),
 * one float32 rounding, as dequantizeGptq on the host).
 */
import { weightAccess, type WeightDtype } from './common.wgsl.js';
import { GEMV_BODY, fastParams, tiledBody, tileKey, type TileShape } from './linearFast.wgsl.js';

/** Output tile per workgroup (LINEAR_TILE × LINEAR_TILE), K step through workgroup memory, outputs per invocation per side. */
export const LINEAR_TILE = 64;
const BK = 16;
const PER = 4;
const THREADS = LINEAR_TILE / PER; // 16 × 16 invocations

const PARAMS = /* wgsl */ `
struct Params { M: u32, N: u32, K: u32, ldy: u32, n0: u32, bits: u32, groups: u32, zw: u32, gsize: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
`;

// Invocation (ty, tx) owns rows m0 + ty + 16i and columns n0 + tx + 16j (i, j < 4). Each K step
// loads a 64×16 slice of x and of W (4 elements per invocation) into workgroup memory.
const BODY = /* wgsl */ `
const TILE: u32 = ${LINEAR_TILE}u;
const BK: u32 = ${BK}u;
const T: u32 = ${THREADS}u;
var<workgroup> xs: array<f32, ${LINEAR_TILE * BK}>;
var<workgroup> ws: array<f32, ${LINEAR_TILE * BK}>;

@compute @workgroup_size(${THREADS}, ${THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * TILE;
  let n0 = wid.x * TILE;
  var acc: array<f32, ${PER * PER}>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var e = 0u; e < ${(LINEAR_TILE * BK) / (THREADS * THREADS)}u; e++) {
      let idx = li + e * T * T;
      let r = idx / BK;
      let k = k0 + idx % BK;
      var xv = 0.0;
      if (m0 + r < p.M && k < p.K) { xv = x[(m0 + r) * p.K + k]; }
      xs[idx] = xv;
      var wv = 0.0;
      if (n0 + r < p.N && k < p.K) { wv = w_at(n0 + r, k); }
      ws[idx] = wv;
    }
    workgroupBarrier();
    let kn = min(BK, p.K - k0);
    for (var kk = 0u; kk < kn; kk++) {
      var a: array<f32, ${PER}>;
      var b: array<f32, ${PER}>;
      for (var i = 0u; i < ${PER}u; i++) { a[i] = xs[(lid.y + T * i) * BK + kk]; b[i] = ws[(lid.x + T * i) * BK + kk]; }
      for (var i = 0u; i < ${PER}u; i++) {
        for (var j = 0u; j < ${PER}u; j++) { acc[i * ${PER}u + j] += a[i] * b[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${PER}u; i++) {
    let m = m0 + lid.y + T * i;
    for (var j = 0u; j < ${PER}u; j++) {
      let n = n0 + lid.x + T * j;
      if (m < p.M && n < p.N) { y[m * p.ldy + p.n0 + n] = acc[i * ${PER}u + j]; }
    }
  }
}
`;

/**
 * The weight decoders, each `fn w_at(n, k) -> f32` = W[n, k] of a weight [p.N, p.K] with its
 * buffers from binding 3; they read p.N, p.K and (quantized) p.bits, p.zw, p.gsize, so a kernel
 * using one declares a `p` with those fields. The backward's transposed GEMM (gemmT.wgsl.ts)
 * reuses them.
 */
export function denseWAt(dtype: WeightDtype): string {
  return `${weightAccess('w', 3, dtype)}
fn w_at(n: u32, k: u32) -> f32 { return load_w(n * p.K + k); }
`;
}

/**
 * Which body a linear kernel runs: the reference tile above, the fast tiled kernel (linearFast.wgsl.ts)
 * with its output tile and x read as vec4 or scalars, or the small-M GEMV.
 */
export type LinearVariant =
  | { readonly body: 'reference' }
  | { readonly body: 'tiled'; readonly tile: TileShape; readonly x4: boolean }
  | { readonly body: 'gemv' };

export const REFERENCE_VARIANT: LinearVariant = Object.freeze({ body: 'reference' });

/** A short name of the variant for pipeline keys: `ref`, `t128x128v4` (linearFast.wgsl.ts: tileKey), `gemv`. */
export function variantKey(v: LinearVariant): string {
  return v.body === 'tiled' ? `${tileKey(v.tile)}${v.x4 ? 'v4' : ''}` : v.body === 'gemv' ? 'gemv' : 'ref';
}

/**
 * The WGSL of a linear kernel: `wAt` (a weight decoder, `fn w_at(n: u32, k: u32) -> f32` reading
 * the uniform `p` and its buffers from binding 3) composed as PARAMS + W_AT + BODY with the
 * variant's body. Every stored kind's decoder composes with every body.
 */
export function linearWithDecoder(wAt: string, variant: LinearVariant = REFERENCE_VARIANT): string {
  if (variant.body === 'reference') return `${PARAMS}${wAt}${BODY}`;
  if (variant.body === 'gemv') return `${fastParams(false)}${wAt}${GEMV_BODY}`;
  return `${fastParams(variant.x4)}${wAt}${tiledBody(variant.tile, variant.x4)}`;
}


/**
 * GPTQ v1 layout (tensor/packed.ts GptqPacked): qweight [ceil(K·bits/32), N] packed along the input,
 * qzeros [groups, zw] holding zero − 1 packed along the output, scales [groups, N], g_idx [K].
 */
export const GPTQ_W_AT = `
@group(0) @binding(3) var<storage, read> qweight: array<u32>;
@group(0) @binding(4) var<storage, read> qzeros: array<u32>;
@group(0) @binding(5) var<storage, read> scales: array<f32>;
@group(0) @binding(6) var<storage, read> g_idx: array<u32>;
fn w_at(n: u32, k: u32) -> f32 {
  let mask = (1u << p.bits) - 1u;
  let pos = k * p.bits;
  let wi = pos >> 5u;
  let off = pos & 31u;
  var v = qweight[wi * p.N + n] >> off;
  if (off + p.bits > 32u) { v |= qweight[(wi + 1u) * p.N + n] << (32u - off); }
  let g = g_idx[k];
  let zpos = n * p.bits;
  let zi = g * p.zw + (zpos >> 5u);
  let zoff = zpos & 31u;
  var z = qzeros[zi] >> zoff;
  if (zoff + p.bits > 32u) { z |= qzeros[zi + 1u] << (32u - zoff); }
  let zero = ((z & mask) + 1u) & mask;
  return scales[g * p.N + n] * f32(i32(v & mask) - i32(zero));
}
`;

/**
 * AutoAWQ GEMM layout (tensor/packed.ts AwqPacked), 4 bits: qweight [K, N/8] packed along the
 * output, output column 8w + j in nibble [0, 4, 1, 5, 2, 6, 3, 7][j]; qzeros [K/g, N/8] the zero
 * points themselves, same order; scales [K/g, N].
 */
export const AWQ_W_AT = `
@group(0) @binding(3) var<storage, read> qweight: array<u32>;
@group(0) @binding(4) var<storage, read> qzeros: array<u32>;
@group(0) @binding(5) var<storage, read> scales: array<f32>;
fn w_at(n: u32, k: u32) -> f32 {
  let j = n & 7u;
  let shift = 4u * (((j & 1u) << 2u) | (j >> 1u));
  let words = p.N >> 3u;
  let g = k / p.gsize;
  let code = (qweight[k * words + (n >> 3u)] >> shift) & 15u;
  let zero = (qzeros[g * words + (n >> 3u)] >> shift) & 15u;
  return scales[g * p.N + n] * f32(i32(code) - i32(zero));
}
`;
