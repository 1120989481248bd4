/**
 * Row-wise kernels, one workgroup of WG invocations per row: rmsnorm, its backward, and the per-row
 * symmetric absmax fake quantization (SmoothQuant's per-token activations). Reductions go through workgroup
 * memory in a fixed tree, so results do not depend on scheduling.
 */
import { DIV_CR, FLAT_INDEX, FLOAT_CONSTS, weightAccess, type WeightDtype } from './common.wgsl.js';

export const ROW_WG = 64;

const HEAD = /* wgsl */ `
const WG: u32 = ${ROW_WG}u;
struct Params { rows: u32, D: u32, f: u32, zero: u32 }; // zero: left 0 by every dispatch (div_cr's barrier)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
var<workgroup> part: array<f32, ${ROW_WG}>;
${FLAT_INDEX}
`;

/**
 * y[m, :] = (x[m, :] · r) · gamma with r = 1 / sqrt(mean(x[m, :]²) + eps) (the host's order of
 * roundings; the sum of squares is float32 here, float64 there). p.f: eps as bits.
 */
export function rmsnormWgsl(gammaDtype: WeightDtype): string {
  return `${HEAD}${weightAccess('gamma', 3, gammaDtype)}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = flat_group(wid, nwg);
  if (row >= p.rows) { return; }
  let o = row * p.D;
  var ss = 0.0;
  for (var i = lid.x; i < p.D; i += WG) { let v = x[o + i]; ss += v * v; }
  part[lid.x] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { part[lid.x] += part[lid.x + s]; }
    workgroupBarrier();
  }
  let r = 1.0 / sqrt(part[0] / f32(p.D) + bitcast<f32>(p.f));
  for (var i = lid.x; i < p.D; i += WG) { y[o + i] = (x[o + i] * r) * load_gamma(i); }
}`;
}

/**
 * y = round(x / s) · s per row, s = max(max|x|, 1e-5) / qmax, ties to even, every operation a
 * correctly rounded float32 one (div_cr for the two divisions), so equal bit for bit to the host's
 * quantizeRowsAbsmax. p.f: qmax.
 */
export const QUANTIZE_ROWS_WGSL = `${HEAD}${FLOAT_CONSTS}${DIV_CR}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = flat_group(wid, nwg);
  if (row >= p.rows) { return; }
  let o = row * p.D;
  var mx = 0.0;
  for (var i = lid.x; i < p.D; i += WG) { let a = abs(x[o + i]); if (a > mx) { mx = a; } }
  part[lid.x] = mx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s && part[lid.x + s] > part[lid.x]) { part[lid.x] = part[lid.x + s]; }
    workgroupBarrier();
  }
  let sc = div_cr(max(part[0], 1e-5), bitcast<f32>(p.f));
  for (var i = lid.x; i < p.D; i += WG) { y[o + i] = round(div_cr(x[o + i], sc)) * sc; }
}`;

/**
 * The input gradient of rmsnorm for output gradient dy (gamma frozen), per row:
 * r = 1/sqrt(mean(x²) + eps), dx = r·gamma⊙dy − (r³/D)·x·Σ_j x_j·gamma_j·dy_j. Both row sums are
 * float32 (per-invocation strided sums, then the fixed tree), the host's float64; the parity suite
 * states the tolerance. p.f: eps as bits; dy at binding 4.
 */
export function rmsnormBackwardWgsl(gammaDtype: WeightDtype): string {
  return `${HEAD}${weightAccess('gamma', 3, gammaDtype)}
@group(0) @binding(4) var<storage, read> dy: array<f32>;
var<workgroup> part_dot: array<f32, ${ROW_WG}>;
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = flat_group(wid, nwg);
  if (row >= p.rows) { return; }
  let o = row * p.D;
  var ss = 0.0;
  var dot = 0.0;
  for (var i = lid.x; i < p.D; i += WG) { let v = x[o + i]; ss += v * v; dot += v * load_gamma(i) * dy[o + i]; }
  part[lid.x] = ss;
  part_dot[lid.x] = dot;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { part[lid.x] += part[lid.x + s]; part_dot[lid.x] += part_dot[lid.x + s]; }
    workgroupBarrier();
  }
  let r = 1.0 / sqrt(part[0] / f32(p.D) + bitcast<f32>(p.f));
  let c = (r * r * r * part_dot[0]) / f32(p.D);
  for (var i = lid.x; i < p.D; i += WG) { y[o + i] = r * load_gamma(i) * dy[o + i] - c * x[o + i]; }
}`;
}
