/**
 * Every backward op of the CPU backend against central finite differences of a float64 reference
 * of its forward op, on small random shapes: for a random cotangent R, the gradient of Σ f(x)·R.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import type { BTensor } from '../../src/backend/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { encodeHalf } from '../../src/tensor/codecs.js';
import { randF32 } from '../backend/kernelCases.js';
import { assertRelClose, attention64, crossEntropy64, finiteDiff, linear64, rmsnorm64, rope64, siluMul64, type F64 } from './ref64.js';

const be = new CpuBackend(jsKernels, 'js, 1 thread');
const f64 = (a: Float32Array): F64 => Float64Array.from(a);
const dot = (a: F64, r: ArrayLike<number>) => a.reduce((s, v, i) => s + v * r[i]!, 0);
const read = (t: BTensor) => be.read(t);
const TOL = 2e-5;

describe('training backward ops vs float64 finite differences', () => {
  it('linearT and matmulTN: the input and weight gradients of linear (f32, bf16 and f16 weights)', async () => {
    const M = 5, N = 7, K = 6;
    const x = randF32(M * K, 1), w = randF32(N * K, 2), R = randF32(M * N, 3);
    const x64 = f64(x), w64 = f64(w);
    const f = () => dot(linear64(x64, w64, M, N, K), R);
    const dy = be.upload(R, [M, N]);
    assertRelClose(await read(be.linearT(dy, be.upload(w, [N, K]))), finiteDiff(f, x64), TOL, 'dx');
    assertRelClose(await read(be.matmulTN(dy, be.upload(x, [M, K]))), finiteDiff(f, w64), TOL, 'dW');
    for (const dt of ['bf16', 'f16'] as const) {
      const bits = encodeHalf(dt, w);
      const wt = be.uploadWeight(new Tensor(dt, [N, K], bits));
      const wd = f64(await be.read(wt));
      const g = () => dot(linear64(x64, wd, M, N, K), R);
      assertRelClose(await read(be.linearT(dy, wt)), finiteDiff(g, x64), TOL, `dx (${dt} weight)`);
    }
  });

  it('rmsnormBackward', async () => {
    const M = 3, D = 8, eps = 1e-6;
    const x = randF32(M * D, 4), g = randF32(D, 5), R = randF32(M * D, 6);
    const x64 = f64(x);
    const fd = finiteDiff(() => dot(rmsnorm64(x64, f64(g), M, D, eps), R), x64);
    const got = await read(be.rmsnormBackward(be.upload(x, [M, D]), be.upload(g, [D]), be.upload(R, [M, D]), eps));
    assertRelClose(got, fd, TOL, 'rmsnorm dx');
  });

  it('rope with −sin is the transpose of rope', async () => {
    const T = 3, H = 2, hd = 4;
    const x = randF32(T * H * hd, 7), R = randF32(T * H * hd, 8);
    const cos = randF32(T * hd / 2, 9), sin = randF32(T * hd / 2, 10);
    const x64 = f64(x);
    const fd = finiteDiff(() => dot(rope64(x64, T, H, hd, cos, sin), R), x64);
    const got = await read(be.rope(be.upload(R, [T, H * hd]), H, hd, be.upload(cos, [T, hd / 2]), be.upload(sin.map((s) => -s), [T, hd / 2])));
    assertRelClose(got, fd, TOL, 'rope dx');
  });

  it('attentionBackward: dq, dk, dv of causal GQA', async () => {
    const T = 5, H = 4, KVH = 2, hd = 3;
    const q = randF32(T * H * hd, 11), k = randF32(T * KVH * hd, 12), v = randF32(T * KVH * hd, 13), R = randF32(T * H * hd, 14);
    const q64 = f64(q), k64 = f64(k), v64 = f64(v);
    const f = () => dot(attention64(q64, k64, v64, T, H, KVH, hd), R);
    const o = { nHeads: H, nKvHeads: KVH, headDim: hd, offset: 0 };
    const g = be.attentionBackward(be.upload(q, [T, H * hd]), be.upload(k, [T, KVH * hd]), be.upload(v, [T, KVH * hd]), be.upload(R, [T, H * hd]), o);
    assertRelClose(await read(g.dq), finiteDiff(f, q64), TOL, 'dq');
    assertRelClose(await read(g.dk), finiteDiff(f, k64), TOL, 'dk');
    assertRelClose(await read(g.dv), finiteDiff(f, v64), TOL, 'dv');
  });

  it('siluMulBackward', async () => {
    const n = 12;
    const gt = randF32(n, 15, 3), up = randF32(n, 16), R = randF32(n, 17);
    const g64 = f64(gt), u64 = f64(up);
    const f = () => dot(siluMul64(g64, u64), R);
    const r = be.siluMulBackward(be.upload(gt, [n]), be.upload(up, [n]), be.upload(R, [n]));
    assertRelClose(await read(r.dGate), finiteDiff(f, g64), TOL, 'dGate');
    assertRelClose(await read(r.dUp), finiteDiff(f, u64), TOL, 'dUp');
  });

  it('crossEntropyGrad with the lse of logSoftmaxParts, masked rows zero', async () => {
    const T = 4, V = 9;
    const l = randF32(T * V, 18, 4), targets = Int32Array.from([3, 0, 8, 5]), w = Float32Array.from([0.25, 0, 0.5, 1]);
    const l64 = f64(l);
    const fd = finiteDiff(() => crossEntropy64(l64, targets, w, T, V), l64);
    const lt = be.upload(l, [T, V]);
    const { lse } = await be.logSoftmaxParts(lt, targets, 0);
    const got = await read(be.crossEntropyGrad(lt, lse, targets, w));
    assertRelClose(got, fd, TOL, 'dlogits');
    assert.ok(got.subarray(V, 2 * V).every((z) => z === 0), 'a row of weight 0 has a zero gradient');
  });

  it('scale and mul', async () => {
    const a = randF32(6, 19), b = randF32(6, 20);
    assert.deepEqual(await read(be.scale(be.upload(a, [6]), 0.5)), a.map((z) => Math.fround(z * 0.5)));
    assert.deepEqual(await read(be.mul(be.upload(a, [2, 3]), be.upload(b, [2, 3]))), a.map((z, i) => Math.fround(z * b[i]!)));
    assert.throws(() => be.mul(be.upload(a, [2, 3]), be.upload(b, [3, 2])), /mul: b has shape \[3, 2\]/);
  });
});

describe('the native provider\'s gradient products (gemmNN, gemmNNHalf, gemmTN)', async () => {
  const { loadNativeKernels } = await import('../../src/backend/cpu/kernels/native.js');
  const one = loadNativeKernels(1), two = loadNativeKernels(2);
  const skip = one.ok ? false : `native kernels unavailable: ${(one as { reason: string }).reason}`;
  it('equal the transposing path within float32 rounding, and do not depend on the thread count', { skip }, async () => {
    if (!one.ok || !two.ok) return;
    assert.ok(one.kernels.gemmNN && one.kernels.gemmNNHalf && one.kernels.gemmTN, 'the built addon exports them');
    // shapes crossing the addon's tiles (512 rows of dy, 256 columns of w)
    const M = 530, N = 70, K = 300;
    const dy = randF32(M * N, 31), w = randF32(N * K, 32), x = randF32(M * K, 33);
    const ref = new CpuBackend(jsKernels, 'js');
    const n1 = new CpuBackend(one.kernels, 'native 1'), n2 = new CpuBackend(two.kernels, 'native 2');
    const want = await ref.read(ref.linearT(ref.upload(dy, [M, N]), ref.upload(w, [N, K])));
    const got1 = await n1.read(n1.linearT(n1.upload(dy, [M, N]), n1.upload(w, [N, K])));
    const got2 = await n2.read(n2.linearT(n2.upload(dy, [M, N]), n2.upload(w, [N, K])));
    assertRelClose(got1, want, 1e-6, 'gemmNN');
    assert.deepEqual(got2, got1, 'gemmNN: 1 and 2 threads');
    for (const dt of ['bf16', 'f16'] as const) {
      const wt = new Tensor(dt, [N, K], encodeHalf(dt, w));
      const h = await ref.read(ref.linearT(ref.upload(dy, [M, N]), ref.uploadWeight(wt)));
      const g1 = await n1.read(n1.linearT(n1.upload(dy, [M, N]), n1.uploadWeight(wt)));
      const g2 = await n2.read(n2.linearT(n2.upload(dy, [M, N]), n2.uploadWeight(wt)));
      assertRelClose(g1, h, 1e-6, `gemmNNHalf ${dt}`);
      assert.deepEqual(g2, g1, `gemmNNHalf ${dt}: 1 and 2 threads`);
    }
    const tn = await ref.read(ref.matmulTN(ref.upload(dy, [M, N]), ref.upload(x, [M, K])));
    const t1 = await n1.read(n1.matmulTN(n1.upload(dy, [M, N]), n1.upload(x, [M, K])));
    const t2 = await n2.read(n2.matmulTN(n2.upload(dy, [M, N]), n2.upload(x, [M, K])));
    assertRelClose(t1, tn, 1e-6, 'gemmTN');
    assert.deepEqual(t2, t1, 'gemmTN: 1 and 2 threads');
  });
});
