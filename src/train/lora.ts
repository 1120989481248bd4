/**
 * The trainable adapters of a model, in host memory (float32): for every block and every adapted
 * linear, A [r, in'] and B [out, r] (PEFT's lora_A.weight / lora_B.weight), plus IR-QLoRA's two
 * elastic scalars. Forms:
 *   lora — PEFT's LoRA (QLoRA): A ~ U(±1/√in) (kaiming_uniform_(a=√5)), B = 0.
 *   iec  — IR-QLoRA's Information Elastic Connection (htqin/IR-QLoRA utils.py): LoRA plus
 *          h += βA·chunkmeans_r(x), out += s·βB·repeat(h), βA = βB = 0 at init; r must divide in and out.
 *   qa   — QA-LoRA (yuhuixu1993/qa-lora peft_utils.py): A [r, in/group] sees the group means of x
 *          (AvgPool1d(group)), A ~ xavier_uniform (bound √(6/(in/group + r))), B = 0.
 * Initialisation is seeded and engine-independent (random.ts); every value is a function of (seed,
 * layer, linear, element).
 */
import type { BTensor, TrainableBackend } from '../backend/backend.js';
import type { LlamaConfig } from '../io/config.js';
import { UsageError } from '../errors.js';
import { LINEARS, type LinearName } from '../model/block.js';
import type { AdapterTensors, BlockAdapterGrads, BlockAdapters, DotPair } from './blockGrad.js';
import { dropoutMask, maskKey, uniformArray } from './random.js';

export type AdapterForm = 'lora' | 'iec' | 'qa';

export interface LoraSpec {
  readonly form: AdapterForm;
  readonly rank: number;
  readonly alpha: number;
  readonly dropout: number;
  /** QA-LoRA's group size (the base's quantization group) */
  readonly groupSize?: number;
  readonly targets?: readonly LinearName[];
}

/** One linear's adapter: its parameters and their accumulated gradients. */
export interface LinearAdapter {
  readonly layer: number;
  readonly name: LinearName;
  readonly outF: number;
  readonly inF: number;
  /** columns of A: in, or in/group for QA-LoRA */
  readonly inA: number;
  readonly A: Float32Array; readonly B: Float32Array;
  readonly gA: Float32Array; readonly gB: Float32Array;
  /** IR-QLoRA's βA, βB (one element each) and their gradients */
  readonly beta?: { readonly A: Float32Array; readonly B: Float32Array; readonly gA: Float32Array; readonly gB: Float32Array };
}

/** in and out features of each linear of a LLaMA block */
export function linearShape(cfg: LlamaConfig, name: LinearName): { outF: number; inF: number } {
  const D = cfg.hiddenSize, qd = cfg.numHeads * cfg.headDim, kvd = cfg.numKvHeads * cfg.headDim, F = cfg.intermediateSize;
  const [outF, inF] = ({ q: [qd, D], k: [kvd, D], v: [kvd, D], o: [D, qd], gate: [F, D], up: [F, D], down: [D, F] } as const)[name];
  return { outF, inF };
}

export const PEFT_MODULE: Readonly<Record<LinearName, string>> = Object.freeze({
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
});

export class AdapterSet {
  readonly scaling: number;
  readonly layers: ReadonlyArray<Partial<Record<LinearName, LinearAdapter>>>;
  private readonly constants = new Map<string, BTensor>();

  constructor(readonly cfg: LlamaConfig, readonly spec: LoraSpec, seed: number) {
    const { rank: r, form } = spec;
    if (!Number.isInteger(r) || r < 1) throw new UsageError(`LoRA rank ${r} is not a positive integer`);
    if (!(spec.alpha > 0)) throw new UsageError(`LoRA alpha ${spec.alpha} is not positive`);
    if (!(spec.dropout >= 0 && spec.dropout < 1)) throw new UsageError(`LoRA dropout ${spec.dropout} is not in [0, 1)`);
    this.scaling = spec.alpha / r;
    const targets = spec.targets ?? LINEARS;
    this.layers = Array.from({ length: cfg.numLayers }, (_, layer) => {
      const row: Partial<Record<LinearName, LinearAdapter>> = {};
      for (const name of targets) {
        const { outF, inF } = linearShape(cfg, name);
        const where = `layer ${layer} ${PEFT_MODULE[name]} (${outF}×${inF})`;
        let inA = inF, bound = 1 / Math.sqrt(inF);
        if (form === 'iec' && (inF % r !== 0 || outF % r !== 0)) throw new UsageError(`IR-QLoRA's elastic connections need the rank ${r} to divide the in and out features of ${where}`);
        if (form === 'qa') {
          const g = spec.groupSize;
          if (!g || !Number.isInteger(g) || g < 1) throw new UsageError('QA-LoRA needs a positive integer group size');
          if (inF % g !== 0) throw new UsageError(`QA-LoRA's group size ${g} does not divide the ${inF} input features of ${where}`);
          inA = inF / g;
          bound = Math.sqrt(6 / (inA + r));
        }
        const key = maskKey(seed, 1, layer, LINEARS.indexOf(name));
        row[name] = {
          layer, name, outF, inF, inA,
          A: uniformArray(r * inA, -bound, bound, key), B: new Float32Array(outF * r),
          gA: new Float32Array(r * inA), gB: new Float32Array(outF * r),
          beta: form === 'iec' ? { A: new Float32Array(1), B: new Float32Array(1), gA: new Float32Array(1), gB: new Float32Array(1) } : undefined,
        };
      }
      return row;
    });
  }

  /** every adapter, layer by layer in LINEARS order */
  all(): LinearAdapter[] {
    return this.layers.flatMap((row) => LINEARS.flatMap((n) => (row[n] ? [row[n]!] : [])));
  }

  /** parameters and their gradients, in a fixed order (optimizer state and checkpoints follow it) */
  params(): { name: string; value: Float32Array; grad: Float32Array }[] {
    return this.all().flatMap((a) => {
      const base = `base_model.model.model.layers.${a.layer}.${PEFT_MODULE[a.name]}`;
      const ps = [{ name: `${base}.lora_A.weight`, value: a.A, grad: a.gA }, { name: `${base}.lora_B.weight`, value: a.B, grad: a.gB }];
      if (a.beta) ps.push({ name: `${base}.lora_default_A_scale`, value: a.beta.A, grad: a.beta.gA }, { name: `${base}.lora_default_B_scale`, value: a.beta.B, grad: a.beta.gB });
      return ps;
    });
  }

  zeroGrads(): void { for (const p of this.params()) p.grad.fill(0); }

  /**
   * Block `layer`'s adapters on the backend for a sequence of T rows; `maskKeyOf(linear index)`
   * keys its dropout masks (the recompute of the backward pass must pass the same keys).
   */
  blockTensors(be: TrainableBackend, layer: number, T: number, maskKeyOf: (linear: number) => number): BlockAdapters {
    const out: BlockAdapters = {};
    const r = this.spec.rank;
    for (const [li, name] of LINEARS.entries()) {
      const a = this.layers[layer]![name];
      if (!a) continue;
      const t: AdapterTensors = {
        A: be.upload(a.A, [r, a.inA]), B: be.upload(a.B, [a.outF, r]), scaling: this.scaling,
        mask: this.spec.dropout > 0 ? be.upload(dropoutMask(T * a.inA, this.spec.dropout, maskKeyOf(li)), [T, a.inA]) : undefined,
        pool: this.spec.form === 'qa' ? this.constant(be, 'pool', a.inA, a.inF) : undefined,
        iec: a.beta ? { P: this.constant(be, 'P', r, a.inF), R: this.constant(be, 'R', a.outF, r), betaA: a.beta.A[0]!, betaB: a.beta.B[0]! } : undefined,
      };
      out[name] = t;
    }
    return out;
  }

  /** Adds block `layer`'s gradients (read from the backend) into the host gradient arrays. */
  async accumulate(be: TrainableBackend, layer: number, grads: BlockAdapterGrads): Promise<void> {
    for (const name of LINEARS) {
      const g = grads[name], a = this.layers[layer]![name];
      if (!g || !a) continue;
      addInto(a.gA, await be.read(g.dA));
      addInto(a.gB, await be.read(g.dB));
      if (a.beta && g.dBetaA && g.dBetaB) {
        a.beta.gA[0] = Math.fround(a.beta.gA[0]! + await dotPair(be, g.dBetaA));
        a.beta.gB[0] = Math.fround(a.beta.gB[0]! + await dotPair(be, g.dBetaB));
      }
    }
  }

  /** Frees the constant matrices (pooling, elastic connections) uploaded for the backend. */
  free(be: TrainableBackend): void {
    for (const t of this.constants.values()) be.free(t);
    this.constants.clear();
  }

  /**
   * pool [in', in]: 1/g on row c's columns c·g..c·g+g−1 (QA-LoRA's AvgPool1d);
   * P [r, in]: 1/(in/r) on row i's contiguous chunk (IEC's chunk means);
   * R [out, r]: 1 at (j, ⌊j·r/out⌋) (IEC's repeat of h_i over a contiguous out/r outputs).
   */
  private constant(be: TrainableBackend, kind: 'pool' | 'P' | 'R', rows: number, cols: number): BTensor {
    const key = `${kind}:${rows}x${cols}`;
    let t = this.constants.get(key);
    if (!t) {
      const m = new Float32Array(rows * cols);
      if (kind === 'R') { const c = rows / cols; for (let j = 0; j < rows; j++) m[j * cols + Math.floor(j / c)] = 1; }
      else { const c = cols / rows, v = Math.fround(1 / c); for (let i = 0; i < rows; i++) m.fill(v, i * cols + i * c, i * cols + (i + 1) * c); }
      t = be.upload(m, [rows, cols]);
      this.constants.set(key, t);
    }
    return t;
  }
}

function addInto(acc: Float32Array, g: Float32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + g[i]!;
}

async function dotPair(be: TrainableBackend, p: DotPair): Promise<number> {
  const x = await be.read(p.x), y = await be.read(p.y);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!;
  return s;
}
