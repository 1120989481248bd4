/**
 * NMSE allowed against the CPU backend, per op and weight dtype (parity.test.ts, fastKernels.test.ts).
 * The WebGPU kernels accumulate in float32 where the js reference uses float64 (linear, attention,
 * rmsnorm's sum of squares) and use the GPU's exp; the ops whose every step is a correctly rounded
 * float32 operation must be exact.
 */
export const TOLERANCE = Object.freeze({
  upload: 0, weight: 0, embedding: 0, rows: 0, concatRows: 0, add: 0, quantizeRows: 0,
  'linear f32': 1e-10, 'linear f16': 1e-10, 'linear bf16': 1e-10, 'linear gptq': 1e-10, 'linear gptq float zeros': 1e-10, 'linear awq': 1e-10, 'linear kind': 1e-10,
  rmsnorm: 1e-12, rope: 1e-13, attention: 1e-10, siluMul: 1e-12, nll: 1e-14, logSoftmaxParts: 1e-14,
});
export type Op = keyof typeof TOLERANCE;
