/**
 * Shared pieces of the kernel suite: the providers under test (each with the reason when it is not
 * available), seeded inputs, the tolerance table, and comparisons that check NaN/inf first and
 * guard words after every output.
 */
import assert from 'node:assert/strict';
import type { CpuKernels } from '../../src/backend/cpu/kernels/kernels.js';
import { loadNativeKernels } from '../../src/backend/cpu/kernels/native.js';
import { loadWasmKernels } from '../../src/backend/cpu/kernels/wasm.js';
import { mulberry32 } from '../../src/tensor/mulberry32.js';

export interface Provider { name: 'native' | 'wasm'; load(threads: number): { ok: true; kernels: CpuKernels } | { ok: false; reason: string } }
/** Every accelerated provider; the js reference is what they are compared with. */
export const PROVIDERS: readonly Provider[] = [
  { name: 'native', load: (t) => loadNativeKernels(t) },
  { name: 'wasm', load: (t) => loadWasmKernels(t) },
];
/** node:test option: run, or skip with the provider's reason (reported, not passed). */
export function availability(p: Provider): { skip: string | false } {
  const r = p.load(1);
  return { skip: r.ok ? false : `${p.name} unavailable: ${r.reason}` };
}
export function kernelsOf(p: Provider, threads = 1): CpuKernels {
  const r = p.load(threads);
  if (!r.ok) throw new Error(r.reason);
  return r.kernels;
}

/**
 * NMSE = Σ(a−b)² / Σb² allowed against the js reference (which accumulates in float64), per op.
 * gemm/attention accumulate in float32 in the fast providers; the element-wise ops round once.
 */
export const NMSE_MAX = Object.freeze({
  gemm: 1e-10, rmsnorm: 1e-12, rope: 1e-13, attention: 1e-10, siluMul: 1e-12, nll: 1e-20, gram: 1e-26, choleskyInverse: 1e-18,
});

/** mulberry32: small, seeded, reproducible. */
export const rng = mulberry32;
export function randF32(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

const GUARD = 8, SENTINEL = 0x7fc0dead;
/** An output of n elements followed by guard words that no kernel may touch. */
export function guarded<T extends Float32Array | Float64Array>(Ctor: new (n: number) => T, n: number): T {
  const full = new Ctor(n + GUARD);
  const bits = new Uint32Array(full.buffer);
  bits.fill(SENTINEL, (n * full.BYTES_PER_ELEMENT) / 4);
  return full.subarray(0, n) as T;
}
export function assertGuards(a: Float32Array | Float64Array, what: string): void {
  const bits = new Uint32Array(a.buffer, a.byteOffset + a.byteLength, (GUARD * a.BYTES_PER_ELEMENT) / 4);
  for (const b of bits) assert.equal(b, SENTINEL, `${what}: a guard word after the output was overwritten`);
}

/** Non-finite values first (same positions, same kind), then NMSE over the finite ones. */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, nmseMax: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      assert.ok(Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)), `${what}: element ${i} is ${g}, js gives ${w}`);
      continue;
    }
    num += (g - w) ** 2;
    den += w * w;
  }
  const nmse = den === 0 ? num : num / den;
  assert.ok(nmse <= nmseMax, `${what}: NMSE ${nmse.toExponential(2)} > ${nmseMax.toExponential(0)}`);
}

/** Bit-identical, NaN included (same payload). */
export function assertSameBits(a: Float32Array | Float64Array, b: Float32Array | Float64Array, what: string): void {
  const ua = new Uint8Array(a.buffer, a.byteOffset, a.byteLength), ub = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  assert.equal(ua.length, ub.length, `${what}: length`);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.fail(`${what}: differs at element ${Math.floor(i / a.BYTES_PER_ELEMENT)} (${a[Math.floor(i / a.BYTES_PER_ELEMENT)]} vs ${b[Math.floor(i / b.BYTES_PER_ELEMENT)]})`);
  }
}

/** max |A·B − I| for n×n A and B. */
export function offIdentity(A: Float64Array, B: Float64Array, n: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += A[i * n + k]! * B[k * n + j]!;
      worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
    }
  return worst;
}

/** Symmetric positive definite with condition number about 1/delta: AᵀA (rank m < n) + delta·I. */
export function illConditionedSpd(n: number, seed: number, delta = 1e-8): Float64Array {
  const m = Math.max(1, Math.floor(n / 2)), r = rng(seed), A = new Float64Array(m * n), H = new Float64Array(n * n);
  for (let i = 0; i < A.length; i++) A[i] = r() * 2 - 1;
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < m; k++) s += A[k * n + i]! * A[k * n + j]!;
      H[i * n + j] = s; H[j * n + i] = s;
    }
  for (let i = 0; i < n; i++) H[i * n + i]! += delta;
  return H;
}
