/**
 * CpuBackend.linear on a GPTQ layer with float zero points (QA-LoRA's merge): x · Wᵀ of the
 * dequantized weight, for the js kernels (bit for bit), the default provider and every available
 * provider (the native addon's gemmQ decodes only packed zeros, so it hands such a layer to js row
 * panels: bit for bit its own gemm on the dequantized weight).
 */
import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { dequantizeGptq, packGptq } from '../../src/tensor/gptqPack.js';
import { mergeZeroShift } from '../../src/tensor/gptqZeroShift.js';
import type { GptqPacked } from '../../src/tensor/packed.js';
import { PROVIDERS, assertClose, assertSameBits, availability, kernelsOf, randF32, rng } from './kernelCases.js';

function mergedLayer(N: number, K: number, bits: number, group: number, seed: number): GptqPacked {
  const r = rng(seed), maxq = 2 ** bits - 1, groups = K / group;
  const q = packGptq({
    codes: new Uint8Array(N * K).map(() => Math.floor(r() * (maxq + 1))),
    gIdx: Int32Array.from({ length: K }, (_, c) => Math.floor(c / group)),
    zeros: new Uint8Array(N * groups).map(() => Math.floor(r() * (maxq + 1))),
    scales: new Float32Array(N * groups).map(() => (r() - 0.3) * 0.05),
  }, N, K, bits).tensors;
  return mergeZeroShift(q, randF32(N * groups, seed + 1, 0.05), group);
}

/** [M, N, K, bits, group]: N past the native gemm tile (256 rows) and M past its 512, so panels and tiles must line up. */
const CASES: [number, number, number, number, number][] = [[1, 70, 64, 4, 32], [5, 33, 96, 3, 32], [17, 129, 128, 2, 16], [3, 9, 40, 8, 8], [4, 300, 64, 4, 32], [520, 9, 40, 4, 8]];

/** y = x · W'ᵀ through the backend's linear, and the same provider's gemm on the dequantized W'. */
function both(be: CpuBackend, q: GptqPacked, M: number, seed: number): { got: Float32Array; want: Float32Array } {
  const x = randF32(M * q.cols, seed);
  const got = (be.linear(be.upload(x, [M, q.cols]), be.uploadQuantized(q)) as unknown as { data: Float32Array }).data;
  const want = new Float32Array(M * q.rows);
  be.kernels.gemm(x, dequantizeGptq(q), want, M, q.rows, q.cols);
  return { got, want };
}

test('js kernels: linear on a float-zero layer equals the gemm on its dequantized weight, bit for bit', async () => {
  const be = new CpuBackend(jsKernels);
  for (const [M, N, K, bits, group] of CASES) {
    const q = mergedLayer(N, K, bits, group, M + N + bits);
    assert.ok(q.zerosF!.some((z) => !Number.isInteger(z)));
    const { got, want } = both(be, q, M, 5);
    assertSameBits(got, want, `js ${bits}-bit g${group} ${M}x${N}x${K}`);
    // and the integer zeros would give something else: the float zeros are what linear used
    const { zerosF: _drop, ...integer } = q;
    const { got: intGot } = both(be, integer, M, 5);
    assert.ok(intGot.some((v, i) => v !== got[i]), 'float zeros change the output');
    assertSameBits(await be.read(be.uploadQuantized(q)), dequantizeGptq(q), 'read');
  }
});

test('the default provider (auto, 2 threads): linear on a float-zero layer equals its gemm on the dequantized weight', () => {
  const { kernels, note } = selectKernels('auto', 2);
  const be = new CpuBackend(kernels, note);
  for (const [M, N, K, bits, group] of CASES) {
    const { got, want } = both(be, mergedLayer(N, K, bits, group, 3 * M + N), M, 6);
    assertClose(got, want, 1e-12, `${note} ${bits}-bit g${group} ${M}x${N}x${K}`);
  }
});

for (const p of PROVIDERS) {
  describe(`${p.name}: float zero points`, availability(p), () => {
    it('gemmQ (when the provider has one) and linear equal the gemm on the dequantized weight', () => {
      const k = kernelsOf(p), be = new CpuBackend(k);
      for (const [M, N, K, bits, group] of CASES) {
        const q = mergedLayer(N, K, bits, group, 7 * M + K);
        const { got, want } = both(be, q, M, 8);
        assertClose(got, want, 1e-12, `${p.name} linear ${bits}-bit ${M}x${N}x${K}`);
        if (k.gemmQ) {
          const y = new Float32Array(M * N);
          k.gemmQ(randF32(M * K, 8), q, y, M);
          assertSameBits(y, want, `${p.name} gemmQ ${bits}-bit ${M}x${N}x${K}`);
        }
      }
    });
  });
}
