import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError } from '../../errors.js';
import { makeDirs, replaceDir, sweepStaleTemps, tempPathFor, writeFailure, writeFileAtomic, writeJsonAtomic } from '../atomic.js';
import type { ModelCheckpoint } from '../checkpoint.js';
import { Tensor } from '../../tensor/tensor.js';
import type { ActivationQuant } from '../checkpoint.js';
import type { ScaleDtype, StoredLayer } from '../../tensor/packed.js';
import { FORMATS, type FormatName } from './formats.js';
import { writeSafetensors } from '../safetensors.js';
import { toHfConfigJson } from '../hfConfigWrite.js';
import { readGgufHeader } from '../gguf/parse.js';
import { ggufVocab } from '../gguf/config.js';
import { NAMES } from '../source.js';
import { QUANT_CONFIG, QUANT_REPORT, SPM_TOKENIZER } from './layout.js';

/** What the checkpoint's configuration records about how it was made and how it is stored. */
export interface CheckpointSettings {
  /** the lowbit method (recorded as lowbit_method; quant_method is the storage format's name) */
  readonly method: string;
  readonly format: FormatName;
  readonly bits: number;
  readonly groupSize: number;
  readonly sym: boolean;
  readonly actOrder: boolean;
  readonly staticGroups: boolean;
  readonly percdamp?: number;
  readonly trueSequential: boolean;
  /** dtype the scales were solved in and are stored in: 'f32' (the paper's protocol) or 'f16' (AutoGPTQ's and AutoAWQ's files) */
  readonly scaleDtype: ScaleDtype;
  readonly activation?: ActivationQuant;
}

/** quantize_config.json, and config.json's quantization_config: AutoGPTQ's or AutoAWQ's fields, plus lowbit's own. */
function quantizationConfigOf(s: CheckpointSettings): Record<string, unknown> {
  const lowbit = {
    lowbit_method: s.method, scale_dtype: s.scaleDtype === 'f32' ? 'float32' : 'float16',
    ...(s.activation ? { activation: { bits: s.activation.bits, granularity: s.activation.granularity, quant_bmm: s.activation.quantBmm } } : {}),
  };
  if (s.format === 'awq') return { quant_method: 'awq', zero_point: true, group_size: s.groupSize, bits: s.bits, version: 'gemm', modules_to_not_convert: null, ...lowbit };
  // a method-specific kind (tensor/kinds.ts): lowbit's own layout, named by `kind`
  if (s.format !== 'gptq') return { quant_method: 'lowbit', kind: s.format, bits: s.bits, group_size: s.groupSize, true_sequential: s.trueSequential, ...lowbit };
  return {
    quant_method: 'gptq', bits: s.bits, group_size: s.groupSize, ...(s.percdamp === undefined ? {} : { damp_percent: s.percdamp }), desc_act: s.actOrder,
    static_groups: s.staticGroups, sym: s.sym, true_sequential: s.trueSequential, checkpoint_format: 'gptq', ...lowbit,
  };
}

/** Files a lowbit checkpoint folder may hold: what this writer puts there. */
export function isCheckpointFile(name: string): boolean {
  return ['config.json', QUANT_CONFIG, QUANT_REPORT, 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json',
    'special_tokens_map.json', SPM_TOKENIZER].includes(name) || /^tok.*\.bin$/.test(name);
}

/**
 * Whether `out` may receive a checkpoint: it does not exist, or is an empty folder, or (with `force`)
 * holds a lowbit checkpoint and nothing else. A file, a folder with anything lowbit did not write, or
 * an existing checkpoint without `force` is a UsageError, checked before any work starts.
 */
function checkOutputFolder(out: string, force: boolean): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new UsageError(`${out} exists and is a file, not a folder: choose another output folder`);
  const names = readdirSync(out);
  if (names.length === 0) return;
  let report: { tool?: unknown } | undefined;
  try { report = JSON.parse(readFileSync(join(out, QUANT_REPORT), 'utf8')) as { tool?: unknown }; } catch { report = undefined; }
  if (report?.tool !== 'lowbit') {
    throw new UsageError(`${out} is a folder that is not empty and holds no lowbit checkpoint: lowbit will not replace it (choose another output folder)`);
  }
  const foreign = names.find((n) => !isCheckpointFile(n));
  if (foreign) throw new UsageError(`${out} holds ${foreign}, which lowbit did not write: lowbit will not replace the folder (move it, or choose another output folder)`);
  if (!force) throw new UsageError(`${out} already holds a lowbit checkpoint: pass --force to replace it`);
}

/**
 * Collects packed layers as the pipeline produces them and writes the folder at the end, into a
 * temporary sibling that is renamed into place: a crash never leaves a complete-looking checkpoint.
 */
export class QuantizedCheckpointWriter {
  private readonly tensors: { name: string; tensor: Tensor }[] = [];
  private readonly norms = new Map<number, { inputNorm: Tensor; postNorm: Tensor }>();
  private zeroWraps = 0;
  constructor(private readonly src: ModelCheckpoint, private readonly settings: CheckpointSettings) {}

  /** A quantized layer as the method stored it, in the checkpoint's layout. */
  addLayer(name: string, rows: number, cols: number, stored: StoredLayer): void {
    const s = this.settings;
    const groupSize = s.groupSize === -1 ? cols : s.groupSize;
    const fmt = FORMATS[s.format];
    if (!fmt) throw new Error(`no checkpoint layout named ${s.format}`);
    // AutoGPTQ's v1 kernels read a stored zero of 0 as 2^bits (see gptqPack.ts): counted for the report
    if (s.format === 'gptq' && 'grid' in stored) for (const z of stored.grid.zeros) if (z === 0) this.zeroWraps++;
    this.tensors.push(...fmt.pack(name, stored, rows, cols, s.bits, groupSize, s.scaleDtype));
  }

  /** Block i's norm weights as the method left them (a scale folded in, or as read): the writer never reads them itself. */
  setNorms(n: { readonly index: number; readonly inputNorm: Tensor; readonly postNorm: Tensor }): void {
    this.norms.set(n.index, { inputNorm: n.inputNorm, postNorm: n.postNorm });
  }

  /**
   * Checks, before any work, that `out` can receive the checkpoint (checkOutputFolder, and that its
   * temporary sibling can be created there), and removes what killed runs left beside it.
   */
  static prepare(out: string, force: boolean): void {
    checkOutputFolder(out, force);
    sweepStaleTemps(dirname(resolve(out)), basename(out));
    const tmp = tempPathFor(out);
    makeDirs(tmp, out);
    rmSync(tmp, { recursive: true, force: true });
  }

  /**
   * Writes everything to `out`: built in a temporary sibling, then swapped in (an existing lowbit
   * checkpoint there is replaced only with `force`; see checkOutputFolder).
   */
  write(out: string, report: Record<string, unknown>, force = false): void {
    QuantizedCheckpointWriter.prepare(out, force);
    const tmp = tempPathFor(out);
    makeDirs(tmp, out);
    try {
      const cfg = this.src.config;
      // the tensors no method changes (embedding, final norm, LM head), as stored; then every block's norms from the pipeline
      const keep: string[] = [NAMES.embed, NAMES.finalNorm, ...(this.src.weights.has(NAMES.lmHead) && !cfg.tieWordEmbeddings ? [NAMES.lmHead] : [])];
      const plain = keep.map((name) => ({ name, tensor: this.src.weights.read(name) }));
      for (let i = 0; i < cfg.numLayers; i++) {
        const n = this.norms.get(i);
        if (!n) throw new Error(`the pipeline gave no norms for block ${i}`);
        plain.push({ name: NAMES.layer(i, 'input_layernorm'), tensor: n.inputNorm }, { name: NAMES.layer(i, 'post_attention_layernorm'), tensor: n.postNorm });
      }
      const dtypes = new Set(plain.map((p) => p.tensor.dtype));
      const quantizationConfig = quantizationConfigOf(this.settings);
      writeSafetensors(join(tmp, 'model.safetensors'), [...plain, ...this.tensors], { format: 'pt', quantized_by: 'lowbit' });
      const torchDtype = dtypes.has('bf16') ? 'bfloat16' : dtypes.has('f16') ? 'float16' : 'float32';
      writeJsonAtomic(join(tmp, 'config.json'), { ...toHfConfigJson(cfg, torchDtype), quantization_config: quantizationConfig });
      writeJsonAtomic(join(tmp, QUANT_CONFIG), quantizationConfig);
      writeJsonAtomic(join(tmp, QUANT_REPORT), { ...report, zeroWraps: this.zeroWraps });
      this.copyTokenizer(tmp);
      checkOutputFolder(out, force); // again: something may have appeared there while we worked
      replaceDir(tmp, out);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw writeFailure(e, out);
    }
  }

  private copyTokenizer(dir: string): void {
    const p = this.src.tokenizerPath;
    if (!p) throw new Error(`${this.src.path}: the checkpoint does not say where its tokenizer came from`);
    if (this.src.format === 'gguf') {
      const v = ggufVocab(readGgufHeader(p));
      writeFileAtomic(join(dir, SPM_TOKENIZER), JSON.stringify({ source: p, tokens: v.tokens, scores: v.scores, types: v.types, bosId: v.bosId, eosId: v.eosId, addSpacePrefix: v.addSpacePrefix }) + '\n');
    } else if (this.src.format === 'llama2c') {
      copyFileSync(p, join(dir, basename(p)));
    } else {
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', SPM_TOKENIZER]) {
        if (existsSync(join(p, f))) copyFileSync(join(p, f), join(dir, f));
      }
    }
  }
}
