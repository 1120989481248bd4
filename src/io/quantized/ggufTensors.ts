/**
 * One lowbit tensor to one GGUF tensor. The rule: a tensor is written only when the GGUF type holds
 * the weights lowbit evaluates, or `requantize` says to change them.
 *   - float targets (F32/F16/BF16): exact when every value survives the encoding (F32 always does);
 *   - block targets (Q8_0/Q4_0/Q4_1) from a GPTQ-layout grid: groups of 32 consecutive columns (no act-order
 *     g_idx, no float zeros), the codes kept: Q8_0 = symmetric 8-bit (zero 128), Q4_0 = symmetric 4-bit
 *     (zero 8), Q4_1 = 4-bit with any zero. d = scale must be an fp16 value (a checkpoint solved with
 *     --scale-dtype f16). Q4_1's m = −scale·zero is rounded to fp16 (scale·zero may need up to 15
 *     significant bits); that moves each weight by at most half an fp16 ulp of |scale·zero|, and the
 *     change is measured and reported ("rounded"), not refused;
 *   - anything else (float weights to a block type, other group sizes, act-order, 3-bit, AWQ, QuIP/PB-LLM/
 *     BiLLM kinds, fp32 scales): a UsageError naming the layer and the reason, unless `requantize`: then
 *     llama.cpp's reference rule quantizes the dequantized weights ("requantized").
 */
import { UsageError } from '../../errors.js';
import { bf16ToF32, encodeHalf, f16ToF32, f32ToF16 } from '../../tensor/codecs.js';
import { dequantizeGptq, unpackGptq } from '../../tensor/gptqPack.js';
import { isGptqPacked, type GptqPacked, type PackedWeight } from '../../tensor/packed.js';
import { dequantizeQ4_0, dequantizeQ4_1, dequantizeQ8_0 } from '../gguf/dequant.js';
import { encodeGrid, gridMismatch, quantizeLlamaCpp, QK, type BlockType } from '../gguf/quantize.js';
import { GgmlType } from '../gguf/types.js';

export type FloatType = GgmlType.F32 | GgmlType.F16 | GgmlType.BF16;
export type TargetType = FloatType | BlockType;

export interface ConvertedTensor {
  readonly type: TargetType;
  /** row-major [rows, cols] in the GGUF type's bytes (q/k rows not yet permuted) */
  readonly data: Uint8Array;
  /** exact: the GGUF weights equal lowbit's; rounded: codes kept, fp16 m rounded; requantized: llama.cpp's rule */
  readonly how: 'exact' | 'rounded' | 'requantized';
  /** max |GGUF weight − lowbit weight| */
  readonly maxAbsChange: number;
}

export const isBlock = (t: TargetType): t is BlockType => t === GgmlType.Q8_0 || t === GgmlType.Q4_0 || t === GgmlType.Q4_1;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Float values in a float GGUF type, with the largest change the encoding made. */
function encodeFloat(type: FloatType, x: Float32Array): { data: Uint8Array; change: number } {
  if (type === GgmlType.F32) return { data: new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength)), change: 0 };
  const h = encodeHalf(type === GgmlType.F16 ? 'f16' : 'bf16', x);
  const back = Float32Array.from(h, type === GgmlType.F16 ? f16ToF32 : bf16ToF32);
  return { data: new Uint8Array(h.buffer), change: maxAbsDiff(back, x) };
}

/** ggml's decode of a block type (dequant.ts), for measuring what storing changed. */
function decodeBlocks(type: BlockType, data: Uint8Array, n: number): Float32Array {
  return type === GgmlType.Q8_0 ? dequantizeQ8_0(data, n) : type === GgmlType.Q4_0 ? dequantizeQ4_0(data, n) : dequantizeQ4_1(data, n);
}

export interface ConvertInput {
  /** the GGUF tensor name and the lowbit name, for messages */
  readonly label: string;
  readonly rows: number;
  readonly cols: number;
  /** the stored packed form, when the layer is quantized */
  readonly packed: PackedWeight | undefined;
  /** the float weights lowbit evaluates (dequantized for packed layers) */
  readonly values: () => Float32Array;
  readonly requantize: boolean;
}

/** Why the packed layer's grid cannot be stored as `type` with its codes kept; undefined when it can. */
function gridProblem(type: BlockType, p: PackedWeight, cols: number): string | undefined {
  if (!isGptqPacked(p)) return `a ${p.kind.toUpperCase()} layer is not a GPTQ-layout uniform grid`;
  if (p.zerosF) return 'float zero points (QA-LoRA merge) are not integer codes';
  if (cols % QK !== 0) return `${cols} input columns are not whole blocks of ${QK}`;
  for (let c = 0; c < cols; c++) {
    if (p.gIdx[c] !== Math.floor(c / QK)) {
      return p.groups === cols / QK ? `act-order g_idx (column ${c} is in group ${p.gIdx[c]}): ${GgmlType[type]} blocks are 32 consecutive columns`
        : `group size ${cols / p.groups}${p.groups === 1 ? ' (one group per row)' : ''}: ${GgmlType[type]} blocks are groups of ${QK}`;
    }
  }
  return undefined;
}

export function convertTensor(type: TargetType, x: ConvertInput): ConvertedTensor {
  const refuse = (why: string): never => {
    throw new UsageError(`layer ${x.label}: ${why}; ${GgmlType[type]} cannot hold it exactly (pass --requantize to re-quantize it with llama.cpp's rule)`);
  };
  const requantized = (): ConvertedTensor => {
    const w = x.values();
    if (!isBlock(type)) {
      const { data, change } = encodeFloat(type, w);
      return { type, data, how: change === 0 ? 'exact' : 'requantized', maxAbsChange: change };
    }
    const data = quantizeLlamaCpp(type, w);
    return { type, data, how: 'requantized', maxAbsChange: maxAbsDiff(decodeBlocks(type, data, w.length), w) };
  };

  if (!isBlock(type)) {
    const w = x.values();
    const { data, change } = encodeFloat(type, w);
    if (change === 0) return { type, data, how: 'exact', maxAbsChange: 0 };
    if (!x.requantize) refuse(`rounding to ${GgmlType[type]} changes weights by up to ${change.toExponential(3)}`);
    return { type, data, how: 'requantized', maxAbsChange: change };
  }
  if (x.cols % QK !== 0) {
    throw new UsageError(`layer ${x.label}: ${x.cols} input columns are not whole blocks of ${QK}; ${GgmlType[type]} cannot store it (use --type f32, f16 or bf16)`);
  }
  if (!x.packed) return x.requantize ? requantized() : refuse('float weights are not on a quantization grid');
  const problem = gridProblem(type, x.packed, x.cols);
  if (problem) return x.requantize ? requantized() : refuse(problem);
  const p = x.packed as GptqPacked;
  const m = unpackGptq(p);
  const mismatch = gridMismatch(type, p.bits, m.zeros);
  if (mismatch) return x.requantize ? requantized() : refuse(mismatch);
  const nonF16 = m.scales.findIndex((s) => f16ToF32(f32ToF16(s)) !== s);
  if (nonF16 >= 0) {
    return x.requantize ? requantized()
      : refuse(`scale ${m.scales[nonF16]} is not an fp16 value (GGUF stores d in fp16; quantize with --scale-dtype f16)`);
  }
  const enc = encodeGrid(type, { rows: x.rows, cols: x.cols, codes: m.codes, scales: m.scales, zeros: m.zeros });
  // the encoding's own measure is against the grid; check it against the weights lowbit evaluates too
  const change = Math.max(enc.maxAbsChange, maxAbsDiff(decodeBlocks(type, enc.data, x.rows * x.cols), dequantizeGptq(p)));
  return { type, data: enc.data, how: change === 0 ? 'exact' : 'rounded', maxAbsChange: change };
}
