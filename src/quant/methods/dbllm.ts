/**
 * DB-LLM (Chen et al., 2024, arXiv 2402.11960): Flexible Dual Binarization (FDB) of a 2-bit
 * group-quantized weight, trained against the full-precision model with Deviation-Aware
 * Distillation (DAD, dbllmTrain.ts). The authors released no code (Hon-Chen/DB-LLM holds a README
 * only), and the paper's text could not be read here: see the README's DB-LLM section for what is
 * taken from where and which choices are lowbit's.
 *
 * FDB: a 2-bit asymmetric min-max grid per group (lowbit's RTN grid, float32 scales: w' = s·(q − z),
 * q ∈ 0..3, integer z ∈ 0..3) is exactly a sum of two {0, 1} binary matrices with their own scales,
 * w' = α1·b1 + α2·b2: the four values s·(q − z) are 0 (at q = z) and three others, which are always
 * {α1, α2, α1 + α2} with α1 = ±2s, α2 = ±s (signs by z, `FDB_SIGNS`). Every sum rounds once in
 * float32, so the decomposition is bit-exact. Training then moves α1, α2 freely per group
 * ("flexible") and the binary parts through a straight-through estimator on latent float weights.
 */
import { UsageError } from '../../errors.js';
import { quantizeMatrix } from '../core/grid.js';
import { dequantizeMatrix } from '../../tensor/packed.js';
import { dbllmTensors, fdbValue, setPlaneBit, type DbllmParts } from '../../tensor/dbllmPack.js';
import type { QuantMethod } from '../method.js';
import { trainFdb } from './dbllmTrain.js';

/** α1 = a·2s, α2 = b·s by zero point z; and the bits (b1, b2) of each code q (value s·(q − z)). */
export const FDB_SIGNS: readonly (readonly [number, number])[] = Object.freeze([[2, 1], [2, -1], [-2, 1], [-2, -1]]);

/** (b1, b2) for q − z = d under the signs of zero point z: the pair whose α1·b1 + α2·b2 = d·s. */
export function fdbBits(z: number, q: number): [number, number] {
  const [a, b] = FDB_SIGNS[z]!, d = q - z;
  for (const [b1, b2] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) if (a * b1 + b * b2 === d) return [b1, b2];
  throw new Error(`fdbBits: code ${q} has no dual-binary form under zero point ${z}`);
}

/** FDB parts of W [rows, cols] from the 2-bit min-max grid in groups of g, and the dequantized weights (equal to the grid's). */
export function fdbInit(W: Float32Array, rows: number, cols: number, g: number, where?: string): { parts: DbllmParts; Q: Float32Array } {
  if (cols % 8 !== 0) throw new UsageError(`${where ?? 'dbllm'}: ${cols} input columns are not a multiple of 8 (the bit planes' byte)`);
  const m = quantizeMatrix(W, rows, cols, { bits: 2, groupSize: g, sym: false, scaleDtype: 'f32' }, where);
  const nb = cols / g;
  const planes = new Uint8Array(2 * rows * (cols >> 3)), alphas = new Float32Array(rows * nb * 2);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const s = m.scales[r * nb + b]!, z = m.zeros[r * nb + b]!, [a1, a2] = FDB_SIGNS[z]!;
      alphas[(r * nb + b) * 2] = Math.fround(a1 * s);
      alphas[(r * nb + b) * 2 + 1] = Math.fround(a2 * s);
      for (let c = b * g; c < (b + 1) * g; c++) {
        const [b1, b2] = fdbBits(z, m.codes[r * cols + c]!);
        if (b1) setPlaneBit(planes, rows, cols, 0, r, c);
        if (b2) setPlaneBit(planes, rows, cols, 1, r, c);
      }
    }
  }
  return { parts: { rows, cols, groupSize: g, planes, alphas }, Q: dequantizeMatrix(m, rows, cols) };
}

/** The dense weights of FDB parts (the stored kind's decoding). */
export function fdbDecode(p: DbllmParts): Float32Array {
  const { rows, cols, groupSize: g, planes, alphas } = p, B = cols >> 3, nb = cols / g;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = (r * nb + Math.floor(c / g)) * 2, bit = c & 7;
      const b1 = (planes[r * B + (c >> 3)]! >> bit) & 1, b2 = (planes[(rows + r) * B + (c >> 3)]! >> bit) & 1;
      out[r * cols + c] = fdbValue(b1, b2, alphas[k]!, alphas[k + 1]!);
    }
  }
  return out;
}

export const DBLLM: QuantMethod = {
  name: 'dbllm',
  label: 'DB-LLM',
  description: 'DB-LLM: flexible dual binarization of a 2-bit grid, trained with deviation-aware distillation (Chen et al., 2024)',
  stats: [],
  needsCalibration: false,
  defaultGroupSize: 128,
  symmetric: false,
  nextInputs: 'quantized',
  sequential: false,
  options: {
    steps: { kind: 'integer', default: 0, min: 0, max: 1e7, flag: '--steps', help: 'dbllm: distillation steps after the FDB initialisation (0: the 2-bit grid as two bit planes)', key: (v) => `s${v}` },
    lr: { kind: 'number', default: 1e-4, min: 0, max: 1e30, flag: '--lr', help: 'dbllm: AdamW learning rate of the latent weights and the scales (lowbit\'s choice)', key: (v) => `lr${v}` },
    gradAccum: { kind: 'integer', default: 1, min: 1, max: 4096, flag: '--grad-accum', help: 'dbllm: calibration windows per step', key: (v) => `ga${v}` },
    saveEvery: { kind: 'integer', default: 10, min: 1, max: 1e7, flag: '--save-every', help: 'dbllm: save the training state every n steps (a rerun resumes from it)', key: (v) => `se${v}` },
    dadUniform: { kind: 'boolean', default: false, flag: '--dad-uniform', help: 'dbllm: plain KL distillation (every token weighted 1) instead of the entropy-weighted DAD', key: () => 'kl' },
  },
  format: () => 'dbllm',
  validate(spec, options) {
    if (spec.bits !== 2) throw new UsageError(`dbllm: --wbits must be 2 (dual binarization of a 2-bit grid; got ${spec.bits})`);
    if (spec.groupSize === -1 || spec.groupSize % 8 !== 0) throw new UsageError(`dbllm: --group must be a positive multiple of 8 (got ${spec.groupSize})`);
    if (spec.sym) throw new UsageError('dbllm: the 2-bit grid is asymmetric: drop --sym');
    if (spec.scaleDtype === 'f16') throw new UsageError('dbllm: the scales are float32 (--scale-dtype f16 is not offered)');
    void options;
  },
  quantizeLayer: (l, o) => {
    const g = o.spec.groupSize;
    if (l.cols % g !== 0) throw new UsageError(`dbllm: --group ${g} does not divide the ${l.cols} input columns of ${l.name}`);
    const { parts, Q } = fdbInit(l.W, l.rows, l.cols, g, l.name);
    return { Q, stored: { kind: 'dbllm', parts: dbllmTensors(parts) }, notes: [] };
  },
  refine: (ctx) => trainFdb(ctx),
};
