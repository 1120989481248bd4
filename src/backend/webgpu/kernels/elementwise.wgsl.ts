/**
 * Element-wise kernels, one invocation per element: add, mul, siluMul, scale and siluMul's backward,
 * rope (per rotated pair) and the embedding gather (per output element). Each is a few lines over a flat index.
 */
import { FLAT_INDEX, weightAccess, type WeightDtype } from './common.wgsl.js';

export const ELEM_WG = 256;

const HEAD = /* wgsl */ `
const WG: u32 = ${ELEM_WG}u;
${FLAT_INDEX}
`;

export type BinaryOp = 'add' | 'mul' | 'silu_mul';
const BINARY: Record<BinaryOp, string> = { add: 'a[i] + b[i]', mul: 'a[i] * b[i]', silu_mul: '(a[i] / (1.0 + exp(-a[i]))) * b[i]' };

/** y = a + b, y = a · b, or y = silu(a) · b = a / (1 + exp(−a)) · b. */
export function binaryWgsl(op: BinaryOp): string {
  const expr = BINARY[op];
  return `${HEAD}
struct Params { n: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${ELEM_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i < p.n) { y[i] = ${expr}; }
}`;
}

/**
 * Rotate-half RoPE of x[T, H·hd] into y: pair (i, i + hd/2) of head h at row t rotated by
 * cos/sin[t, i]; one invocation per pair.
 */
export const ROPE_WGSL = `${HEAD}
struct Params { T: u32, H: u32, half: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cs: array<f32>;
@group(0) @binding(3) var<storage, read> sn: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${ELEM_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat_index(gid, nwg);
  let pairs = p.H * p.half;
  if (j >= p.T * pairs) { return; }
  let t = j / pairs;
  let h = (j % pairs) / p.half;
  let i = j % p.half;
  let o = t * pairs * 2u + h * p.half * 2u + i;
  let a = x[o];
  let b = x[o + p.half];
  let c = cs[t * p.half + i];
  let s = sn[t * p.half + i];
  y[o] = a * c - b * s;
  y[o + p.half] = b * c + a * s;
}`;

/**
 * out[i, d] = table[ids[i], d] for the ids inside this part of the table (rows r0..r0+rows), the
 * table stored in its dtype; one invocation per output element.
 */
export function embeddingWgsl(dtype: WeightDtype): string {
  return `${HEAD}
struct Params { n: u32, D: u32, r0: u32, rows: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${weightAccess('table', 3, dtype)}
@compute @workgroup_size(${ELEM_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat_index(gid, nwg);
  if (j >= p.n * p.D) { return; }
  let id = ids[j / p.D];
  if (id < p.r0 || id >= p.r0 + p.rows) { return; }
  y[j] = load_table((id - p.r0) * p.D + j % p.D);
}`;
}

/**
 * y = x · s for a float64 s given as two floats (hi, lo), hi + lo = s to about 2⁻⁴⁸: fma(x, hi, x·lo),
 * within one ulp of the host's Math.fround(x · s) (equal where the device fuses the fma and s is a
 * float32; lavapipe may split it into a rounded product and a sum).
 */
export const SCALE_WGSL = `${HEAD}
struct Params { n: u32, hi: f32, lo: f32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${ELEM_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i < p.n) { y[i] = fma(x[i], p.hi, x[i] * p.lo); }
}`;

/**
 * The gradients of siluMul for output gradient dy, with σ = 1 / (1 + exp(−g)):
 * dUp = dy · g · σ, dGate = dy · u · σ · (1 + g · (1 − σ)) (gradKernels.ts, in float32 here).
 */
export const SILU_MUL_BACKWARD_WGSL = `${HEAD}
struct Params { n: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_gate: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_up: array<f32>;
@compute @workgroup_size(${ELEM_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let g = gate[i];
  let sg = 1.0 / (1.0 + exp(-g));
  d_up[i] = dy[i] * g * sg;
  d_gate[i] = dy[i] * up[i] * sg * (1.0 + g * (1.0 - sg));
}`;
