/**
 * WebGPU's log-softmax sums Σ exp(x − max) as two-float pairs (logsoftmax.wgsl.ts). A row whose largest
 * term (1) sits in one invocation's share beside 999 terms of e⁻¹⁷ ≈ 4.1e-8 (each below half an ulp of 1)
 * loses them all in a plain float32 sum: lse off by about 4e-5. The compensated sum must keep them, also
 * under a shader compiler that rewrites (a + b) − a as b (Mesa's lavapipe does). Skipped, with the
 * reason, without an adapter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { LSM_WG } from '../../src/backend/webgpu/kernels/logsoftmax.wgsl.js';

const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;

test('log-softmax on WebGPU keeps terms below half an ulp of the running sum (compensated, not optimised away)', { skip }, async () => {
  if (!made.ok) return;
  const be = made.backend;
  const C = LSM_WG * 1000;
  const row = new Float32Array(C).fill(-17);
  row[0] = 0;
  const logits = be.upload(row, [1, C]);
  const { lse, picked } = await be.logSoftmaxParts(logits, Int32Array.of(0), 0);
  be.free(logits);
  const small = Math.fround(Math.exp(Math.fround(-17)));
  const exact = Math.log(1 + (C - 1) * small); // float64, from the float32 terms the device adds
  assert.equal(picked[0], 0);
  assert.ok(Math.abs(lse[0]! - exact) < 1e-9, `lse ${lse[0]} vs ${exact}: off by ${lse[0]! - exact} (a plain float32 sum is off by ~4e-5)`);
});
