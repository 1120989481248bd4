/**
 * One entry point for every checkpoint format: a HF folder (config.json + safetensors +
 * tokenizer.json), a .gguf file (tokenizer inside) or a llama2.c .bin (tok*.bin beside it).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { FormatError, UsageError } from '../errors.js';
import type { ModelCheckpoint } from '../model/checkpoint.js';
import type { LlamaConfig } from '../model/config.js';
import type { Tensor } from '../tensor/tensor.js';
import { ggufConfig, ggufVocab } from './gguf/config.js';
import { readGgufHeader } from './gguf/parse.js';
import { GgufSource } from './gguf/source.js';
import { readHfConfig } from './hfConfig.js';
import { Llama2cSource } from './llama2c.js';
import { openSafetensorsDir } from './safetensors.js';
import { NAMES, type TensorInfo, type TensorSource } from './source.js';
import { readRows } from './rows.js';
import type { Tokenizer } from './tokenizer.js';
import { loadHfTokenizer } from './tokenizers/hf.js';
import { readLlama2cTokenizer } from './tokenizers/llama2c.js';
import { spmTokenizer } from './tokenizers/spm.js';
import { openQuantized, QUANT_CONFIG } from './quantized/reader.js';

export interface OpenOptions {
  /** tokenizer to use instead of the one found beside the model: a llama2.c tok*.bin, or a folder with tokenizer.json */
  readonly tokenizer?: string;
}

export function openModel(path: string, opts: OpenOptions = {}): ModelCheckpoint {
  if (!existsSync(path)) throw new UsageError(`model path ${path} does not exist`);
  if (statSync(path).isDirectory()) {
    if (existsSync(join(path, QUANT_CONFIG))) return openQuantized(path);
    if (existsSync(join(path, 'config.json'))) return openHf(path, opts.tokenizer);
    const files = readdirSync(path).filter((f) => ['.gguf', '.bin'].includes(extname(f)) && !/^tok.*\.bin$/.test(f));
    if (files.length === 1) return openModel(join(path, files[0]!), opts);
    throw new UsageError(`${path}: no config.json and ${files.length === 0 ? 'no' : 'several'} .gguf/.bin checkpoints ` +
      `(${files.join(', ') || 'none'}); pass a HF folder, a .gguf file or a llama2.c .bin`);
  }
  switch (extname(path).toLowerCase()) {
    case '.gguf': return openGguf(path);
    case '.bin': return openLlama2c(path, opts.tokenizer);
    case '.json': if (basename(path) === 'config.json') return openHf(dirname(path), opts.tokenizer); break;
    case '.safetensors': return openHf(dirname(path), opts.tokenizer);
  }
  throw new UsageError(`${path}: unknown checkpoint kind (expected a HF folder with config.json, a .gguf file or a llama2.c .bin)`);
}

function openHf(dir: string, tokenizerPath?: string): ModelCheckpoint {
  const config = readHfConfig(join(dir, 'config.json'));
  const tokDir = tokenizerPath ? (basename(tokenizerPath) === 'tokenizer.json' ? dirname(tokenizerPath) : tokenizerPath) : dir;
  if (!existsSync(join(tokDir, 'tokenizer.json'))) {
    throw new FormatError(dir, tokenizerPath ? `no tokenizer.json in ${tokDir}` : 'HF checkpoint has no tokenizer.json (pass --tokenizer DIR)');
  }
  let weights: TensorSource = openSafetensorsDir(dir);
  // A tied head saved under lm_head.weight (torch's shared-tensor dedup): present it the canonical way.
  if (config.tieWordEmbeddings && !weights.has(NAMES.embed) && weights.has(NAMES.lmHead)) {
    weights = new RenamedSource(weights, new Map([[NAMES.embed, NAMES.lmHead]]));
  }
  checkShapes(weights, config);
  return { path: dir, format: 'hf', config, tokenizer: loadHfTokenizer(tokDir), weights, tokenizerPath: tokDir };
}

function openGguf(file: string): ModelCheckpoint {
  const header = readGgufHeader(file);
  const config = ggufConfig(header);
  const weights = new GgufSource(file, config, header);
  checkShapes(weights, config);
  const vocab = ggufVocab(header);
  if (vocab.model !== 'llama') throw new FormatError(file, `embedded tokenizer model "${vocab.model}" is not supported (only SentencePiece "llama")`);
  if (!vocab.scores) throw new FormatError(file, 'embedded tokenizer has no tokenizer.ggml.scores');
  const tokenizer = spmTokenizer({
    tokens: vocab.tokens, scores: vocab.scores, types: vocab.types, bosId: vocab.bosId, eosId: vocab.eosId, source: file,
    ...(vocab.addSpacePrefix === undefined ? {} : { addSpacePrefix: vocab.addSpacePrefix }),
  });
  return { path: file, format: 'gguf', config, tokenizer, weights, tokenizerPath: file };
}

function openLlama2c(file: string, tokenizerPath?: string): ModelCheckpoint {
  const weights = new Llama2cSource(file);
  const config = weights.config();
  let tok = tokenizerPath;
  if (!tok) {
    const dir = dirname(file);
    const found = readdirSync(dir).filter((f) => /^tok.*\.bin$/.test(f));
    if (found.length !== 1) {
      throw new UsageError(`${file}: ${found.length === 0 ? 'no' : 'several'} tok*.bin tokenizer beside the checkpoint; pass one with --tokenizer`);
    }
    tok = join(dir, found[0]!);
  }
  return { path: file, format: 'llama2c', config, tokenizer: readLlama2cTokenizer(tok, config.vocabSize), weights, tokenizerPath: tok };
}

/** Every canonical tensor present with the shape the config implies. */
function checkShapes(w: TensorSource, c: LlamaConfig): void {
  const qDim = c.numHeads * c.headDim, kvDim = c.numKvHeads * c.headDim;
  const expected = new Map<string, number[]>([[NAMES.embed, [c.vocabSize, c.hiddenSize]], [NAMES.finalNorm, [c.hiddenSize]]]);
  if (!c.tieWordEmbeddings) expected.set(NAMES.lmHead, [c.vocabSize, c.hiddenSize]);
  for (let l = 0; l < c.numLayers; l++) {
    expected.set(NAMES.layer(l, 'input_layernorm'), [c.hiddenSize]);
    expected.set(NAMES.layer(l, 'post_attention_layernorm'), [c.hiddenSize]);
    expected.set(NAMES.layer(l, 'self_attn.q_proj'), [qDim, c.hiddenSize]);
    expected.set(NAMES.layer(l, 'self_attn.k_proj'), [kvDim, c.hiddenSize]);
    expected.set(NAMES.layer(l, 'self_attn.v_proj'), [kvDim, c.hiddenSize]);
    expected.set(NAMES.layer(l, 'self_attn.o_proj'), [c.hiddenSize, qDim]);
    expected.set(NAMES.layer(l, 'mlp.gate_proj'), [c.intermediateSize, c.hiddenSize]);
    expected.set(NAMES.layer(l, 'mlp.up_proj'), [c.intermediateSize, c.hiddenSize]);
    expected.set(NAMES.layer(l, 'mlp.down_proj'), [c.hiddenSize, c.intermediateSize]);
  }
  const infos = new Map(w.list().map((t) => [t.name, t]));
  for (const [name, shape] of expected) {
    const t = infos.get(name);
    if (!t) throw new FormatError(w.path, `tensor "${name}" is missing`);
    if (t.shape.join(',') !== shape.join(',')) throw new FormatError(w.path, `tensor "${name}" has shape [${t.shape.join(', ')}], the config implies [${shape.join(', ')}]`);
  }
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
}

export interface CheckpointDescription {
  readonly path: string;
  readonly format: ModelCheckpoint['format'];
  readonly parameterCount: number;
  readonly tensorCount: number;
  /** stored dtype (F32, BF16, Q8_0, ...) → number of parameters stored that way */
  readonly storedDtypes: Readonly<Record<string, number>>;
  readonly config: LlamaConfig;
  readonly tokenizer: { readonly kind: string; readonly description: string; readonly vocabSize: number; readonly bosId: number | undefined; readonly eosId: number | undefined };
}

/** What `lowbit info` prints. */
export function describeCheckpoint(ckpt: ModelCheckpoint): CheckpointDescription {
  const storedDtypes: Record<string, number> = {};
  let parameterCount = 0;
  const list = ckpt.weights.list();
  for (const t of list) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    parameterCount += n;
    storedDtypes[t.storedAs] = (storedDtypes[t.storedAs] ?? 0) + n;
  }
  const tk: Tokenizer = ckpt.tokenizer;
  return {
    path: ckpt.path, format: ckpt.format, parameterCount, tensorCount: list.length, storedDtypes, config: ckpt.config,
    tokenizer: { kind: tk.kind, description: tk.description, vocabSize: tk.vocabSize, bosId: tk.bosId, eosId: tk.eosId },
  };
}
