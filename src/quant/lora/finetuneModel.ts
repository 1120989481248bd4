/**
 * `lowbit finetune` as a library call: quantize the base with the method's quantizer, train its
 * adapters on instruction data (train/finetune.ts), and write the result.
 *   qlora, irqlora: OUT is the quantized base (NF4 / ICQ checkpoint) plus the PEFT adapter
 *                   (adapter_config.json + adapter_model.safetensors); `lowbit eval --model OUT`
 *                   applies it.
 *   qalora:         the GPTQ W4 g32 base lives in OUT/base while training; at the end the adapters
 *                   merge into its zeros and OUT becomes that GPTQ checkpoint alone (float zero
 *                   points, no adapter files), swapped in whole.
 * OUT/finetune.json records the recipe, the data, the settings and the losses; while training it
 * says "training" and OUT/train_state/ holds the last save, so running the same command again
 * resumes; a finished OUT is reported, not redone (unless `force`).
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../../backend/backend.js';
import { isTrainable } from '../../backend/backend.js';
import type { LoraWeights, ModelCheckpoint } from '../../io/checkpoint.js';
import { openModel } from '../../io/open.js';
import { replaceDir, tempPathFor, writeJsonAtomic } from '../../io/atomic.js';
import { LORA_TARGETS, PEFT_CONFIG, writePeftAdapter, type LoraFactors, type LoraTarget } from '../../io/peft.js';
import { readAlpaca, tokenizeAlpaca, type AlpacaTokenizeOptions } from '../../data/alpaca.js';
import { UsageError } from '../../errors.js';
import { checkConfig, finetune, type FinetuneProgress } from '../../train/finetune.js';
import { AdapterSet, type LoraSpec } from '../../train/lora.js';
import { quantizeModel } from '../quantizeModel.js';
import { RECIPES, type FinetuneMethod } from './recipes.js';
import { writeQaLoraMerged } from './qaloraMerge.js';

export const FINETUNE_REPORT = 'finetune.json';
export const STATE_DIR = 'train_state';

export interface FinetuneModelOptions {
  readonly method: FinetuneMethod;
  readonly data: string;
  readonly steps: number;
  readonly seed: number;
  readonly out: string;
  readonly saveEvery?: number;
  /** overrides of the recipe's adapter and trainer settings */
  readonly rank?: number;
  readonly alpha?: number;
  readonly dropout?: number;
  readonly lr?: number;
  readonly gradAccum?: number;
  readonly tokenize?: Partial<AlpacaTokenizeOptions>;
  readonly force?: boolean;
  readonly dataDir?: string;
  /** calibration windows of a base quantizer that calibrates (QA-LoRA's GPTQ; default 128) */
  readonly nsamples?: number;
  readonly onPhase?: (phase: string) => void;
  readonly onProgress?: (p: FinetuneProgress) => void;
}

export interface FinetuneReport {
  readonly tool: 'lowbit';
  readonly status: 'training' | 'done';
  readonly method: FinetuneMethod;
  readonly source: string;
  readonly base: { readonly model: string; readonly quantizer: unknown; readonly nsamples?: number };
  readonly data: { readonly file: string; readonly records: number; readonly tokenize: AlpacaTokenizeOptions };
  readonly lora: LoraSpec;
  readonly train: unknown;
  readonly steps: number;
  readonly seed: number;
  readonly backend: string;
  readonly losses?: number[];
  readonly tokens?: number;
  readonly seconds?: number;
  readonly resumedFrom?: number;
}

function readReport(out: string): FinetuneReport | undefined {
  const p = join(out, FINETUNE_REPORT);
  if (!existsSync(p)) return undefined;
  try { return JSON.parse(readFileSync(p, 'utf8')) as FinetuneReport; } catch { return undefined; }
}

export async function finetuneModel(src: ModelCheckpoint, be: Backend, o: FinetuneModelOptions): Promise<FinetuneReport> {
  const recipe = RECIPES[o.method];
  if (!recipe) throw new UsageError(`unknown fine-tuning method '${String(o.method)}' (${Object.keys(RECIPES).join(', ')})`);
  if (!isTrainable(be)) throw new UsageError(`the ${be.name} backend has no backward ops yet: fine-tune with --backend cpu`);
  const lora: LoraSpec = { ...recipe.lora, ...(o.rank !== undefined ? { rank: o.rank } : {}), ...(o.alpha !== undefined ? { alpha: o.alpha } : {}), ...(o.dropout !== undefined ? { dropout: o.dropout } : {}) };
  const train = { ...recipe.train, ...(o.lr !== undefined ? { lr: o.lr } : {}), ...(o.gradAccum !== undefined ? { gradAccum: o.gradAccum } : {}) };
  const tokenize: AlpacaTokenizeOptions = { sourceMaxLen: 1024, targetMaxLen: 256, trainOnSource: false, ...o.tokenize };
  const records = readAlpaca(o.data);
  // every setting checked before the base is quantized: a bad one costs nothing and writes nothing
  checkConfig({ lora, ...train, steps: o.steps, seed: o.seed, saveEvery: o.saveEvery ?? 10 });
  new AdapterSet(src.config, lora, o.seed);
  const settings = {
    method: o.method, source: recipe.source, base: { model: src.path, quantizer: recipe.base, ...(recipe.base.calib ? { nsamples: o.nsamples ?? 128 } : {}) },
    data: { file: o.data, records: records.length, tokenize }, lora, train, steps: o.steps, seed: o.seed,
  };
  const prior = readReport(o.out);
  if (prior && !o.force) {
    const p = prior as unknown as Record<string, unknown>;
    const same = JSON.stringify(Object.fromEntries(Object.keys(settings).map((k) => [k, p[k]]))) === JSON.stringify(settings);
    if (!same) throw new UsageError(`${o.out} holds a fine-tuning run with other settings (${FINETUNE_REPORT}); pass --force to replace it, or choose another --out`);
    if (prior.status === 'done') return prior;
  }
  if (!prior && !o.force && existsSync(o.out) && readdirSync(o.out).length > 0) {
    throw new UsageError(`${o.out} is a folder that is not empty and holds no lowbit fine-tuning run: choose another --out`);
  }
  const baseDir = recipe.merge ? join(o.out, 'base') : o.out;
  if (o.force && existsSync(o.out)) {
    if (!readReport(o.out)) throw new UsageError(`${o.out} holds no lowbit fine-tuning run: lowbit will not replace it (choose another --out)`);
    rmSync(o.out, { recursive: true, force: true });
  }
  if (!prior || o.force) {
    o.onPhase?.(`quantizing the base: ${recipe.base.method} ${JSON.stringify(recipe.base.options)}`);
    await quantizeModel(src, be, {
      method: recipe.base.method, bits: recipe.base.bits, group: recipe.base.group, options: recipe.base.options,
      calib: recipe.base.calib ?? 'none', nsamples: o.nsamples ?? 128, seed: o.seed, out: baseDir, reportErrors: false, dataDir: o.dataDir,
    });
    writeJsonAtomic(join(o.out, FINETUNE_REPORT), { tool: 'lowbit', status: 'training', ...settings, backend: be.description });
  }
  const base = openModel(baseDir);
  if (base.adapter) throw new UsageError(`${o.out} already holds an adapter (${PEFT_CONFIG}) but ${FINETUNE_REPORT} says training: remove the folder or pass --force`);
  const examples = tokenizeAlpaca(records, base.tokenizer, tokenize);
  o.onPhase?.(`training ${o.method}: ${records.length} records, ${o.steps} steps of ${train.gradAccum} sequences`);
  const r = await finetune(be, base, examples, { lora, ...train, steps: o.steps, seed: o.seed, saveEvery: o.saveEvery ?? 10 }, join(o.out, STATE_DIR), o.onProgress);
  const report: FinetuneReport = {
    tool: 'lowbit', status: 'done', ...settings, backend: be.description,
    losses: r.losses, tokens: r.tokens, seconds: r.seconds, resumedFrom: r.resumedFrom,
  };
  if (recipe.merge) {
    // OUT is replaced whole by the merged checkpoint (with its report): a kill leaves the old OUT or the new
    const merged = tempPathFor(`${o.out}-merged`);
    rmSync(merged, { recursive: true, force: true });
    const { layersMerged } = writeQaLoraMerged(baseDir, loraWeightsOf(r.adapters, o.out), merged);
    writeJsonAtomic(join(merged, FINETUNE_REPORT), { ...report, merged: { layers: layersMerged, into: 'GPTQ zeros (float zero points, <layer>.qzeros_float)' } });
    replaceDir(merged, o.out);
    return report;
  }
  writePeftAdapter(o.out, {
    config: {
      r: lora.rank, loraAlpha: lora.alpha, loraDropout: lora.dropout, targetModules: [...LORA_TARGETS], baseModelNameOrPath: src.path,
      lowbit: { method: o.method, form: lora.form, ...(lora.groupSize ? { group_size: lora.groupSize } : {}), steps: o.steps, seed: o.seed, source: recipe.source },
    },
    layers: peftLayers(r.adapters),
  });
  writeJsonAtomic(join(o.out, FINETUNE_REPORT), report);
  rmSync(join(o.out, STATE_DIR), { recursive: true, force: true });
  return report;
}

/** The trained adapters as the LoraWeights an evaluation (or a merge) applies. */
export function loraWeightsOf(set: AdapterSet, path: string): LoraWeights {
  return {
    path, form: set.spec.form, rank: set.spec.rank, scaling: set.scaling, ...(set.spec.groupSize ? { groupSize: set.spec.groupSize } : {}),
    layers: set.layers.map((row) => Object.fromEntries(Object.values(row).map((a) => [a!.name, {
      A: a!.A, B: a!.B, inA: a!.inA, outF: a!.outF, ...(a!.beta ? { betaA: a!.beta.A[0]!, betaB: a!.beta.B[0]! } : {}),
    }]))),
  };
}

const TARGET_OF = { q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'o_proj', gate: 'gate_proj', up: 'up_proj', down: 'down_proj' } as const;

/** The trained adapters in PEFT's layout (A [r, inA], B [out, r], IR-QLoRA's scalars when present). */
export function peftLayers(set: AdapterSet): Partial<Record<LoraTarget, LoraFactors>>[] {
  return set.layers.map((row) => Object.fromEntries(Object.values(row).map((a) => [TARGET_OF[a!.name], {
    A: a!.A, B: a!.B, rows: a!.outF, cols: a!.inA, ...(a!.beta ? { betaA: a!.beta.A[0]!, betaB: a!.beta.B[0]! } : {}),
  }])));
}

