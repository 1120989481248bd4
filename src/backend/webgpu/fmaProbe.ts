/// <reference types="@webgpu/types" />
/**
 * Whether the device's WGSL `fma()` is fused (one rounding of a·b + c). WGSL, like Vulkan's precision
 * rules, allows fma() to be a multiply then an add; lavapipe (llvmpipe: `lower_ffma32`) computes it that
 * way, NVIDIA's FFMA is fused. The two-float kernels may compute TwoProduct's error as fma(a, b, −fl(a·b))
 * only where it is fused: then it is the exact error, the value Dekker's split products give.
 *
 * The probe is one dispatch at device acquisition (capabilities.ts), once per process: the device
 * evaluates fma(a, b, −p) with p = fl(a·b) and fma(a, b, c) with c cancelling p to within a few ulps, for a
 * fixed set of hard float32 pairs, read from a storage buffer so the compiler cannot fold them; the host
 * computes each exact answer in float64 (a·b of two float32 is exact there, and every answer here is a small
 * multiple of ulp(p)·2⁻²⁴, exact too) and rounds it once. Fused only if every case is bit-exact. Products lie
 * within [2⁻⁶⁰, 2⁶⁰] in magnitude: their errors stay normal floats (a flush-to-zero device is not misjudged),
 * and nothing overflows.
 * LOWBIT_WEBGPU_FMA=probe (default) | off: `off` skips the probe and keeps the exact emulation (split products).
 */

export type FmaChoice = 'probe' | 'off';

/** LOWBIT_WEBGPU_FMA: 'off' skips the probe; unset, '' or 'probe' runs it; anything else is refused in one line. */
export function fmaChoice(): FmaChoice {
  const v = typeof process === 'undefined' ? undefined : process.env?.LOWBIT_WEBGPU_FMA;
  if (v !== undefined && v !== '' && v !== 'probe' && v !== 'off') {
    throw new Error(`LOWBIT_WEBGPU_FMA is '${v}'; expected 'probe' or 'off'`);
  }
  return v === 'off' ? 'off' : 'probe';
}

/** The probe's inputs, a, b, c of each case, and the exact answer fl(a·b + c) the host computed. */
export interface FmaCases { readonly a: Float32Array; readonly b: Float32Array; readonly c: Float32Array; readonly want: Float32Array }

const f = Math.fround;
const bitsOf = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!;
const fromBits = (u: number) => new Float32Array(new Uint32Array([u >>> 0]).buffer)[0]!;

/**
 * The fixed cases, in pairs: (a, b, −fl(a·b)) — fma's answer is TwoProduct's error — and (a, b, c) with c
 * = −fl(a·b) moved by 1 to 3 ulps (answer: the error plus those ulps, rounded once; a multiply-then-add gives
 * the ulps alone). Pairs: random significands over exponents −20..20, powers of two ± 1..3 ulps, all-ones
 * significands ((2 − 2⁻²³)²), Veltkamp's 4097 and 13-bit significands (products with ties at 24 bits), and
 * factors of 2³⁰ beside 2⁻³⁰. Deterministic (a fixed LCG), 128 pairs: 256 cases.
 */
export function fmaProbeCases(): FmaCases {
  let seed = 0x13579bdf;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const sign = () => (rnd() < 0.5 ? -1 : 1);
  const sig = () => 1 + Math.floor(rnd() * 2 ** 23) * 2 ** -23; // a random float32 significand in [1, 2)
  const pairs: [number, number][] = [];
  for (let i = 0; i < 64; i++) pairs.push([sign() * sig() * 2 ** Math.floor(rnd() * 41 - 20), sign() * sig() * 2 ** Math.floor(rnd() * 41 - 20)]);
  for (let i = 1; i <= 3; i++) {
    for (let j = 1; j <= 3; j++) {
      pairs.push([1 + i * 2 ** -23, 1 - j * 2 ** -24], [1 + i * 2 ** -23, 1 + j * 2 ** -23], [-(2 - i * 2 ** -23), 4 - j * 2 ** -22]);
    }
  }
  pairs.push([2 - 2 ** -23, 2 - 2 ** -23], [-(2 - 2 ** -23), 1 + 2 ** -23], [4097, 1 + 2 ** -23], [4097 * 2 ** -12, 3 - 2 ** -22]);
  while (pairs.length < 112) pairs.push([sign() * (4096 + Math.floor(rnd() * 4096)) * 2 ** -12, sign() * (4096 + Math.floor(rnd() * 4096)) * 2 ** -11]);
  while (pairs.length < 128) pairs.push([sign() * sig() * 2 ** 30, sign() * sig() * 2 ** -30 * (rnd() < 0.5 ? 2 ** 29 : 2 ** -29)]);
  const n = 2 * pairs.length;
  const a = new Float32Array(n), b = new Float32Array(n), c = new Float32Array(n), want = new Float32Array(n);
  pairs.forEach(([x, y], i) => {
    const p = f(x * y); // x, y are float32 by construction (at most 24 significant bits)
    const moved = fromBits(bitsOf(p) + 1 + (i % 3)); // p moved away from zero by 1..3 ulps
    for (const [k, cv] of [[2 * i, -p], [2 * i + 1, -moved]] as const) {
      a[k] = x; b[k] = y; c[k] = cv;
      want[k] = f(x * y + cv); // x·y exact in float64, and so is the sum (near-cancelling, a few ulps of p wide)
    }
  });
  return { a, b, c, want };
}

/**
 * The verdict on the device's answers `got` (fma(a[i], b[i], c[i]) as float32): fused only when every one is
 * the exact answer bit for bit; else the first miss, as one line.
 */
export function fmaVerdict(cases: FmaCases, got: Float32Array): { fused: boolean; miss?: string } {
  if (got.length !== cases.want.length) return { fused: false, miss: `${got.length} answers for ${cases.want.length} cases` };
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], cases.want[i])) {
      return { fused: false, miss: `fma(${cases.a[i]}, ${cases.b[i]}, ${cases.c[i]}) gave ${got[i]}, exactly ${cases.want[i]}` };
    }
  }
  return { fused: true };
}

/** One invocation per case: out[i] = fma(a, b, c), the inputs interleaved in `abc` (never constants). */
export const FMA_PROBE_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> abc: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= arrayLength(&out)) { return; }
  out[i] = fma(abc[3u * i], abc[3u * i + 1u], abc[3u * i + 2u]);
}`;

/** Runs the probe on `device` (one dispatch, one read of the answers); a device error is thrown, as one line. */
export async function probeFma(device: GPUDevice): Promise<{ fused: boolean; miss?: string }> {
  const cases = fmaProbeCases();
  const n = cases.want.length;
  const abc = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) [abc[3 * i], abc[3 * i + 1], abc[3 * i + 2]] = [cases.a[i]!, cases.b[i]!, cases.c[i]!];
  device.pushErrorScope('validation');
  const input = device.createBuffer({ label: 'fma probe inputs', size: abc.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const output = device.createBuffer({ label: 'fma probe answers', size: 4 * n, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const staging = device.createBuffer({ label: 'fma probe read', size: 4 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    device.queue.writeBuffer(input, 0, abc);
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: FMA_PROBE_WGSL }), entryPoint: 'main' } });
    const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: input } }, { binding: 1, resource: { buffer: output } }] });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(Math.ceil(n / 64));
    pass.end();
    enc.copyBufferToBuffer(output, 0, staging, 0, 4 * n);
    device.queue.submit([enc.finish()]);
    const err = await device.popErrorScope();
    if (err) throw new Error(`the fma probe failed: ${err.message.split('\n')[0]}`);
    await staging.mapAsync(GPUMapMode.READ);
    const got = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    return fmaVerdict(cases, got);
  } finally {
    input.destroy(); output.destroy(); staging.destroy();
  }
}
