/**
 * LoRA adapters in Hugging Face PEFT's on-disk format, so that an adapter trained by lowbit loads with
 * `PeftModel.from_pretrained(model, dir)` and one trained by PEFT loads here. Conventions checked against
 * huggingface/peft at commit 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40:
 *  - utils/constants.py: CONFIG_NAME "adapter_config.json", SAFETENSORS_WEIGHTS_NAME "adapter_model.safetensors";
 *  - peft_model.py save_pretrained: safetensors with __metadata__ {"format": "pt"};
 *  - utils/save_and_load.py get_peft_model_state_dict: the adapter name is removed from the keys,
 *    so a LLaMA projection's factors are `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`;
 *  - tuners/lora/layer.py: lora_A = nn.Linear(in, r) → weight [r, in]; lora_B = nn.Linear(r, out) →
 *    weight [out, r]; scaling = lora_alpha / r (lora_alpha / √r with use_rslora); ΔW = scaling · B·A;
 *  - tuners/lora/config.py: the LoraConfig fields written below.
 * PEFT ignores unknown config keys with a warning (config.py from_peft_type), so lowbit's extras go
 * in an optional `lowbit` object; it is left out when there are none.
 *
 * Both files are written atomically, the weights first: a folder with a config always has its weights.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError, UsageError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { writeJsonAtomic } from './atomic.js';
import { SafetensorsFile, writeSafetensors } from './safetensors.js';
import type { LoraWeights } from './checkpoint.js';

export const PEFT_CONFIG = 'adapter_config.json';
export const PEFT_WEIGHTS = 'adapter_model.safetensors';

/** The seven linear layers of a LLaMA block, by their HF module names. */
export const LORA_TARGETS = Object.freeze(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const);
export type LoraTarget = (typeof LORA_TARGETS)[number];

const MLP_TARGETS: ReadonlySet<LoraTarget> = new Set(['gate_proj', 'up_proj', 'down_proj']);

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export interface PeftLoraConfig {
  readonly r: number;
  readonly loraAlpha: number;
  readonly loraDropout: number;
  readonly targetModules: readonly LoraTarget[];
  readonly baseModelNameOrPath: string | null;
  /** PEFT use_rslora: scaling α/√r instead of α/r (the writer always writes false) */
  readonly useRslora?: boolean;
  /** lowbit's extras (method, bits, ...), stored under "lowbit" */
  readonly lowbit?: { readonly [key: string]: Json };
}

/** One linear layer's factors: ΔW [rows = out, cols = in] = scaling · B·A. */
export interface LoraFactors {
  /** [r, cols] row-major */
  readonly A: Float32Array;
  /** [rows, r] row-major */
  readonly B: Float32Array;
  readonly rows: number;
  readonly cols: number;
  /** IR-QLoRA's elastic-connection scalars (htqin/IR-QLoRA utils.py lora_default_{A,B}_scale, shape [1]) */
  readonly betaA?: number;
  readonly betaB?: number;
}

export interface PeftAdapter {
  readonly config: PeftLoraConfig;
  /** per decoder layer, the factors of each target module */
  readonly layers: readonly Readonly<Partial<Record<LoraTarget, LoraFactors>>>[];
}

/** What a model expects: its layer count and each target's [rows (out), cols (in)]. */
export interface PeftExpected {
  readonly numLayers: number;
  readonly shapes: Readonly<Partial<Record<LoraTarget, { readonly rows: number; readonly cols: number }>>>;
}

/** lora_alpha / r, or lora_alpha / √r with use_rslora (PEFT tuners/lora/layer.py update_layer). */
export function loraScaling(config: PeftLoraConfig): number {
  return config.useRslora ? config.loraAlpha / Math.sqrt(config.r) : config.loraAlpha / config.r;
}

/** PEFT's tensor name of a factor. */
export function peftTensorName(layer: number, target: LoraTarget, factor: 'A' | 'B'): string {
  const block = MLP_TARGETS.has(target) ? 'mlp' : 'self_attn';
  return `base_model.model.model.layers.${layer}.${block}.${target}.lora_${factor}.weight`;
}

const NAME = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)\.weight$/;

/** IR-QLoRA's scalar of factor A or B: `…{target}.lora_default_{A,B}_scale`, shape [1] (peft 0.6.2 keeps the name as is). */
export function peftScaleName(layer: number, target: LoraTarget, factor: 'A' | 'B'): string {
  return peftTensorName(layer, target, factor).replace(new RegExp(`lora_${factor}\\.weight$`), `lora_default_${factor}_scale`);
}
const SCALE_NAME = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_default_(A|B)_scale$/;

/** Writes `adapter` to folder `dir` (created if needed) as adapter_model.safetensors (f32) + adapter_config.json. */
export function writePeftAdapter(dir: string, adapter: PeftAdapter): void {
  const { config } = adapter;
  checkConfigValues(config, (msg) => new UsageError(`PEFT adapter for ${dir}: ${msg}`));
  if (config.useRslora) throw new UsageError(`PEFT adapter for ${dir}: use_rslora is not written by lowbit`);
  const tensors: { name: string; tensor: Tensor }[] = [];
  adapter.layers.forEach((layer, i) => {
    for (const target of LORA_TARGETS) {
      const f = layer[target];
      if (!f) continue;
      if (!config.targetModules.includes(target)) throw new UsageError(`PEFT adapter for ${dir}: layer ${i} has ${target}, which is not in target_modules`);
      if (f.A.length !== config.r * f.cols || f.B.length !== f.rows * config.r) {
        throw new UsageError(`PEFT adapter for ${dir}: layer ${i} ${target}: A has ${f.A.length} values and B ${f.B.length}, r = ${config.r} and [${f.rows}, ${f.cols}] need ${config.r * f.cols} and ${f.rows * config.r}`);
      }
      tensors.push({ name: peftTensorName(i, target, 'A'), tensor: new Tensor('f32', [config.r, f.cols], f.A) });
      tensors.push({ name: peftTensorName(i, target, 'B'), tensor: new Tensor('f32', [f.rows, config.r], f.B) });
      if (f.betaA !== undefined || f.betaB !== undefined) {
        tensors.push({ name: peftScaleName(i, target, 'A'), tensor: new Tensor('f32', [1], Float32Array.of(f.betaA ?? 0)) });
        tensors.push({ name: peftScaleName(i, target, 'B'), tensor: new Tensor('f32', [1], Float32Array.of(f.betaB ?? 0)) });
      }
    }
  });
  if (tensors.length === 0) throw new UsageError(`PEFT adapter for ${dir}: no LoRA factors to write`);
  writeSafetensors(join(dir, PEFT_WEIGHTS), tensors, { format: 'pt' });
  const json: Record<string, Json> = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: config.r,
    lora_alpha: config.loraAlpha,
    lora_dropout: config.loraDropout,
    target_modules: [...config.targetModules],
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    base_model_name_or_path: config.baseModelNameOrPath,
    revision: null,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    use_rslora: false,
    use_dora: false,
  };
  if (config.lowbit) json.lowbit = config.lowbit;
  writeJsonAtomic(join(dir, PEFT_CONFIG), json);
}

function checkConfigValues(c: PeftLoraConfig, err: (msg: string) => Error): void {
  if (!Number.isSafeInteger(c.r) || c.r < 1) throw err(`r must be an integer ≥ 1, got ${c.r}`);
  if (!Number.isFinite(c.loraAlpha)) throw err(`lora_alpha must be a finite number, got ${c.loraAlpha}`);
  if (typeof c.loraDropout !== 'number' || !(c.loraDropout >= 0 && c.loraDropout < 1)) throw err(`lora_dropout must be in [0, 1), got ${c.loraDropout}`);
  if (c.targetModules.length === 0) throw err('target_modules is empty');
  for (const t of c.targetModules) if (!LORA_TARGETS.includes(t)) throw err(`target module "${t}" is not one of ${LORA_TARGETS.join(', ')}`);
}

/** Reads a PEFT LoRA adapter folder; every problem is a FormatError naming the file (and the tensor). */
export function readPeftAdapter(dir: string, expected?: PeftExpected): PeftAdapter {
  const configPath = join(dir, PEFT_CONFIG), weightsPath = join(dir, PEFT_WEIGHTS);
  const config = readPeftConfig(configPath);
  if (!existsSync(weightsPath)) {
    const bin = existsSync(join(dir, 'adapter_model.bin')) ? ' (adapter_model.bin, a pickle, is not read: convert it to safetensors)' : '';
    throw new FormatError(weightsPath, `file not found${bin}`);
  }
  const file = SafetensorsFile.open(weightsPath);
  const bad = (msg: string): never => { throw new FormatError(weightsPath, msg); };
  const found = new Map<string, Tensor>();
  let numLayers = 0;
  const scales = new Map<string, number>();
  for (const info of file.list()) {
    const sm = SCALE_NAME.exec(info.name);
    if (sm) {
      if (info.shape.length !== 1 || info.shape[0] !== 1) bad(`tensor "${info.name}" has shape [${info.shape.join(', ')}], expected [1]`);
      if (!config.targetModules.includes(sm[3] as LoraTarget)) bad(`tensor "${info.name}": "${sm[3]}" is not in ${PEFT_CONFIG}'s target_modules`);
      const v = file.read(info.name).toF32()[0]!;
      if (!Number.isFinite(v)) bad(`tensor "${info.name}" is not finite`);
      scales.set(info.name, v);
      continue;
    }
    const m = NAME.exec(info.name);
    if (!m) bad(`tensor "${info.name}" is not a LoRA factor of a LLaMA linear layer (base_model.model.model.layers.N.{self_attn,mlp}.X.lora_{A,B}.weight)`);
    const [, layer, , target] = m!;
    if (!config.targetModules.includes(target as LoraTarget)) bad(`tensor "${info.name}": "${target}" is not in ${PEFT_CONFIG}'s target_modules`);
    if (peftTensorName(Number(layer), target as LoraTarget, m![4] as 'A' | 'B') !== info.name) bad(`tensor "${info.name}": ${target} does not belong under ${m![2]}`);
    if (info.shape.length !== 2) bad(`tensor "${info.name}" has shape [${info.shape.join(', ')}], expected 2 dimensions`);
    if (!['F32', 'F16', 'BF16'].includes(info.storedAs)) bad(`tensor "${info.name}" is ${info.storedAs}, expected F32, F16 or BF16`);
    numLayers = Math.max(numLayers, Number(layer) + 1);
    found.set(info.name, file.read(info.name));
  }
  if (expected) {
    if (numLayers > expected.numLayers) bad(`has factors for layer ${numLayers - 1}, the model has ${expected.numLayers} layers`);
    numLayers = expected.numLayers;
  }
  const layers: Partial<Record<LoraTarget, LoraFactors>>[] = [];
  for (let i = 0; i < numLayers; i++) {
    const layer: Partial<Record<LoraTarget, LoraFactors>> = {};
    for (const target of config.targetModules) {
      const nameA = peftTensorName(i, target, 'A'), nameB = peftTensorName(i, target, 'B');
      const A = found.get(nameA) ?? bad(`tensor "${nameA}" is missing`);
      const B = found.get(nameB) ?? bad(`tensor "${nameB}" is missing`);
      const [rA, cols] = A.shape as [number, number], [rows, rB] = B.shape as [number, number];
      if (rA !== config.r) bad(`tensor "${nameA}" has shape [${A.shape.join(', ')}], expected [r = ${config.r}, in]`);
      if (rB !== config.r) bad(`tensor "${nameB}" has shape [${B.shape.join(', ')}], expected [out, r = ${config.r}]`);
      const want = expected?.shapes[target];
      if (want && cols !== want.cols) bad(`tensor "${nameA}" has shape [${A.shape.join(', ')}], the model's ${target} needs [${config.r}, ${want.cols}]`);
      if (want && rows !== want.rows) bad(`tensor "${nameB}" has shape [${B.shape.join(', ')}], the model's ${target} needs [${want.rows}, ${config.r}]`);
      const first = layers[0]?.[target];
      if (first && (first.rows !== rows || first.cols !== cols)) {
        bad(`tensor "${nameB}"/"${nameA}": ${target} is [${rows}, ${cols}] in layer ${i} but [${first.rows}, ${first.cols}] in layer 0`);
      }
      const sA = scales.get(peftScaleName(i, target, 'A')), sB = scales.get(peftScaleName(i, target, 'B'));
      if ((sA === undefined) !== (sB === undefined)) bad(`layer ${i} ${target}: only one of lora_default_A_scale and lora_default_B_scale is present`);
      layer[target] = { A: Float32Array.from(A.toF32()), B: Float32Array.from(B.toF32()), rows, cols, ...(sA !== undefined ? { betaA: sA, betaB: sB! } : {}) };
    }
    layers.push(layer);
  }
  if (layers.length === 0) bad('has no LoRA factors');
  return { config, layers };
}

/** adapter_config.json as a PeftLoraConfig; refuses what lowbit cannot apply (DoRA, biases, per-module ranks, ...). */
export function readPeftConfig(path: string): PeftLoraConfig {
  if (!existsSync(path)) throw new FormatError(path, 'file not found (a PEFT adapter folder needs adapter_config.json)');
  let j: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    j = v as Record<string, unknown>;
  } catch (e) {
    throw new FormatError(path, `not valid JSON (${(e as Error).message})`);
  }
  const fail = (msg: string): never => { throw new FormatError(path, msg); };
  if (j.peft_type !== 'LORA') fail(`peft_type is ${JSON.stringify(j.peft_type)}, lowbit reads "LORA"`);
  if (j.bias !== undefined && j.bias !== 'none') fail(`bias is ${JSON.stringify(j.bias)}, lowbit reads only "none"`);
  if (j.fan_in_fan_out === true) fail('fan_in_fan_out is true (Conv1D layouts), lowbit reads LLaMA nn.Linear adapters only');
  if (j.use_dora === true) fail('use_dora is true: DoRA adapters are not supported');
  for (const key of ['rank_pattern', 'alpha_pattern']) {
    const v = j[key];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Object.keys(v).length > 0)) fail(`${key} is not empty: per-module ranks are not supported`);
  }
  if (Array.isArray(j.modules_to_save) && j.modules_to_save.length > 0) fail('modules_to_save is not empty: full-weight modules are not supported');
  if (j.layers_to_transform !== undefined && j.layers_to_transform !== null) fail('layers_to_transform is set: adapters on only some layers are not supported');
  if (typeof j.target_modules === 'string') fail('target_modules is a regular expression; lowbit reads a list of module names');
  if (!Array.isArray(j.target_modules) || !j.target_modules.every((t) => typeof t === 'string')) fail('target_modules is not a list of names');
  const lowbit = j.lowbit;
  if (lowbit !== undefined && (typeof lowbit !== 'object' || lowbit === null || Array.isArray(lowbit))) fail('"lowbit" is not an object');
  const config: PeftLoraConfig = {
    r: j.r as number,
    loraAlpha: j.lora_alpha as number,
    loraDropout: (j.lora_dropout ?? 0) as number,
    targetModules: j.target_modules as LoraTarget[],
    baseModelNameOrPath: typeof j.base_model_name_or_path === 'string' ? j.base_model_name_or_path : null,
    useRslora: j.use_rslora === true,
    ...(lowbit !== undefined ? { lowbit: lowbit as { [key: string]: Json } } : {}),
  };
  checkConfigValues(config, (msg) => new FormatError(path, msg));
  return config;
}

const SHORT: Readonly<Record<LoraTarget, string>> = Object.freeze({
  q_proj: 'q', k_proj: 'k', v_proj: 'v', o_proj: 'o', gate_proj: 'gate', up_proj: 'up', down_proj: 'down',
});

/**
 * The adapter folder `dir` as the LoRA weights every evaluation of the model applies. The form comes
 * from lowbit's extras ("lowbit": {"form": "lora" | "iec" | "qa", "group_size": g}); a PEFT adapter
 * without them is plain LoRA, or IR-QLoRA's when it carries the elastic scalars. Shapes are checked
 * against the model's linears (`shapes`: [out, in] by target).
 */
export function openLoraWeights(dir: string, numLayers: number, shapes: Readonly<Record<LoraTarget, { rows: number; cols: number }>>): LoraWeights {
  const configPath = join(dir, PEFT_CONFIG);
  const config = readPeftConfig(configPath);
  const extras = (config.lowbit ?? {}) as { form?: unknown; group_size?: unknown };
  const form = extras.form ?? 'lora';
  if (form !== 'lora' && form !== 'iec' && form !== 'qa') throw new FormatError(configPath, `lowbit.form is ${JSON.stringify(form)}, expected "lora", "iec" or "qa"`);
  const g = form === 'qa' ? extras.group_size : undefined;
  if (form === 'qa' && !(typeof g === 'number' && Number.isInteger(g) && g > 0)) throw new FormatError(configPath, 'lowbit.form is "qa" but lowbit.group_size is not a positive integer');
  const expectShapes: Partial<Record<LoraTarget, { rows: number; cols: number }>> = {};
  for (const t of LORA_TARGETS) {
    const s = shapes[t];
    if (form === 'qa' && s.cols % (g as number) !== 0) throw new FormatError(configPath, `group size ${String(g)} does not divide ${t}'s ${s.cols} input features`);
    expectShapes[t] = form === 'qa' ? { rows: s.rows, cols: s.cols / (g as number) } : s;
  }
  const adapter = readPeftAdapter(dir, { numLayers, shapes: expectShapes });
  const hasBetas = adapter.layers.some((l) => Object.values(l).some((f) => f?.betaA !== undefined));
  const resolved = form === 'lora' && hasBetas ? 'iec' : form;
  if (resolved === 'iec') {
    for (const [i, l] of adapter.layers.entries()) for (const [t, f] of Object.entries(l)) {
      if (f && f.betaA === undefined) throw new FormatError(join(dir, PEFT_WEIGHTS), `layer ${i} ${t}: the elastic-connection scalars (lora_default_A_scale, lora_default_B_scale) are missing`);
      if (f && (f.cols % config.r !== 0 || f.rows % config.r !== 0)) throw new FormatError(join(dir, PEFT_WEIGHTS), `layer ${i} ${t}: r = ${config.r} does not divide [${f.rows}, ${f.cols}] (IR-QLoRA's elastic connections need it)`);
    }
  }
  return {
    path: dir, form: resolved, rank: config.r, scaling: loraScaling(config), ...(resolved === 'qa' ? { groupSize: g as number } : {}),
    layers: adapter.layers.map((l) => Object.fromEntries(Object.entries(l).map(([t, f]) => [SHORT[t as LoraTarget], {
      A: f!.A, B: f!.B, inA: f!.cols, outF: f!.rows, ...(f!.betaA !== undefined ? { betaA: f!.betaA, betaB: f!.betaB! } : {}),
    }]))),
  };
}
