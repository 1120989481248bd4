/**
 * QA-LoRA's merge (Xu et al. 2023, yuhuixu1993/qa-lora merge.py): the adapter acts on the input
 * pooled per quantization group, so ΔW[o, j] = delta[o, g(j)] / groupSize with delta = scaling·B·A
 * [out, in/groupSize], and it folds exactly into the group zero points:
 *   zF[g, o] = z[g, o] − delta[o, g] / groupSize / scale[g, o],
 * since scale·(q − zF) = scale·(q − z) + delta/groupSize. The zeros stop being integers, so the
 * merged layer carries them as GptqPacked.zerosF; qzeros keep round(zF) clamped to 0..2^bits − 1
 * (stored as zero − 1, gptqPack.ts) for readers that know only integer zeros.
 */
import { UsageError } from '../errors.js';
import { gptqZeroPoints, packedWords } from './gptqPack.js';
import type { GptqPacked } from './packed.js';

/** `name` only labels errors (the layer's tensor prefix). */
export function mergeZeroShift(q: GptqPacked, delta: Float32Array, groupSize: number, name = 'GPTQ layer'): GptqPacked {
  const { bits, rows, cols, groups } = q;
  const what = `mergeZeroShift: ${name} [${rows}, ${cols}]`;
  if (!Number.isInteger(groupSize) || groupSize < 1 || cols % groupSize !== 0) {
    throw new UsageError(`${what}: group size ${groupSize} does not divide the ${cols} input columns`);
  }
  if (groups !== cols / groupSize) throw new UsageError(`${what}: ${groups} group(s), but ${cols} columns in groups of ${groupSize} make ${cols / groupSize}`);
  for (let j = 0; j < cols; j++) {
    if (q.gIdx[j] !== Math.floor(j / groupSize)) {
      throw new UsageError(`${what}: g_idx[${j}] = ${q.gIdx[j]}, not ${Math.floor(j / groupSize)}: QA-LoRA merges into contiguous groups only (no act-order g_idx)`);
    }
  }
  if (delta.length !== rows * groups) throw new UsageError(`${what}: delta has ${delta.length} elements, expected [${rows}, ${groups}]`);
  const zw = packedWords(rows, bits), maxq = 2 ** bits - 1, mask = maxq;
  const z0 = gptqZeroPoints(q); // a layer merged before: its float zeros shift again
  const zerosF = new Float32Array(groups * rows), qzeros = new Int32Array(groups * zw);
  for (let g = 0; g < groups; g++) {
    for (let o = 0; o < rows; o++) {
      const pos = o * bits, w = pos >>> 5, off = pos & 31;
      const z = z0[g * rows + o]!;
      // float32 at each step, as merge.py's fp32 tensors: ((delta / groupSize) / scale), then z − that
      const shift = Math.fround(Math.fround(delta[o * groups + g]! / groupSize) / q.scales[g * rows + o]!);
      const zf = Math.fround(z - shift);
      if (!Number.isFinite(zf)) throw new UsageError(`${what}: zero point of group ${g}, output ${o} is ${zf} (scale ${q.scales[g * rows + o]}, delta ${delta[o * groups + g]})`);
      zerosF[g * rows + o] = zf;
      const zi = Math.min(maxq, Math.max(0, Math.round(zf)));
      qzeros[g * zw + w]! |= ((zi - 1) & mask) << off;
      if (off + bits > 32) qzeros[g * zw + w + 1]! |= ((zi - 1) & mask) >>> (32 - off);
    }
  }
  return { kind: 'gptq', bits, rows, cols, groups, qweight: q.qweight, qzeros, scales: q.scales, gIdx: q.gIdx, zerosF };
}
