import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../errors.js';
import type { ActivationQuant, ModelCheckpoint } from '../checkpoint.js';
import { dequantizeAwq } from '../../tensor/awqPack.js';
import { dequantizeGptq } from '../../tensor/gptqPack.js';
import { isAwqPacked, isKindLayer, materializeKind, type GptqPacked, type PackedWeight } from '../../tensor/packed.js';
import { Tensor } from '../../tensor/tensor.js';
import { checkTokenizerFits, checkWeights } from '../checkpointChecks.js';
import { FiniteSource } from '../finite.js';
import { readHfConfig } from '../hfConfig.js';
import { openSafetensorsDir } from '../safetensors.js';
import { fileOf, type TensorInfo, type TensorSource } from '../source.js';
import { checkRowRange, readRows, sliceRows } from '../rows.js';
import { loadTokenizer, tokenizerInDir } from '../tokenizers/load.js';
import { FORMATS, type FormatName, type PackedFormat } from './formats.js';
import { QUANT_CONFIG, SPM_TOKENIZER } from './layout.js';

/** What a quantized checkpoint's configuration says about how its layers are stored and run. */
export interface StoredQuantConfig {
  /** the file it was read from (quantize_config.json, or config.json's quantization_config) */
  readonly file: string;
  readonly format: FormatName;
  readonly bits: number;
  /** input columns per group; -1 = per output channel */
  readonly groupSize: number;
  /** the lowbit method that made it (quant_method for checkpoints from other tools) */
  readonly method: string;
  readonly activation: ActivationQuant | undefined;
  /** lowbit_float_zeros: every GPTQ layer stores float zero points as `<layer>.qzeros_float` (QA-LoRA's merge) */
  readonly floatZeros: boolean;
}

export function readJsonObject(file: string): Record<string, unknown> {
  let v: unknown;
  try { v = JSON.parse(readFileSync(file, 'utf8')); } catch (e) {
    throw new FormatError(file, `cannot read JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FormatError(file, 'not a JSON object');
  return v as Record<string, unknown>;
}

/** Whether `dir` holds a quantized checkpoint: a quantize_config.json, or a config.json with quantization_config. */
export function isQuantizedFolder(dir: string): boolean {
  if (existsSync(join(dir, QUANT_CONFIG))) return true;
  const cfg = join(dir, 'config.json');
  if (!existsSync(cfg)) return false;
  try { return typeof (JSON.parse(readFileSync(cfg, 'utf8')) as Record<string, unknown>).quantization_config === 'object'; } catch { return false; }
}

/**
 * The quantization settings of `dir`: quantize_config.json (lowbit, AutoGPTQ) or the
 * quantization_config of config.json (AutoAWQ, transformers). gptq: AutoGPTQ v1, any 1–8 bits;
 * awq: AutoAWQ's GEMM version, 4 bits, with zero points.
 */
export function readQuantConfig(dir: string): StoredQuantConfig {
  const qFile = join(dir, QUANT_CONFIG);
  let file = qFile, q: Record<string, unknown>;
  if (existsSync(qFile)) q = readJsonObject(qFile);
  else {
    file = join(dir, 'config.json');
    const qc = readJsonObject(file).quantization_config;
    if (typeof qc !== 'object' || qc === null || Array.isArray(qc)) throw new FormatError(file, 'quantization_config must be an object');
    q = qc as Record<string, unknown>;
  }
  const fail = (msg: string): never => { throw new FormatError(file, msg); };
  const method = q.quant_method ?? 'gptq';
  if (method !== 'gptq' && method !== 'awq' && method !== 'lowbit') fail(`quant_method ${JSON.stringify(method)} is not supported (lowbit reads "gptq", "awq" and its own "lowbit")`);
  // lowbit's own layouts name their stored kind; its bits are the method's nominal figure (1.7 for PB-LLM)
  const format = method === 'lowbit' ? q.kind : method;
  if (typeof format !== 'string' || !Object.hasOwn(FORMATS, format)) fail(`kind ${JSON.stringify(q.kind ?? null)} is not a stored kind lowbit knows (${Object.keys(FORMATS).join(', ')})`);
  const bits = q.bits;
  if (typeof bits !== 'number' || !(bits > 0 && bits <= 8) || (method !== 'lowbit' && !Number.isInteger(bits))) fail(`bits must be ${method === 'lowbit' ? 'a number in (0, 8]' : 'an integer 1–8'}, got ${JSON.stringify(bits ?? null)}`);
  const groupSize = q.group_size ?? q.q_group_size ?? -1;
  if (typeof groupSize !== 'number' || !Number.isInteger(groupSize) || (groupSize !== -1 && groupSize < 1)) fail(`group_size must be -1 or a positive integer, got ${JSON.stringify(groupSize)}`);
  if (method === 'awq') {
    const version = String(q.version ?? 'gemm').toLowerCase();
    if (version !== 'gemm') fail(`AWQ version ${JSON.stringify(q.version)} is not supported (only "gemm")`);
    if (q.zero_point === false) fail('AWQ without zero points (zero_point false) is not supported');
    if (bits !== 4) fail(`AWQ's GEMM layout holds 4-bit weights, not ${bits}`);
    if (groupSize === -1) fail('AWQ\'s GEMM layout needs a group size');
  }
  const floatZeros = q.lowbit_float_zeros ?? false;
  if (typeof floatZeros !== 'boolean') fail(`lowbit_float_zeros must be true or false, got ${JSON.stringify(floatZeros)}`);
  if (floatZeros && format !== 'gptq') fail(`lowbit_float_zeros is a GPTQ layout's flag; this checkpoint is ${String(format)}`);
  return {
    file, format: format as FormatName, bits: bits as number, groupSize: groupSize as number, floatZeros: floatZeros as boolean,
    method: typeof q.lowbit_method === 'string' ? q.lowbit_method : method as string,
    activation: activationOf(file, q.activation),
  };
}

function activationOf(file: string, a: unknown): ActivationQuant | undefined {
  if (a === undefined || a === null) return undefined;
  const o = a as Record<string, unknown>;
  if (typeof a !== 'object' || Array.isArray(a) || typeof o.bits !== 'number' || !Number.isInteger(o.bits) || o.bits < 2 || o.bits > 16
    || o.granularity !== 'per-token' || typeof o.quant_bmm !== 'boolean') {
    throw new FormatError(file, 'activation must be {"bits": 2–16, "granularity": "per-token", "quant_bmm": true|false}');
  }
  return { bits: o.bits, granularity: 'per-token', quantBmm: o.quant_bmm };
}

/**
 * A quantized checkpoint seen as ordinary weights: `<layer>.weight` is dequantized from its packed
 * parts when it is read (one layer at a time), or handed over packed by `readQuantized` (in its
 * stored kind) for a backend to multiply by; everything else passes through. The parts are checked
 * against each other when the source is built; every error names the safetensors file that holds
 * the tensor.
 */
class PackedSource implements TensorSource {
  private readonly infos: TensorInfo[];
  private readonly packed = new Set<string>();
  /** `<layer>.<part>` of the format's parts; the first part (qweight for GPTQ and AWQ) marks a packed layer */
  private readonly parts: RegExp;
  private readonly marker: string;
  constructor(private readonly inner: TensorSource, private readonly fmt: PackedFormat, private readonly q: StoredQuantConfig) {
    this.parts = new RegExp(`^(.*)\\.(${[...fmt.parts, ...fmt.optionalParts ?? []].join('|')})$`);
    this.marker = fmt.parts[0]!;
    const all = new Map(inner.list().map((t) => [t.name, t]));
    const out: TensorInfo[] = [];
    for (const t of all.values()) {
      const m = this.parts.exec(t.name);
      if (!m) { out.push(t); continue; }
      const base = m[1]!;
      if (!all.has(`${base}.${this.marker}`)) throw new FormatError(fileOf(inner, t.name), `tensor "${t.name}" has no ${base}.${this.marker} beside it`);
      if (m[2] !== this.marker) continue;
      if (all.has(`${base}.weight`)) throw new FormatError(fileOf(inner, t.name), `${base} is stored both packed (${this.marker}) and as ${base}.weight`);
      const [rows, cols] = fmt.shape(inner, all, base, q.bits, q.groupSize, q.floatZeros);
      this.packed.add(`${base}.weight`);
      out.push({ name: `${base}.weight`, dtype: 'f32', shape: [rows, cols], storedAs: `${fmt.name.toUpperCase()}-INT${q.bits}` });
    }
    this.infos = out;
  }
  get path(): string { return this.inner.path; }
  list(): readonly TensorInfo[] { return this.infos; }
  has(name: string): boolean { return this.packed.has(name) || (this.inner.has(name) && !this.parts.test(name)); }
  fileOf(name: string): string {
    return fileOf(this.inner, this.packed.has(name) ? `${name.slice(0, -'.weight'.length)}.${this.marker}` : name);
  }
  read(name: string): Tensor {
    const p = this.readQuantized(name);
    if (!p) return this.inner.read(name);
    return new Tensor('f32', [p.rows, p.cols], isKindLayer(p) ? materializeKind(p) : isAwqPacked(p) ? dequantizeAwq(p) : dequantizeGptq(p as GptqPacked));
  }
  /** Rows of a float tensor (embedding, LM head) through the inner source; packed weights are read whole. */
  readRows(name: string, start: number, count: number): Tensor {
    if (!this.packed.has(name)) return readRows(this.inner, name, start, count);
    const t = this.read(name);
    checkRowRange(this.path, name, t.shape, start, count);
    return sliceRows(t, start, count);
  }
  /** The packed parts of `<layer>.weight` in their stored kind; undefined for a tensor stored as floats. */
  readQuantized(name: string): PackedWeight | undefined {
    if (!this.packed.has(name)) return undefined;
    return this.fmt.read(this.inner, name.slice(0, -'.weight'.length), this.q.bits, this.q.groupSize, this.q.floatZeros);
  }
}

export interface OpenQuantizedOptions {
  /** a tokenizer to use instead of the one in the folder (see tokenizers/load.ts) */
  readonly tokenizer?: string;
}

/**
 * Opens a folder written by `lowbit quantize`, AutoGPTQ (v1) or AutoAWQ (GEMM) for a LLaMA model,
 * with the shape checks of every other format; errors name the file at fault.
 */
export function openQuantized(dir: string, opts: OpenQuantizedOptions = {}): ModelCheckpoint {
  const q = readQuantConfig(dir);
  const config = readHfConfig(join(dir, 'config.json'));
  const weights = new PackedSource(openSafetensorsDir(dir), FORMATS[q.format]!, q);
  checkWeights(weights, config);
  const tok = opts.tokenizer ? loadTokenizer(opts.tokenizer, config.vocabSize) : tokenizerInDir(dir, config.vocabSize);
  if (!tok) throw new FormatError(dir, `quantized checkpoint has no tokenizer (tokenizer.json, ${SPM_TOKENIZER} or tok*.bin)`);
  checkTokenizerFits(tok.file, tok.tokenizer, config);
  return {
    path: dir, format: `lowbit-${q.format}`, config, tokenizer: tok.tokenizer, weights: new FiniteSource(weights),
    tokenizerPath: opts.tokenizer ? tok.path : dir, ...(q.activation ? { activation: q.activation } : {}),
  };
}
