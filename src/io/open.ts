/**
 * One entry point for every checkpoint format: a HF folder (config.json + safetensors +
 * tokenizer.json), a .gguf file (tokenizer inside) or a llama2.c .bin (tok*.bin beside it).
 */
import { PEFT_CONFIG, openLoraWeights } from './peft.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { FormatError, UsageError } from '../errors.js';
import type { ModelCheckpoint } from './checkpoint.js';
import type { LlamaConfig } from './config.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkTokenizerFits, checkWeights } from './checkpointChecks.js';
import { FiniteSource } from './finite.js';
import { ggufConfig } from './gguf/config.js';
import { readGgufHeader } from './gguf/parse.js';
import { GgufSource } from './gguf/source.js';
import { readHfConfig } from './hfConfig.js';
import { Llama2cSource } from './llama2c.js';
import { openSafetensorsDir } from './safetensors.js';
import { fileOf, NAMES, type TensorInfo, type TensorSource } from './source.js';
import { readRows } from './rows.js';
import type { Tokenizer } from './tokenizer.js';
import { ggufTokenizer, loadTokenizer, tokenizerInDir, type LoadedTokenizer } from './tokenizers/load.js';
import { isQuantizedFolder, openQuantized } from './quantized/reader.js';

export interface OpenOptions {
  /**
   * tokenizer to use instead of the one that comes with the model, for every format: a folder with
   * tokenizer.json (or tokenizer.spm.json, or one tok*.bin), one of those files, or a .gguf
   */
  readonly tokenizer?: string;
}

/**
 * Opens a checkpoint and checks it whole before anything runs: the config, every tensor the config
 * implies (shape, float dtype) and nothing it would ignore, and a tokenizer whose ids the embedding
 * covers (checkpointChecks.ts). Every failure is a LowbitError naming the file at fault.
 */
export function openModel(path: string, opts: OpenOptions = {}): ModelCheckpoint {
  if (!existsSync(path)) throw new UsageError(`model path ${path} does not exist`);
  if (opts.tokenizer !== undefined && !existsSync(opts.tokenizer)) throw new UsageError(`tokenizer ${opts.tokenizer} does not exist`);
  if (statSync(path).isDirectory()) {
    if (isQuantizedFolder(path)) return withAdapter(path, openQuantized(path, opts));
    if (existsSync(join(path, 'config.json'))) return withAdapter(path, openHf(path, opts.tokenizer));
    const files = readdirSync(path).filter((f) => ['.gguf', '.bin'].includes(extname(f)) && !/^tok.*\.bin$/.test(f));
    if (files.length === 1) return openModel(join(path, files[0]!), opts);
    throw new UsageError(`${path}: no config.json and ${files.length === 0 ? 'no' : 'several'} .gguf/.bin checkpoints ` +
      `(${files.join(', ') || 'none'}); pass a HF folder, a .gguf file or a llama2.c .bin`);
  }
  switch (extname(path).toLowerCase()) {
    case '.gguf': return openGguf(path, opts.tokenizer);
    case '.bin': return openLlama2c(path, opts.tokenizer);
    case '.json': if (basename(path) === 'config.json') return openHf(dirname(path), opts.tokenizer); break;
    case '.safetensors': return openHf(dirname(path), opts.tokenizer);
  }
  throw new UsageError(`${path}: unknown checkpoint kind (expected a HF folder with config.json, a .gguf file or a llama2.c .bin)`);
}

/**
 * A folder that also holds a PEFT LoRA adapter (adapter_config.json, as `lowbit finetune` writes next
 * to the quantized base): the checkpoint with its adapters, which every evaluation applies.
 */
function withAdapter(dir: string, ckpt: ModelCheckpoint): ModelCheckpoint {
  if (!existsSync(join(dir, PEFT_CONFIG))) return ckpt;
  const c = ckpt.config, D = c.hiddenSize, qd = c.numHeads * c.headDim, kvd = c.numKvHeads * c.headDim, F = c.intermediateSize;
  const shapes = {
    q_proj: { rows: qd, cols: D }, k_proj: { rows: kvd, cols: D }, v_proj: { rows: kvd, cols: D }, o_proj: { rows: D, cols: qd },
    gate_proj: { rows: F, cols: D }, up_proj: { rows: F, cols: D }, down_proj: { rows: D, cols: F },
  };
  return { ...ckpt, adapter: openLoraWeights(dir, c.numLayers, shapes) };
}

/** The checkpoint of checked weights, once its tokenizer is checked against the config. */
function checkpoint(path: string, format: ModelCheckpoint['format'], config: LlamaConfig, weights: TensorSource, tok: LoadedTokenizer): ModelCheckpoint {
  checkTokenizerFits(tok.file, tok.tokenizer, config);
  return { path, format, config, tokenizer: tok.tokenizer, weights: new FiniteSource(weights), tokenizerPath: tok.path };
}

function openHf(dir: string, tokenizerPath?: string): ModelCheckpoint {
  const config = readHfConfig(join(dir, 'config.json'));
  let weights: TensorSource = openSafetensorsDir(dir);
  // A tied head saved under lm_head.weight (torch's shared-tensor dedup): present it the canonical way.
  if (config.tieWordEmbeddings && !weights.has(NAMES.embed) && weights.has(NAMES.lmHead)) {
    weights = new RenamedSource(weights, new Map([[NAMES.embed, NAMES.lmHead]]));
  }
  checkWeights(weights, config);
  let tok: LoadedTokenizer | undefined;
  if (tokenizerPath) tok = loadTokenizer(tokenizerPath, config.vocabSize);
  else if (existsSync(join(dir, 'tokenizer.json'))) tok = tokenizerInDir(dir, config.vocabSize);
  if (!tok) throw new FormatError(dir, 'HF checkpoint has no tokenizer.json (pass --tokenizer DIR)');
  return checkpoint(dir, 'hf', config, weights, tok);
}

function openGguf(file: string, tokenizerPath?: string): ModelCheckpoint {
  const header = readGgufHeader(file);
  const config = ggufConfig(header);
  const weights = new GgufSource(file, config, header);
  checkWeights(weights, config);
  const tok = tokenizerPath ? loadTokenizer(tokenizerPath, config.vocabSize) : { tokenizer: ggufTokenizer(header), file, path: file };
  return checkpoint(file, 'gguf', config, weights, tok);
}

function openLlama2c(file: string, tokenizerPath?: string): ModelCheckpoint {
  const weights = new Llama2cSource(file);
  const config = weights.config();
  checkWeights(weights, config);
  if (tokenizerPath) return checkpoint(file, 'llama2c', config, weights, loadTokenizer(tokenizerPath, config.vocabSize));
  const dir = dirname(file);
  const found = readdirSync(dir).filter((f) => /^tok.*\.bin$/.test(f));
  if (found.length !== 1) {
    throw new UsageError(`${file}: ${found.length === 0 ? 'no' : 'several'} tok*.bin tokenizer beside the checkpoint; pass one with --tokenizer`);
  }
  return checkpoint(file, 'llama2c', config, weights, loadTokenizer(join(dir, found[0]!), config.vocabSize));
}

/** A source whose tensors are renamed: `renames` maps the new name to the stored one. */
export class RenamedSource implements TensorSource {
  private readonly back = new Map<string, string>();
  constructor(private readonly inner: TensorSource, private readonly renames: ReadonlyMap<string, string>) {
    for (const [to, from] of renames) this.back.set(from, to);
  }
  get path(): string { return this.inner.path; }
  list(): readonly TensorInfo[] {
    return this.inner.list().map((t) => ({ ...t, name: this.back.get(t.name) ?? t.name }));
  }
  has(name: string): boolean {
    return this.renames.has(name) || (!this.back.has(name) && this.inner.has(name));
  }
  read(name: string): Tensor {
    if (this.back.has(name) && !this.renames.has(name)) throw new UsageError(`${this.path}: no tensor named "${name}"`);
    return this.inner.read(this.renames.get(name) ?? name);
  }
  readRows(name: string, start: number, count: number): Tensor {
    if (this.back.has(name) && !this.renames.has(name)) throw new UsageError(`${this.path}: no tensor named "${name}"`);
    return readRows(this.inner, this.renames.get(name) ?? name, start, count);
  }
  fileOf(name: string): string {
    return fileOf(this.inner, this.renames.get(name) ?? name);
  }
}

export interface CheckpointDescription {
  readonly path: string;
  readonly format: ModelCheckpoint['format'];
  readonly architecture: 'llama';
  readonly config: LlamaConfig;
  readonly parameters: number;
  readonly tensors: number;
  /** stored dtype (F32, BF16, Q8_0, ...) → number of parameters stored that way */
  readonly storedDtypes: Readonly<Record<string, number>>;
  readonly tokenizer: { readonly kind: string; readonly description: string; readonly vocabSize: number; readonly bos: number | undefined; readonly eos: number | undefined };
}

/** What `lowbit info` reports (its --json output): architecture, parameter count, stored dtypes, tokenizer. */
export function describeCheckpoint(ckpt: ModelCheckpoint): CheckpointDescription {
  const tensors = ckpt.weights.list();
  const dtypes: Record<string, number> = {};
  let params = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    params += n;
    dtypes[t.storedAs] = (dtypes[t.storedAs] ?? 0) + n;
  }
  const tk: Tokenizer = ckpt.tokenizer;
  return {
    path: ckpt.path, format: ckpt.format, architecture: 'llama', config: ckpt.config,
    parameters: params, tensors: tensors.length, storedDtypes: dtypes,
    tokenizer: { kind: tk.kind, description: tk.description, vocabSize: tk.vocabSize, bos: tk.bosId, eos: tk.eosId },
  };
}
