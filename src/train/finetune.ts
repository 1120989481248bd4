/**
 * The fine-tuning loop: LoRA adapters on a frozen (quantized) base, trained on tokenized
 * instruction examples as QLoRA's trainer runs (artidoro/qlora qlora.py over HF Trainer):
 * micro-batches of one sequence, each one's loss the mean NLL over its target tokens, divided by the
 * gradient-accumulation steps; global gradient-norm clipping; AdamW; the learning-rate schedule.
 * The state (adapters, AdamW moments, step) is saved atomically every `saveEvery` steps and at the
 * end; a run started again on the same state folder resumes from the last save and reaches the same
 * adapters bit for bit (data order and dropout masks are pure functions of seed and step).
 */
import type { BTensor, TrainableBackend } from '../backend/backend.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { LowbitError, UsageError } from '../errors.js';
import { ropeFor } from '../model/stream.js';
import { loadBlock, loadEmbedding, loadHead } from '../model/weights.js';
import { Tensor } from '../tensor/tensor.js';
import { Xoshiro128, shuffle } from '../tensor/xoshiro.js';
import type { TokenizedExample } from '../data/alpaca.js';
import { IGNORE_INDEX, nextTokenTargets } from '../data/alpaca.js';
import { AdamW, clipGradNorm, learningRate, type AdamWConfig, type LrScheduleName } from './adamw.js';
import { AdapterSet, type LoraSpec } from './lora.js';
import { maskKey } from './random.js';
import { sequenceGrad, type FrozenModel } from './sequenceGrad.js';
import { hasTrainState, loadTrainState, saveTrainState, type JsonValue } from './state.js';
import type { BlockAdapters, RopeTables } from './blockGrad.js';

export interface FinetuneConfig {
  readonly lora: LoraSpec;
  readonly lr: number;
  readonly schedule: LrScheduleName;
  readonly warmupRatio: number;
  readonly maxGradNorm: number;
  readonly adam: AdamWConfig;
  /** sequences per optimizer step (per_device_train_batch_size 1 × gradient_accumulation_steps) */
  readonly gradAccum: number;
  readonly steps: number;
  readonly seed: number;
  /** save the state every this many steps (and at the end) */
  readonly saveEvery: number;
}

export interface FinetuneProgress {
  readonly step: number;
  readonly steps: number;
  /** the step's loss: mean over its sequences of each one's mean target-token NLL */
  readonly loss: number;
  readonly lr: number;
  readonly gradNorm: number;
  readonly tokens: number;
  readonly seconds: number;
  readonly resumedFrom: number;
}

export interface FinetuneResult {
  readonly adapters: AdapterSet;
  /** the loss of every step this process ran (resumed steps are not repeated) */
  readonly losses: number[];
  readonly resumedFrom: number;
  readonly tokens: number;
  readonly seconds: number;
}

/** The frozen model on the backend: embedding, blocks, final norm and head. */
export function loadFrozen(ckpt: ModelCheckpoint, be: TrainableBackend): FrozenModel {
  const embed = loadEmbedding(ckpt, be);
  const blocks = Array.from({ length: ckpt.config.numLayers }, (_, i) => loadBlock(ckpt, be, i));
  const { norm, head } = loadHead(ckpt, be, embed);
  return { cfg: ckpt.config, embed, blocks, norm, head };
}

/** The settings a resumed run must share with the saved one (everything but the step count and save interval). */
function runIdentity(cfg: FinetuneConfig, examples: number): { [key: string]: JsonValue } {
  return JSON.parse(JSON.stringify({ lora: cfg.lora, lr: cfg.lr, schedule: cfg.schedule, warmupRatio: cfg.warmupRatio, maxGradNorm: cfg.maxGradNorm, adam: cfg.adam, gradAccum: cfg.gradAccum, seed: cfg.seed, examples })) as { [key: string]: JsonValue };
}

/** The example of global micro-batch c: epoch ⌊c/n⌋ visits a seeded permutation of the examples. */
function exampleOrder(n: number, seed: number): (c: number) => number {
  let epoch = -1, perm: Uint32Array = new Uint32Array(0);
  return (c) => {
    const e = Math.floor(c / n);
    if (e !== epoch) { perm = shuffle(n, new Xoshiro128(seed, 1000 + e)); epoch = e; }
    return perm[c % n]!;
  };
}

export async function finetune(
  be: TrainableBackend, ckpt: ModelCheckpoint, examples: readonly TokenizedExample[], cfg: FinetuneConfig,
  stateDir: string, onProgress?: (p: FinetuneProgress) => void,
): Promise<FinetuneResult> {
  checkConfig(cfg);
  const usable = examples.filter((e) => e.labels.some((l, i) => i > 0 && l !== IGNORE_INDEX));
  if (usable.length === 0) throw new UsageError('no training example has a target token to learn (check the data and the length caps)');
  const set = new AdapterSet(ckpt.config, cfg.lora, cfg.seed);
  const params = set.params();
  const opt = new AdamW(params.map((p) => p.value), cfg.adam);
  const identity = runIdentity(cfg, usable.length);
  let step = 0;
  if (hasTrainState(stateDir)) step = resume(stateDir, params, opt, identity);
  const resumedFrom = step;
  const frozen = loadFrozen(ckpt, be);
  const ropes = new Map<number, RopeTables>();
  const ropeOf = (T: number): RopeTables => {
    let r = ropes.get(T);
    if (!r) {
      const { cos, sin } = ropeFor(ckpt, be, 0, T);
      r = { cos, sin, negSin: be.scale(sin, -1) };
      ropes.set(T, r);
    }
    return r;
  };
  const order = exampleOrder(usable.length, cfg.seed);
  const warmupSteps = Math.ceil(cfg.warmupRatio * cfg.steps);
  const losses: number[] = [];
  let tokens = 0;
  const t0 = performance.now();
  const save = () => saveTrainState(stateDir, {
    step, rng: new Xoshiro128(cfg.seed, 1000).state(), meta: identity,
    tensors: Object.fromEntries(params.flatMap((p, i) => [
      [p.name, new Tensor('f32', [p.value.length], p.value)],
      [`adamw.m.${p.name}`, new Tensor('f32', [p.value.length], opt.m[i]!)],
      [`adamw.v.${p.name}`, new Tensor('f32', [p.value.length], opt.v[i]!)],
    ])),
  });
  try {
    while (step < cfg.steps) {
      set.zeroGrads();
      let loss = 0;
      for (let mi = 0; mi < cfg.gradAccum; mi++) {
        const ex = usable[order(step * cfg.gradAccum + mi)]!;
        const T = Math.min(ex.ids.length, ckpt.config.maxPositionEmbeddings);
        const ids = ex.ids.subarray(0, T);
        const targets = nextTokenTargets(ex.labels.subarray(0, T));
        let count = 0;
        for (const t of targets) if (t !== IGNORE_INDEX) count++;
        if (count === 0) continue; // truncated to the context before any target: nothing to learn
        const weights = new Float32Array(T);
        const safe = new Int32Array(T);
        targets.forEach((t, i) => { if (t !== IGNORE_INDEX) { weights[i] = 1 / (count * cfg.gradAccum); safe[i] = t; } });
        const memo = new Map<number, BlockAdapters>();
        const key = (layer: number) => (li: number) => maskKey(cfg.seed, 2, step, mi, layer, li);
        try {
          loss += await sequenceGrad(be, frozen, { ids, targets: safe, weights }, {
            rope: ropeOf(T),
            adapters: (layer) => {
              let a = memo.get(layer);
              if (!a) memo.set(layer, (a = set.blockTensors(be, layer, T, key(layer))));
              return a;
            },
            onGrads: (layer, g) => set.accumulate(be, layer, g),
          });
        } finally {
          // this sequence's A, B and masks (the pooling and elastic-connection constants belong to the set)
          for (const a of memo.values()) for (const t of Object.values(a)) { be.free(t.A); be.free(t.B); if (t.mask) be.free(t.mask); }
        }
        tokens += T;
      }
      const grads = params.map((p) => p.grad);
      const gradNorm = clipGradNorm(grads, cfg.maxGradNorm);
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        throw new LowbitError(`fine-tuning diverged at step ${step + 1}: loss ${loss}, gradient norm ${gradNorm}; ` +
          `the last good state (step ${step}) is kept in ${stateDir}`);
      }
      const lr = cfg.lr * learningRate(step, { lr: 1, warmupSteps, schedule: cfg.schedule }, cfg.steps);
      opt.update(grads, lr);
      step++;
      losses.push(loss);
      if (step % cfg.saveEvery === 0 || step === cfg.steps) save();
      onProgress?.({ step, steps: cfg.steps, loss, lr, gradNorm, tokens, seconds: (performance.now() - t0) / 1000, resumedFrom });
    }
  } finally {
    for (const r of ropes.values()) { be.free(r.cos); be.free(r.sin); be.free(r.negSin); }
    set.free(be);
    freeFrozen(be, frozen);
  }
  return { adapters: set, losses, resumedFrom, tokens, seconds: (performance.now() - t0) / 1000 };
}

function freeFrozen(be: TrainableBackend, m: FrozenModel): void {
  const all = new Set<BTensor>([m.embed, m.norm, m.head, ...m.blocks.flatMap((b) => Object.values(b) as BTensor[])]);
  for (const t of all) be.free(t);
}

function resume(dir: string, params: ReturnType<AdapterSet['params']>, opt: AdamW, identity: { [key: string]: JsonValue }): number {
  const expected: Record<string, number[]> = {};
  for (const p of params) for (const n of [p.name, `adamw.m.${p.name}`, `adamw.v.${p.name}`]) expected[n] = [p.value.length];
  const st = loadTrainState(dir, expected);
  if (JSON.stringify(st.meta) !== JSON.stringify(identity)) {
    throw new UsageError(`${dir} holds a run with other settings (${JSON.stringify(st.meta)}); use another --out or remove it`);
  }
  const f32 = (n: string) => st.tensors[n]!.data as Float32Array;
  params.forEach((p) => p.value.set(f32(p.name)));
  opt.restore(params.map((p) => f32(`adamw.m.${p.name}`)), params.map((p) => f32(`adamw.v.${p.name}`)), st.step);
  return st.step;
}

/** The settings' checks, run before any work (UsageError naming the option). */
export function checkConfig(c: FinetuneConfig): void {
  const int = (v: number, what: string, min: number) => {
    if (!Number.isSafeInteger(v) || v < min) throw new UsageError(`${what} must be an integer ≥ ${min} (got ${v})`);
  };
  int(c.steps, '--steps', 1); int(c.gradAccum, '--grad-accum', 1); int(c.saveEvery, '--save-every', 1); int(c.seed, '--seed', 0);
  if (!(c.lr > 0 && Number.isFinite(c.lr))) throw new UsageError(`--lr must be a positive number (got ${c.lr})`);
  if (!(c.maxGradNorm > 0)) throw new UsageError(`--max-grad-norm must be positive (got ${c.maxGradNorm})`);
  if (!(c.warmupRatio >= 0 && c.warmupRatio < 1)) throw new UsageError(`--warmup-ratio must be in [0, 1) (got ${c.warmupRatio})`);
}
