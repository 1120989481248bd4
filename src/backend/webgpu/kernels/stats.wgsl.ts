/**
 * Per-channel activation statistics for the quantizers: acc[c] = max(acc[c], max_t |x[t, c]|) over
 * x[T, C], one invocation per channel walking the rows in order with the host's comparison
 * (`a > m`, so a NaN is skipped as on the host). A maximum has no rounding: the result equals the
 * host's bit for bit (SmoothQuant's act scales, get_act_scales).
 */
export const STATS_WG = 64;

export const COLUMN_ABS_MAX_WGSL = /* wgsl */ `
struct Params { T: u32, C: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;

@compute @workgroup_size(${STATS_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.C) { return; }
  var m = acc[c];
  for (var t = 0u; t < p.T; t++) {
    let a = abs(x[t * p.C + c]);
    if (a > m) { m = a; }
  }
  acc[c] = m;
}
`;
