/**
 * QA-LoRA's merge (yuhuixu1993/qa-lora merge.py): after training, every adapted linear's
 * delta = scaling·B·A [out, in/group] folds into its GPTQ group zeros (tensor/gptqZeroShift.ts), and
 * the result is written as a GPTQ checkpoint with float zero points and no adapter files
 * (io/quantized/floatZeros.ts). The merged model equals base + adapter to float32 rounding.
 */
import type { LoraWeights } from '../../io/checkpoint.js';
import { openModel } from '../../io/open.js';
import { writeGptqFloatZeros } from '../../io/quantized/floatZeros.js';
import { NAMES, type LayerPart } from '../../io/source.js';
import { UsageError } from '../../errors.js';
import { mergeZeroShift } from '../../tensor/gptqZeroShift.js';
import { isGptqPacked, type GptqPacked } from '../../tensor/packed.js';

const PART: Readonly<Record<string, LayerPart>> = Object.freeze({
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
});

/** scaling·B·A [out, inA] in float64, rounded once to float32 (merge.py's fp32 matmul, up to summation order). */
export function loraDelta(B: Float32Array, A: Float32Array, out: number, r: number, inA: number, scaling: number): Float32Array {
  const d = new Float32Array(out * inA);
  for (let o = 0; o < out; o++) {
    for (let c = 0; c < inA; c++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += B[o * r + k]! * A[k * inA + c]!;
      d[o * inA + c] = scaling * s;
    }
  }
  return d;
}

/** Writes `out`: the GPTQ checkpoint folder `baseDir` with QA-LoRA adapters `w` merged into its zeros. */
export function writeQaLoraMerged(baseDir: string, w: LoraWeights, out: string, force = false): { layersMerged: number } {
  if (w.form !== 'qa' || !w.groupSize) throw new UsageError(`${w.path}: only QA-LoRA adapters (form "qa") merge into GPTQ zeros; this one is "${w.form}"`);
  const base = openModel(baseDir);
  const layers = new Map<string, GptqPacked>();
  w.layers.forEach((row, i) => {
    for (const [name, a] of Object.entries(row)) {
      if (!a) continue;
      const tensor = NAMES.layer(i, PART[name]!);
      const q = base.weights.readQuantized?.(tensor);
      if (!q || !isGptqPacked(q)) throw new UsageError(`${baseDir}: ${tensor} is not a GPTQ layer; QA-LoRA merges into GPTQ zeros`);
      if (q.cols !== a.inA * w.groupSize!) throw new UsageError(`${tensor}: ${q.cols} input columns, but the adapter pools ${a.inA} groups of ${w.groupSize}`);
      layers.set(tensor, mergeZeroShift(q, loraDelta(a.B, a.A, a.outF, w.rank, a.inA, w.scaling), w.groupSize!, tensor));
    }
  });
  writeGptqFloatZeros(baseDir, out, layers, force);
  return { layersMerged: layers.size };
}
