/**
 * DB-LLM's training: every FDB layer (dbllm.ts) learns end to end against the full-precision model.
 *   Parameters: per layer a latent float32 weight W (initialised to the original weight) and the
 *     scales α1, α2 per row and group (initialised by the FDB decomposition).
 *   Forward: the binary parts are the nearest of the four levels {0, α2, α1, α1 + α2} to each latent
 *     weight (b1, b2), Ŵ = α1·b1 + α2·b2; the model runs on Ŵ.
 *   Backward (straight-through estimator): dL/dW = dL/dŴ; dL/dα1 = Σ_group dL/dŴ·b1, dL/dα2 likewise.
 *   Loss (Deviation-Aware Distillation, lowbit's reading: `dadLoss`): per token, the KL divergence of the
 *     student's next-token distribution from the teacher's, weighted by the teacher's normalised entropy
 *     (ambiguous tokens count more), averaged with those weights over the sequence.
 *   Data: the calibration windows (`--calib`, `--nsamples`, `--seqlen`), a seeded order per epoch;
 *   AdamW (β 0.9/0.999, ε 1e-8, no weight decay), gradient norm clipped at 1, constant learning rate.
 * The state is saved atomically every `--save-every` steps and at the end; a rerun resumes from it to the same result.
 */
import type { BTensor, TrainableBackend } from '../../backend/backend.js';
import { isTrainable } from '../../backend/backend.js';
import { LowbitError, UsageError } from '../../errors.js';
import { blockForward, type LinearName } from '../../model/block.js';
import { ropeFor } from '../../model/stream.js';
import type { BlockWeights } from '../../model/weights.js';
import { Tensor } from '../../tensor/tensor.js';
import { Xoshiro128, shuffle } from '../../tensor/xoshiro.js';
import { dbllmTensors, fdbValue, setPlaneBit, type DbllmParts } from '../../tensor/dbllmPack.js';
import { AdamW, clipGradNorm } from '../../train/adamw.js';
import { loadFrozen } from '../../train/finetune.js';
import { sequenceGrad, type FrozenModel } from '../../train/sequenceGrad.js';
import { hasTrainState, loadTrainState, saveTrainState, type JsonValue } from '../../train/state.js';
import type { RefineContext, RefineLayer, RefineResult } from '../method.js';

const MAX_GRAD_NORM = 1;
const LINEAR_OF: Readonly<Record<string, LinearName>> = Object.freeze({
  'self_attn.q_proj': 'q', 'self_attn.k_proj': 'k', 'self_attn.v_proj': 'v', 'self_attn.o_proj': 'o',
  'mlp.gate_proj': 'gate', 'mlp.up_proj': 'up', 'mlp.down_proj': 'down',
});

/**
 * The distillation loss of one chunk of rows and its gradient with respect to the student's logits:
 * with p = softmax(teacher), q = softmax(student) per row (float64), KL_t = Σ p (log p − log q) and
 * weight u_t (given), loss = Σ_t u_t·KL_t / U and dloss/dz_t = (u_t / U)·(q − p).
 */
export function dadLoss(student: Float32Array, teacher: Float32Array, u: Float64Array, U: number, n: number, V: number): { loss: number; grad: Float32Array } {
  const grad = new Float32Array(n * V);
  const lp = new Float64Array(V), lq = new Float64Array(V);
  let loss = 0;
  for (let t = 0; t < n; t++) {
    logSoftmax(teacher, t * V, V, lp);
    logSoftmax(student, t * V, V, lq);
    let kl = 0;
    for (let j = 0; j < V; j++) { const p = Math.exp(lp[j]!); if (p > 0) kl += p * (lp[j]! - lq[j]!); }
    const w = u[t]! / U;
    loss += w * kl;
    for (let j = 0; j < V; j++) grad[t * V + j] = w * (Math.exp(lq[j]!) - Math.exp(lp[j]!));
  }
  return { loss, grad };
}

/** The DAD weight of each row: the teacher's entropy / log V (in [0, 1]), or 1 for plain KL. */
export function dadWeights(teacher: Float32Array, T: number, V: number, uniform: boolean): Float64Array {
  const u = new Float64Array(T), lp = new Float64Array(V);
  if (uniform) return u.fill(1);
  for (let t = 0; t < T; t++) {
    logSoftmax(teacher, t * V, V, lp);
    let h = 0;
    for (let j = 0; j < V; j++) { const p = Math.exp(lp[j]!); if (p > 0) h -= p * lp[j]!; }
    u[t] = h / Math.log(V);
  }
  return u;
}

function logSoftmax(x: Float32Array, o: number, V: number, out: Float64Array): void {
  let mx = -Infinity;
  for (let j = 0; j < V; j++) if (x[o + j]! > mx) mx = x[o + j]!;
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(x[o + j]! - mx);
  const l = mx + Math.log(s);
  for (let j = 0; j < V; j++) out[j] = x[o + j]! - l;
}

/** One FDB layer under training. */
interface FdbParam {
  readonly name: string; readonly block: number; readonly linear: LinearName;
  readonly rows: number; readonly cols: number; readonly g: number;
  readonly W: Float32Array; readonly alphas: Float32Array;
  readonly gW: Float32Array; readonly gA: Float32Array;
  /** the current binary code of each weight, b1·2 + b2 */
  readonly code: Uint8Array;
}

/** Binarizes the latent weights (nearest level; the first of equals) and returns Ŵ. */
function binarize(p: FdbParam): Float32Array {
  const { rows, cols, g, W, alphas, code } = p, nb = cols / g, out = new Float32Array(rows * cols), lv = new Float32Array(4);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const a1 = alphas[(r * nb + b) * 2]!, a2 = alphas[(r * nb + b) * 2 + 1]!;
      lv[0] = 0; lv[1] = fdbValue(0, 1, a1, a2); lv[2] = fdbValue(1, 0, a1, a2); lv[3] = fdbValue(1, 1, a1, a2);
      for (let c = b * g; c < (b + 1) * g; c++) {
        const i = r * cols + c, w = W[i]!;
        let best = 0, d = Math.abs(w - lv[0]!);
        for (let k = 1; k < 4; k++) { const e = Math.abs(w - lv[k]!); if (e < d) { d = e; best = k; } }
        code[i] = best;
        out[i] = lv[best]!;
      }
    }
  }
  return out;
}

/** The stored parts of the current codes and scales. */
function partsOf(p: FdbParam): DbllmParts {
  const { rows, cols, g, code } = p, B = cols >> 3, planes = new Uint8Array(2 * rows * B);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = code[r * cols + c]!;
      if (k & 2) setPlaneBit(planes, rows, cols, 0, r, c);
      if (k & 1) setPlaneBit(planes, rows, cols, 1, r, c);
    }
  }
  return { rows, cols, groupSize: g, planes, alphas: p.alphas.slice() };
}

function paramsOf(ctx: RefineContext): FdbParam[] {
  return ctx.layers.map((l) => {
    const m = /^model\.layers\.(\d+)\.(.+)$/.exec(l.name);
    const linear = m ? LINEAR_OF[m[2]!] : undefined;
    if (!m || !linear || !('parts' in l.stored) || l.stored.kind !== 'dbllm') throw new Error(`dbllm: ${l.name} is not an FDB layer of a decoder block`);
    const alphas = Float32Array.from(l.stored.parts.alphas!.toF32());
    const g = l.cols / l.stored.parts.alphas!.shape[1]!;
    const W = Float32Array.from(ctx.ckpt.weights.read(`${l.name}.weight`).toF32());
    return {
      name: l.name, block: Number(m[1]), linear, rows: l.rows, cols: l.cols, g, W, alphas,
      gW: new Float32Array(W.length), gA: new Float32Array(alphas.length), code: new Uint8Array(W.length),
    };
  });
}

export async function trainFdb(ctx: RefineContext): Promise<RefineResult> {
  const steps = ctx.options.steps as number, lr = ctx.options.lr as number, gradAccum = ctx.options.gradAccum as number;
  const uniform = ctx.options.dadUniform === true, saveEvery = ctx.options.saveEvery as number;
  const settings = { steps, lr, gradAccum, loss: uniform ? 'KL (uniform weights)' : 'DAD: KL weighted by the teacher\'s entropy / log V', maxGradNorm: MAX_GRAD_NORM, optimizer: 'AdamW 0.9/0.999/1e-8, no weight decay, constant lr' };
  if (steps === 0) return { layers: [...ctx.layers], record: { ...settings, note: 'no training: the FDB initialisation (the 2-bit grid as two bit planes)' } };
  const be = ctx.be;
  if (!isTrainable(be)) throw new UsageError(`dbllm: the ${be.name} backend has no backward ops: train with --backend cpu`);
  const windows = ctx.calibration;
  if (!windows || windows.length === 0) throw new UsageError('dbllm: --steps > 0 trains on calibration text: give --calib (e.g. c4)');
  const params = paramsOf(ctx);
  const flat = params.flatMap((p) => [p.W, p.alphas]), grads = params.flatMap((p) => [p.gW, p.gA]);
  const opt = new AdamW(flat, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  const identity = JSON.parse(JSON.stringify({ lr, gradAccum, uniform, seed: ctx.seed, windows: windows.length, seqlen: windows[0]!.length, spec: ctx.spec })) as { [k: string]: JsonValue };
  const names = params.flatMap((p) => [`W.${p.name}`, `alpha.${p.name}`]);
  let step = 0;
  if (hasTrainState(ctx.stateDir)) {
    const expected: Record<string, number[]> = {};
    names.forEach((n, i) => { for (const k of [n, `m.${n}`, `v.${n}`]) expected[k] = [flat[i]!.length]; });
    const st = loadTrainState(ctx.stateDir, expected);
    if (JSON.stringify(st.meta) !== JSON.stringify(identity)) throw new UsageError(`${ctx.stateDir} holds a DB-LLM run with other settings: remove it or change --out`);
    const f = (n: string) => st.tensors[n]!.data as Float32Array;
    names.forEach((n, i) => flat[i]!.set(f(n)));
    opt.restore(names.map((n) => f(`m.${n}`)), names.map((n) => f(`v.${n}`)), st.step);
    step = st.step;
  }
  const resumedFrom = step;
  const save = () => saveTrainState(ctx.stateDir, {
    step, rng: new Xoshiro128(ctx.seed, 2000).state(), meta: identity,
    tensors: Object.fromEntries(names.flatMap((n, i) => [[n, new Tensor('f32', [flat[i]!.length], flat[i]!)], [`m.${n}`, new Tensor('f32', [flat[i]!.length], opt.m[i]!)], [`v.${n}`, new Tensor('f32', [flat[i]!.length], opt.v[i]!)]])),
  });
  const teacher = loadFrozen(ctx.ckpt, be);
  const cfg = ctx.ckpt.config, V = cfg.vocabSize, T = windows[0]!.length;
  const { cos, sin } = ropeFor(ctx.ckpt, be, 0, T);
  const rope = { cos, sin, negSin: be.scale(sin, -1) };
  const byBlock = new Map<number, FdbParam[]>();
  for (const p of params) byBlock.set(p.block, [...(byBlock.get(p.block) ?? []), p]);
  let epoch = -1, perm: Uint32Array = new Uint32Array(0);
  const losses: number[] = [];
  const t0 = performance.now();
  try {
    while (step < steps) {
      for (const g of grads) g.fill(0);
      // the student: the teacher's embedding, norms and head, every FDB linear as Ŵ
      const uploaded: BTensor[] = [];
      const blocks: BlockWeights[] = teacher.blocks.map((w, i) => {
        const b: Record<string, BTensor> = { ...w } as unknown as Record<string, BTensor>;
        for (const p of byBlock.get(i) ?? []) { const t = be.upload(binarize(p), [p.rows, p.cols]); uploaded.push(t); b[p.linear] = t; }
        return b as unknown as BlockWeights;
      });
      const student: FrozenModel = { ...teacher, blocks };
      let loss = 0;
      for (let mi = 0; mi < gradAccum; mi++) {
        const c = step * gradAccum + mi, e = Math.floor(c / windows.length);
        if (e !== epoch) { perm = shuffle(windows.length, new Xoshiro128(ctx.seed, 2000 + e)); epoch = e; }
        const ids = windows[perm[c % windows.length]!]!;
        const tl = await teacherLogits(be, teacher, ids, rope);
        const u = dadWeights(tl, T, V, uniform);
        const U = u.reduce((a, b) => a + b, 0) * gradAccum;
        if (!(U > 0)) continue; // a window the teacher is certain everywhere: nothing to weigh
        loss += await sequenceGrad(be, student, { ids, targets: new Int32Array(T), weights: new Float32Array(T) }, {
          rope, adapters: () => ({}), onGrads: async () => {},
          onWeightGrads: async (layer, wg) => {
            for (const p of byBlock.get(layer) ?? []) {
              const d = await be.read(wg[p.linear]!);
              for (let i = 0; i < d.length; i++) p.gW[i] = p.gW[i]! + d[i]!;
            }
          },
          headLoss: async (logits, r0, n) => {
            const r = dadLoss(await be.read(logits), tl.subarray(r0 * V, (r0 + n) * V), u.subarray(r0, r0 + n), U, n, V);
            return { loss: r.loss, dLogits: be.upload(r.grad, [n, V]) };
          },
        });
      }
      for (const t of uploaded) be.free(t);
      // straight-through: dL/dW = dL/dŴ; the scales collect dL/dŴ over the weights whose bit is set
      for (const p of params) {
        const nb = p.cols / p.g;
        for (let r = 0; r < p.rows; r++) for (let c = 0; c < p.cols; c++) {
          const i = r * p.cols + c, k = p.code[i]!, gi = p.gW[i]!, a = (r * nb + Math.floor(c / p.g)) * 2;
          if (k & 2) p.gA[a] = p.gA[a]! + gi;
          if (k & 1) p.gA[a + 1] = p.gA[a + 1]! + gi;
        }
      }
      const gradNorm = clipGradNorm(grads, MAX_GRAD_NORM);
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        throw new LowbitError(`dbllm: training diverged at step ${step + 1} (loss ${loss}, gradient norm ${gradNorm}); the last good state (step ${step}) is kept in ${ctx.stateDir}`);
      }
      opt.update(grads, lr);
      step++;
      losses.push(loss);
      if (step % saveEvery === 0 || step === steps) save();
      ctx.onTrain?.({ step, steps, loss, seconds: (performance.now() - t0) / 1000, resumedFrom });
    }
  } finally {
    be.free(rope.cos); be.free(rope.sin); be.free(rope.negSin);
    const all = new Set<BTensor>([teacher.embed, teacher.norm, teacher.head, ...teacher.blocks.flatMap((b) => Object.values(b) as BTensor[])]);
    for (const t of all) be.free(t);
  }
  for (const p of params) binarize(p); // the codes of the final latent weights and scales
  const layers: RefineLayer[] = ctx.layers.map((l, i) => ({ ...l, stored: { kind: 'dbllm', parts: dbllmTensors(partsOf(params[i]!)) } }));
  return { layers, record: { ...settings, data: { windows: windows.length, seqlen: T }, losses, resumedFrom, seconds: (performance.now() - t0) / 1000 } };
}

/** The teacher's logits [T, V] of one window (host memory), LM head in chunks of 256 rows. */
async function teacherLogits(be: TrainableBackend, m: FrozenModel, ids: Int32Array, rope: { cos: BTensor; sin: BTensor }): Promise<Float32Array> {
  const T = ids.length, V = m.cfg.vocabSize;
  let x = be.embedding(m.embed, ids);
  for (const w of m.blocks) { const xi = x; x = be.scope(() => blockForward(be, m.cfg, w, xi, rope).out); be.free(xi); }
  const hn = be.rmsnorm(x, m.norm, m.cfg.rmsNormEps);
  be.free(x);
  const out = new Float32Array(T * V);
  for (let r0 = 0; r0 < T; r0 += 256) {
    const n = Math.min(256, T - r0);
    const rows = n === T ? hn : be.rows(hn, r0, n);
    const l = be.linear(rows, m.head);
    out.set(await be.read(l), r0 * V);
    be.free(l);
    if (rows !== hn) be.free(rows);
  }
  be.free(hn);
  return out;
}
