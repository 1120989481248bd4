import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError } from '../../errors.js';
import { makeDirs, replaceDir, sweepStaleTemps, tempPathFor, writeFailure, writeFileAtomic, writeJsonAtomic } from '../atomic.js';
import type { ModelCheckpoint } from '../../model/checkpoint.js';
import { Tensor } from '../../tensor/tensor.js';
import { packGptq } from '../../quant/pack/gptqPack.js';
import type { QuantizedMatrix, ScaleDtype } from '../../quant/core/grid.js';
import { f16ToF32, f32ToF16 } from '../../tensor/codecs.js';
import { writeSafetensors } from '../safetensors.js';
import { toHfConfigJson } from '../hfConfigWrite.js';
import { readGgufHeader } from '../gguf/parse.js';
import { ggufVocab } from '../gguf/config.js';
import { NAMES } from '../source.js';
import { QUANT_CONFIG, QUANT_REPORT, SPM_TOKENIZER } from './layout.js';

export interface QuantizeSettings {
  readonly bits: number;
  readonly groupSize: number;
  readonly sym: boolean;
  readonly actOrder: boolean;
  readonly staticGroups: boolean;
  readonly percdamp: number;
  readonly trueSequential: boolean;
  /** dtype the scales were solved in and are stored in: 'f32' (the paper's protocol) or 'f16' (AutoGPTQ's files) */
  readonly scaleDtype: ScaleDtype;
}

/**
 * A [groups, rows] scales tensor in `dtype`. fp16 storage of scales that were not solved in fp16
 * would change the weights: that is an explicit export (export.ts), never a side effect here.
 */
export function scalesTensor(scales: Float32Array, groups: number, rows: number, dtype: ScaleDtype): Tensor {
  if (dtype === 'f32') return new Tensor('f32', [groups, rows], scales);
  const h = new Uint16Array(scales.length);
  for (let i = 0; i < scales.length; i++) {
    h[i] = f32ToF16(scales[i]!);
    if (f16ToF32(h[i]!) !== scales[i]) throw new Error(`scale ${scales[i]} is not an fp16 value: the layer was not solved with fp16 scales`);
  }
  return new Tensor('f16', [groups, rows], h);
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
export function checkOutputFolder(out: string, force: boolean): void {
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
  private zeroWraps = 0;
  constructor(private readonly src: ModelCheckpoint, private readonly settings: QuantizeSettings) {}

  addLayer(name: string, rows: number, cols: number, m: QuantizedMatrix): void {
    const { tensors: t, zeroWraps } = packGptq(m, rows, cols, this.settings.bits);
    this.zeroWraps += zeroWraps;
    this.tensors.push(
      { name: `${name}.qweight`, tensor: new Tensor('i32', [t.qweight.length / rows, rows], t.qweight) },
      { name: `${name}.qzeros`, tensor: new Tensor('i32', [t.groups, t.qzeros.length / t.groups], t.qzeros) },
      { name: `${name}.scales`, tensor: scalesTensor(t.scales, t.groups, rows, this.settings.scaleDtype) },
      { name: `${name}.g_idx`, tensor: new Tensor('i32', [cols], t.gIdx) },
    );
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
      // unquantized tensors, as stored
      const keep: string[] = [NAMES.embed, NAMES.finalNorm, ...(this.src.weights.has(NAMES.lmHead) && !cfg.tieWordEmbeddings ? [NAMES.lmHead] : [])];
      for (let i = 0; i < cfg.numLayers; i++) keep.push(NAMES.layer(i, 'input_layernorm'), NAMES.layer(i, 'post_attention_layernorm'));
      const dtypes = new Set<string>();
      const plain = keep.map((name) => { const tensor = this.src.weights.read(name); dtypes.add(tensor.dtype); return { name, tensor }; });
      const s = this.settings;
      const quantizationConfig = {
        quant_method: 'gptq', bits: s.bits, group_size: s.groupSize, damp_percent: s.percdamp, desc_act: s.actOrder,
        static_groups: s.staticGroups, sym: s.sym, true_sequential: s.trueSequential, checkpoint_format: 'gptq',
        scale_dtype: s.scaleDtype === 'f32' ? 'float32' : 'float16',
      };
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
