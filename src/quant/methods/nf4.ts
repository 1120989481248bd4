/**
 * NormalFloat-4 (QLoRA, Dettmers et al., 2023) with bitsandbytes' semantics, as
 * `bnb.nn.Params4bit(w, quant_type='nf4', blocksize=64, compress_statistics=...)` quantizes a weight.
 * Read at bitsandbytes-foundation/bitsandbytes 95f9af309d4d5793847169c39288dcd3fcbdf564:
 *
 * 1. Blocks. The weight [out, in] is flattened row-major and cut into blocks of 64 consecutive values
 *    (functional.py quantize_4bit, blocksize default 64 = QLoRA's; the last block may be shorter), so
 *    a block never straddles rows when in % 64 = 0 (every LLaMA shape).
 * 2. Scale. absmax = max |w| over the block (csrc/kernels.cu kQuantizeBlockwise from line 271, lines 320-333,
 *    and kQuantizeBlockwiseSmall, lines 426-444: fmaxf from -FLT_MAX), stored as float32; the kernel keeps 1/absmax in float32
 *    (`smem_absmax_value[0] = 1.0f / local_abs_max`) and normalizes by a float32 multiply, x = w · (1/absmax).
 * 3. Nearest level. dQuantizeNF4(x) (kernels.cu lines 110-151) is a decision tree whose 15 thresholds
 *    are the midpoints of adjacent levels (float32 literals; they equal float32 (l_k + l_k+1)/2, which
 *    the default backend's torch.bucketize uses, backends/default/ops.py), each test `x > t`: a value
 *    exactly on a threshold takes the lower level. An all-zero block has 1/absmax = inf and
 *    x = 0 · inf = NaN, which fails every test and gets code 0 (−1), decoding to −1 · 0 = −0: lowbit
 *    does the same.
 * 4. Levels. The 16 values of `nf4_dequantization_lut` (kernels.cu lines 26-43) = functional.py
 *    get_4bit_type('nf4') (tensor/nf4Pack.ts NF4_LEVELS); code k is the k-th level in ascending order.
 * 5. Packing. Two codes a byte, the first of each pair in the high nibble (kernels.cu lines 364-365, 455-456:
 *    `qvals[j] = dQuantizeNF4(vals[2j] · absmax) << 4 | dQuantizeNF4(vals[2j+1] · absmax)`).
 * 6. Dequantization. w' = lut[code] · absmax, one float32 multiply (kDequantizeBlockwise, lines 520-521).
 * 7. Double quantization (`compress_statistics=True`, functional.py quantize_4bit lines 938-950):
 *    offset = absmax.mean(); the values absmax − offset (float32) are quantized by quantize_blockwise
 *    with blocksize 256 on the signed 8-bit dynamic map (create_dynamic_map(signed=True), lines 296-345):
 *    per 256 values their absmax2 (float32), x = v · (1/absmax2) in float32, and the kernel's
 *    dQuantize<0> (kernels.cu lines 160-201): a binary search of 7 halvings from pivot 127, then the
 *    nearer of the pivot and its last visited neighbour by the float32 midpoint, `x > mid` (upper) and
 *    `x < mid` (lower) strict, a tie keeping the pivot. dequantize_4bit (functional.py lines 1052-1056) rebuilds
 *    absmax = fround(map[q] · absmax2) (dequantize_blockwise, kernels.cu line 508) and then `absmax += offset` (float32).
 *    The mean: lowbit rounds the exact sum to float32 and divides in float32 (float32Mean); torch's
 *    float32 reduction may differ in its last bit. The checkpoint stores the offset it used, so decoding equals Q whatever the rounding.
 *
 * Bits as stored: 4 + 32/64 = 4.5 per weight plain, 4 + 8/64 + 32/(64·256) + 32/n ≈ 4.127 with double
 * quantization (io/storage.ts counts the stored parts); the nominal figure is 4. No calibration:
 * `--calib none` works (the default, c4, only feeds the per-layer error report, as for RTN).
 */
import { UsageError } from '../../errors.js';
import { DYNAMIC_MAP, NESTED_BLOCK, NF4_BLOCK, NF4_LEVELS, dequantNested, nf4KindName, packNf4, type Nf4Layer } from '../../tensor/nf4Pack.js';
import type { QuantSpec } from '../core/grid.js';
import type { OptionSpec, OptionValues, QuantMethod } from '../method.js';

const f = Math.fround;

/** The thresholds of dQuantizeNF4's tree, as the float32 literals of kernels.cu, in ascending order. */
export const NF4_THRESHOLDS = Float32Array.from([
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984,
  -0.13791173323988914, -0.045525018125772476, 0.03979014977812767, 0.1202552504837513, 0.2035212516784668,
  0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
]);

const T = NF4_THRESHOLDS;

/** bitsandbytes' dQuantizeNF4 (kernels.cu): the code of a normalized float32 value x, as its decision tree decides. */
export function dQuantizeNF4(x: number): number {
  if (x > T[7]!) {
    if (x > T[11]!) {
      if (x > T[13]!) return x > T[14]! ? 0b1111 : 0b1110;
      return x > T[12]! ? 0b1101 : 0b1100;
    }
    if (x > T[9]!) return x > T[10]! ? 0b1011 : 0b1010;
    return x > T[8]! ? 0b1001 : 0b1000;
  }
  if (x > T[3]!) {
    if (x > T[5]!) return x > T[6]! ? 0b0111 : 0b0110;
    return x > T[4]! ? 0b0101 : 0b0100;
  }
  if (x > T[1]!) return x > T[2]! ? 0b0011 : 0b0010;
  return x > T[0]! ? 0b0001 : 0b0000;
}

/** bitsandbytes' dQuantize<STOCHASTIC = 0> (kernels.cu): the code of x on a sorted 256-value map. */
export function dQuantize(code: Float32Array, x: number): number {
  let pivot = 127, upperPivot = 255, lowerPivot = 0;
  let lower = -1, upper = 1;
  let val = code[pivot]!;
  for (let i = 64; i > 0; i >>= 1) {
    if (x > val) { lowerPivot = pivot; lower = val; pivot += i; } else { upperPivot = pivot; upper = val; pivot -= i; }
    val = code[pivot]!;
  }
  if (upperPivot === 255) upper = code[upperPivot]!;
  if (lowerPivot === 0) lower = code[lowerPivot]!;
  if (x > val) return x > f((upper + val) * 0.5) ? upperPivot : pivot;
  return x < f((lower + val) * 0.5) ? lowerPivot : pivot;
}

/** Per block of `blocksize` values (the last possibly shorter): max |v| from −FLT_MAX, as kQuantizeBlockwise. */
export function blockAbsmax(v: Float32Array, blocksize: number): Float32Array {
  const out = new Float32Array(Math.ceil(v.length / blocksize));
  for (let b = 0; b < out.length; b++) {
    let m = -3.4028234663852886e38;
    for (let i = b * blocksize, e = Math.min(v.length, i + blocksize); i < e; i++) m = Math.max(m, Math.abs(v[i]!));
    out[b] = m;
  }
  return out;
}

/** NF4 codes of w (flattened) in blocks of 64, and each block's absmax: bitsandbytes quantize_4bit(quant_type='nf4'). */
export function quantizeNf4(w: Float32Array): { codes: Uint8Array; absmax: Float32Array } {
  const absmax = blockAbsmax(w, NF4_BLOCK), codes = new Uint8Array(w.length);
  for (let b = 0; b < absmax.length; b++) {
    const inv = f(1 / absmax[b]!);
    for (let i = b * NF4_BLOCK, e = Math.min(w.length, i + NF4_BLOCK); i < e; i++) codes[i] = dQuantizeNF4(f(w[i]! * inv));
  }
  return { codes, absmax };
}

/**
 * Double quantization of the absmax values (quantize_4bit with compress_statistics=True): offset = their
 * mean, then quantize_blockwise(absmax − offset, blocksize=256) on the dynamic map.
 */
export function doubleQuantize(absmax: Float32Array, offset = float32Mean(absmax)): { q: Uint8Array; absmax2: Float32Array; offset: number } {
  const centred = absmax.map((a) => a - offset); // a Float32Array: each difference rounded to float32
  return { ...quantizeBlockwise(centred, NESTED_BLOCK), offset };
}

/**
 * absmax.mean() as float32: the sum rounded once to float32, divided in float32. torch sums float32 in
 * float32 with its own cascade, so its mean can differ in the last bit (2 times in 3 it is the same).
 */
export function float32Mean(v: Float32Array): number {
  let sum = 0;
  for (const a of v) sum += a;
  return f(f(sum) / v.length);
}

/** bitsandbytes quantize_blockwise on the dynamic map: codes and each block's absmax. */
export function quantizeBlockwise(v: Float32Array, blocksize: number): { q: Uint8Array; absmax2: Float32Array } {
  const absmax2 = blockAbsmax(v, blocksize), q = new Uint8Array(v.length);
  for (let b = 0; b < absmax2.length; b++) {
    const inv = f(1 / absmax2[b]!);
    for (let i = b * blocksize, e = Math.min(v.length, i + blocksize); i < e; i++) q[i] = dQuantize(DYNAMIC_MAP, f(v[i]! * inv));
  }
  return { q, absmax2 };
}

export interface Nf4Result {
  /** the dequantized weights, flattened as w: fround(lut[code] · absmax) */
  readonly Q: Float32Array;
  readonly codes: Uint8Array;
  /** the absmax as stored: float32, or double-quantized */
  readonly absmax: Nf4Layer['absmax'];
  /** the absmax decoding uses (equal to the stored float32 values without double quantization) */
  readonly absmaxUsed: Float32Array;
}

/** NF4 of a flattened weight, with or without double quantization of its absmax. */
export function nf4(w: Float32Array, doubleQuant: boolean): Nf4Result {
  const { codes, absmax } = quantizeNf4(w);
  let stored: Nf4Layer['absmax'] = absmax, absmaxUsed = absmax;
  if (doubleQuant) {
    const dq = doubleQuantize(absmax);
    stored = dq;
    absmaxUsed = dequantNested(dq.q, dq.absmax2, dq.offset);
  }
  const Q = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) Q[i] = NF4_LEVELS[codes[i]!]! * absmaxUsed[Math.floor(i / NF4_BLOCK)]!;
  return { Q, codes, absmax: stored, absmaxUsed };
}

export const DOUBLE_QUANT_OPTION: OptionSpec = {
  kind: 'boolean', default: false, flag: '--double-quant', key: (v) => (v ? 'dq' : 'nodq'),
  help: 'quantize the absmax values too (8-bit dynamic map, blocks of 256, mean-centred: bitsandbytes compress_statistics)',
};

/** The settings NF4 and ICQ accept: 4 bits, blocks of 64, float32 absmax. */
export function validateNf4Spec(method: string, spec: QuantSpec): void {
  if (spec.bits !== 4) throw new UsageError(`${method} stores 4-bit NormalFloat codes: --wbits must be 4, got ${spec.bits}`);
  if (spec.groupSize !== NF4_BLOCK) throw new UsageError(`${method} quantizes blocks of ${NF4_BLOCK} weights (bitsandbytes' and QLoRA's blocksize): --group must be ${NF4_BLOCK}, got ${spec.groupSize}`);
  if (spec.scaleDtype === 'f16') throw new UsageError(`${method} keeps its absmax values in float32 as bitsandbytes does: drop --scale-dtype f16`);
}

const doubleQuantOf = (o: OptionValues) => o.doubleQuant === true;

/** NF4 as a pipeline method: no statistics, the `nf4` (or `nf4dq`) stored kind. */
export const NF4: QuantMethod = {
  name: 'nf4',
  label: 'NF4',
  description: 'NormalFloat-4, absmax per block of 64, optional double quantization (QLoRA, Dettmers et al., 2023; bitsandbytes)',
  stats: [],
  needsCalibration: false,
  defaultGroupSize: NF4_BLOCK,
  symmetric: true,
  nextInputs: 'quantized',
  sequential: false,
  options: { doubleQuant: DOUBLE_QUANT_OPTION },
  format: (_spec, _cfg, options) => nf4KindName(doubleQuantOf(options), false),
  nominalBits: () => 4,
  validate: (spec) => validateNf4Spec('nf4', spec),
  quantizeLayer(l, o) {
    if (l.cols % 2 !== 0) throw new UsageError(`${l.name}: nf4 packs two codes a byte and needs an even input width, got ${l.cols}`);
    const dq = doubleQuantOf(o.options);
    const r = nf4(l.W, dq);
    const notes: string[] = [];
    const zeros = r.absmaxUsed.filter((a) => a === 0).length;
    if (zeros > 0) notes.push(`${zeros} all-zero block(s): stored with code 0 and absmax 0, as bitsandbytes`);
    return { Q: r.Q, stored: { kind: nf4KindName(dq, false), parts: packNf4({ rows: l.rows, cols: l.cols, codes: r.codes, absmax: r.absmax }) }, notes };
  },
};
