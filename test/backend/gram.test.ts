/**
 * The Gram op (Backend.gram: S += xᵀx, GPTQ's Hessian sum) on every backend. The CPU backend's is the
 * host Hessian's own float64 path, so H = 2/n·S equals HessianAccumulator's bit for bit under each
 * kernel provider. WebGPU sums two-float (hi, lo) pairs on the device: each entry must lie within
 * (N + 2)·2⁻⁴⁷·Σ_t |x_ta·x_tb| of the float64 sum over N tokens (the precision gram.wgsl.ts states;
 * a plain float32 sum misses it by about five orders of magnitude, and so does a compensated sum
 * whose error terms the shader compiler optimised away). The fast tiled kernel (gramFast.wgsl.ts) must
 * give the reference kernel's sums bit for bit by each way of taking TwoProduct's error: the split products,
 * fma(a, b, −p) where the probe found the device's fma fused (the default backend there), and that kernel
 * text with fma emulated exactly (any device); cases: ragged K and T, several calls, outlier channels, bands
 * that start inside a tile, and adversarial data on which both kernels equal a host emulation of their IEEE
 * steps (gramEmulation.ts) that the rewrites their keep()s prevent would change. Precision 'f32' (a float32
 * GEMM per call) must lie within the float32 summation bound of the host's f32 Hessian. Skipped, with the reason, without an adapter.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { HessianAccumulator, hessianFromSum } from '../../src/quant/core/hessian.js';
import { InputStatsAccumulator } from '../../src/quant/stats.js';
import { randF32, rng } from './kernelCases.js';
import { emulateGram, type GramVariant } from './gramEmulation.js';

const { kernels } = selectKernels('auto', 2);
const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
const [madeRef, madeFast] = await Promise.all((['reference', 'fast'] as const).map((k) => createWebGpuBackend(jsKernels, 'js, 1 thread', { kernels: k })));
// the fast kernel's fma-path text with fma() emulated exactly (any device), and its split-product path (any device)
const madeFmaEmulated = await createWebGpuBackend(jsKernels, 'js, 1 thread', { kernels: 'fast', fma: 'emulated' });
const madeSplit = await createWebGpuBackend(jsKernels, 'js, 1 thread', { kernels: 'fast', fma: 'off' });
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# gram: WebGPU cases skipped: ${made.reason}`);
else console.log(`# gram: the device's fma: ${made.backend.caps.fmaProbe}; the fast kernel's product error: ${made.backend.caps.fmaFused ? 'fma(a, b, −p)' : 'split products'}`);

/** Three "sequences" x[T, K] with channels of very different scales (as LLaMA's outlier channels). */
function sequences(K: number, T: number, n = 3): Float32Array[] {
  return [...Array(n).keys()].map((s) => {
    const x = randF32(T * K, 100 + s);
    for (let i = 0; i < x.length; i++) if (i % K === 3 || i % K === K - 2) x[i] = x[i]! * 300;
    return x;
  });
}

/**
 * Calls of x[T, K] whose channels are built to expose a missing barrier in the two-float step: channel
 * c % 8 is 0 uniform in (−1, 1), each value repeated at the next token; 1 a power of two ± a few ulps
 * (Veltkamp's hi rounds across it); 2 13-bit significands (products of 26 bits, many of them ties at
 * float32's 24); 3 ~1e4 and 4 ~1e-4 (outliers beside small values, |x_a·x_b| from 1e-8 to 1e8); 5 at odd
 * tokens the previous token's value negated times (1 + 2⁻²⁰), so S[c − 5, c] and S[c, c + 2] cancel to
 * below 2⁻²⁰ of their terms' sum (T even); 6 zeros and −0 between ~1e-11 values (products down to 1e-22, above
 * the 2⁻⁷⁸ under which exactness could meet underflow); 7 the value of channel c − 7 plus one ulp
 * (near-duplicate columns: S entries near a square).
 */
function adversarial(K: number, T: number, n: number): Float32Array[] {
  return [...Array(n).keys()].map((s) => {
    const r = rng(700 + s), x = new Float32Array(T * K);
    const sign = () => (r() < 0.5 ? -1 : 1);
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < K; c++) {
        const i = t * K + c;
        switch (c % 8) {
          case 0: x[i] = t % 2 === 1 ? x[i - K]! : r() * 2 - 1; break;
          case 1: x[i] = sign() * 2 ** Math.floor(r() * 20 - 10) * (1 + Math.floor(r() * 7 - 3) * 2 ** -23); break;
          case 2: x[i] = sign() * (4096 + Math.floor(r() * 4096)) * 2 ** (Math.floor(r() * 8) - 16); break;
          case 3: x[i] = sign() * 1e4 * (1 + r()); break;
          case 4: x[i] = sign() * 1e-4 * (1 + r()); break;
          case 5: x[i] = t % 2 === 1 ? -x[i - K]! * (1 + 2 ** -20) : r() * 2 - 1; break;
          case 6: x[i] = r() < 0.3 ? (r() < 0.5 ? 0 : -0) : sign() * 1e-11 * (1 + r()); break;
          default: { const v = new Float32Array([x[i - 7]!]); new Uint32Array(v.buffer)[0]! += 1; x[i] = v[0]!; }
        }
      }
    }
    return x;
  });
}

async function deviceSum(be: Backend, xs: readonly Float32Array[], K: number): Promise<Float64Array> {
  const acc = be.gramAccumulator!(K);
  for (const x of xs) {
    const t = be.upload(x, [x.length / K, K]);
    be.gram!(t, acc);
    be.free(t);
  }
  return be.readGram!(acc);
}

describe('Backend.gram on the CPU: the host Hessian bit for bit', () => {
  for (const k of [jsKernels, kernels]) {
    it(`${k.name} kernels`, async () => {
      const K = 37, T = 150, xs = sequences(K, T);
      const be = new CpuBackend(k, k.name);
      const H = hessianFromSum(await deviceSum(be, xs, K), K, xs.length);
      const host = new HessianAccumulator(K, { linalg: k });
      for (const x of xs) host.add(x, T);
      assert.deepEqual(H, host.finish());
    });
  }
});

describe('Backend.gram on WebGPU vs the CPU float64 sums', { skip }, () => {
  const gpu = made.ok ? made.backend : undefined as never;
  const within = async (be: Backend, K: number, T: number) => {
    const xs = sequences(K, T), N = xs.length * T;
    const want = await deviceSum(new CpuBackend(jsKernels, 'js'), xs, K);
    const got = await deviceSum(be, xs, K);
    const absSum = new Float64Array(K * K);
    for (const x of xs) for (let t = 0; t < T; t++) for (let a = 0; a < K; a++) for (let b = 0; b < K; b++) absSum[a * K + b]! += Math.abs(x[t * K + a]! * x[t * K + b]!);
    let worst = 0;
    for (let i = 0; i < K * K; i++) {
      assert.ok(Number.isFinite(got[i]!), `entry ${i} is ${got[i]}`);
      worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / absSum[i]!);
    }
    const bound = (N + 2) * 2 ** -47;
    assert.ok(worst <= bound, `worst relative error ${worst.toExponential(2)} > ${bound.toExponential(2)}`);
    for (let a = 0; a < K; a++) for (let b = 0; b < K; b++) assert.equal(got[a * K + b], got[b * K + a]);
  };
  it('every entry within (N + 2)·2⁻⁴⁷·Σ|x_a·x_b|; symmetric; K not a multiple of the workgroup', () => within(gpu, 45, 200));
  it('the same in bands of 27 rows and 3 ragged tiles of the read back\'s mirror (K = 150, 16 KiB bindings)', async () => {
    const small = await createWebGpuBackend(jsKernels, 'js', { maxBinding: 16 * 1024 });
    assert.ok(small.ok);
    await within(small.backend, 150, 24);
  });

  it('an accumulator above one binding is kept in bands of rows: the same sums bit for bit', async () => {
    // K = 45: 45 × 45 × 4 bytes = 8,100 per plane; under a 4 KiB binding, bands of 22, 22 and 1 rows
    const K = 45, xs = sequences(K, 20);
    const small = await createWebGpuBackend(jsKernels, 'js', { maxBinding: 4096 });
    assert.ok(small.ok);
    const banded = await deviceSum(small.backend, xs, K);
    assert.deepEqual(banded, await deviceSum(gpu, xs, K));
    // a single row above the binding is one line naming the accumulator and its size
    assert.throws(() => small.backend.gramAccumulator!(1100), /^UsageError: webgpu: gram accumulator \[1100, 1100\] rows 0\.\.0 \(hi\) needs 4400 bytes, above this adapter's maxStorageBufferBindingSize of 4096 bytes$/);
  });

  it('run to run identical; shape checks name the op; a released accumulator is refused', async () => {
    const K = 16, xs = sequences(K, 40);
    assert.deepEqual(await deviceSum(gpu, xs, K), await deviceSum(gpu, xs, K));
    for (const be of [gpu, new CpuBackend(jsKernels, 'js')] as Backend[]) {
      const acc = be.gramAccumulator!(K);
      const wrong = be.upload(new Float32Array(8 * 15), [8, 15]);
      assert.throws(() => be.gram!(wrong, acc), /^RangeError: gram: input has shape \[8, 15\], expected \[\*, 16\]$/);
      await be.readGram!(acc);
      const x = be.upload(new Float32Array(8 * 16), [8, 16]);
      assert.throws(() => be.gram!(x, acc), /used after readGram released it/);
      be.free(x); be.free(wrong);
    }
  });
});

describe('Backend.gram: the fast (tiled) kernel is the reference kernel bit for bit', { skip }, () => {
  const ref = madeRef!.ok ? madeRef!.backend : undefined as never;
  // the default fast backend takes the product error by fma where the probe found it fused
  const fast = madeFast!.ok ? madeFast!.backend : undefined as never;
  const fmaEmulated = madeFmaEmulated.ok ? madeFmaEmulated.backend : undefined as never;
  const split = madeSplit.ok ? madeSplit.backend : undefined as never;
  // K: below one 64-wide tile, odd and ragged over three tiles; T: not multiples of the 8-token step
  for (const [K, T, calls] of [[1, 5, 1], [45, 13, 2], [137, 203, 3], [130, 64, 4]] as const) {
    it(`K = ${K}, ${calls} call(s) of T = ${T} tokens, outlier channels (fast kernel: device's path, split products, fma text emulated)`, async () => {
      const xs = sequences(K, T, calls);
      const want = await deviceSum(ref, xs, K);
      assert.deepEqual(await deviceSum(fast, xs, K), want);
      assert.deepEqual(await deviceSum(split, xs, K), want);
      assert.deepEqual(await deviceSum(fmaEmulated, xs, K), want);
    });
  }

  it('adversarial data (ties, powers of two, cancellation, 1e4 beside 1e-4): each kernel is the host emulation of its IEEE steps bit for bit', async () => {
    const K = 70, xs = adversarial(K, 68, 3); // two tiles; T even (token pairs), not a multiple of 8
    const want = emulateGram(xs, K);
    // the data see each rewrite that a dropped keep() would allow: every one gives other bits
    for (const v of ['fusedProd', 'foldedSum', 'foldedDiff'] as GramVariant[]) {
      const other = emulateGram(xs, K, v);
      assert.ok(other.some((y, i) => y !== want[i]), `the ${v} rewrite gives the same sums on this data`);
    }
    assert.deepEqual(await deviceSum(ref, xs, K), want);
    assert.deepEqual(await deviceSum(fast, xs, K), want);
    assert.deepEqual(await deviceSum(split, xs, K), want);
    assert.deepEqual(await deviceSum(fmaEmulated, xs, K), want);
  });

  it('the fma path is what the probe says: fused on this device or not, each backend runs its own kernel text', () => {
    assert.equal(fast.caps.fmaProbe === 'fused', fast.caps.fmaFused);
    assert.equal(split.caps.fmaFused, false);
    assert.ok(fmaEmulated.caps.fmaEmulated && !fmaEmulated.caps.fmaFused);
  });

  it('banded storage under a lowered binding limit: bands not aligned to the tile, the same bits', async () => {
    // K = 137: 548 bytes per row; a 16 KiB binding holds 29 rows (and inputs of 29 tokens): bands at 0, 29, 58, 87, 116
    const K = 137, xs = sequences(K, 29, 3);
    const small = await Promise.all((['reference', 'fast'] as const).map((k) => createWebGpuBackend(jsKernels, 'js', { maxBinding: 16384, kernels: k })));
    const smallFma = await createWebGpuBackend(jsKernels, 'js', { maxBinding: 16384, kernels: 'fast', fma: 'emulated' });
    assert.ok(small[0]!.ok && small[1]!.ok && smallFma.ok);
    const want = await deviceSum(ref, xs, K);
    assert.deepEqual(await deviceSum(small[1]!.backend, xs, K), want);
    assert.deepEqual(await deviceSum(small[0]!.backend, xs, K), want);
    assert.deepEqual(await deviceSum(smallFma.backend, xs, K), want);
  });
});

describe("Backend.gram at precision 'f32' (gptq.py's float32 xᵀx per call) on WebGPU", { skip }, () => {
  const fast = madeFast!.ok ? madeFast!.backend : undefined as never;
  const K = 137, T = 203, xs = sequences(K, T, 3);
  /** Σ over calls of 2·(T + 2)·2⁻²⁴·Σ_t |x_ta·x_tb|: two float32 sums of T products, each within (T + 2)·2⁻²⁴·Σ|·|. */
  const bound = new Float64Array(K * K);
  for (const x of xs) for (let t = 0; t < T; t++) for (let a = 0; a < K; a++) for (let b = 0; b < K; b++) bound[a * K + b]! += 2 * (T + 2) * 2 ** -24 * Math.abs(x[t * K + a]! * x[t * K + b]!);

  it('the host f32 Hessian (sgemm per call, float64 sum) to float32 rounding, through InputStatsAccumulator', async () => {
    assert.ok(kernels.gramF32 ?? kernels.gemm, `${kernels.name} kernels have no float32 Gram`);
    const host = new HessianAccumulator(K, { linalg: kernels, precision: 'f32' });
    for (const x of xs) host.add(x, T);
    const want = host.finish();
    const acc = new InputStatsAccumulator(K, new Set(['hessian']), { precision: 'f32', deviceGram: fast });
    for (const x of xs) {
      const t = fast.upload(x, [T, K]);
      await acc.addTensor(fast, t);
      fast.free(t);
    }
    const { H } = await acc.finish(fast);
    const f = 2 / xs.length;
    let worst = 0;
    for (let i = 0; i < K * K; i++) {
      assert.ok(Number.isFinite(H![i]!), `entry ${i} is ${H![i]}`);
      worst = Math.max(worst, Math.abs(H![i]! - want[i]!) / (f * bound[i]!));
    }
    assert.ok(worst <= 1, `worst error ${worst.toFixed(2)} of the float32 bound`);
    // float32 sums, not the two-float ones: some entry differs from the 'f64' accumulator's
    const exact = hessianFromSum(await deviceSum(fast, xs, K), K, xs.length);
    assert.ok(H!.some((v, i) => v !== exact[i]), "the 'f32' sums equal the two-float ones");
  });

  it('banded storage under a lowered binding limit: the same sums bit for bit', async () => {
    const small = await createWebGpuBackend(jsKernels, 'js', { maxBinding: 16384 });
    assert.ok(small.ok);
    const few = xs.map((x) => x.subarray(0, 29 * K));
    const sum = async (be: Backend) => {
      const acc = be.gramAccumulator!(K, 'f32');
      for (const x of few) { const t = be.upload(x, [29, K]); be.gram!(t, acc); be.free(t); }
      return be.readGram!(acc);
    };
    assert.deepEqual(await sum(small.backend), await sum(fast));
  });
});
