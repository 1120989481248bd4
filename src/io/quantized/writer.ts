import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ModelCheckpoint } from '../../model/checkpoint.js';
import { Tensor } from '../../tensor/tensor.js';
import { packGptq } from '../../quant/pack/gptqPack.js';
import type { QuantizedMatrix } from '../../quant/core/grid.js';
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
      { name: `${name}.scales`, tensor: new Tensor('f16', [t.groups, rows], t.scales) },
      { name: `${name}.g_idx`, tensor: new Tensor('i32', [cols], t.gIdx) },
    );
  }

  /** Writes everything to `out` (replacing an older folder there). */
  write(out: string, report: Record<string, unknown>): void {
    const tmp = `${out}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
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
    };
    writeSafetensors(join(tmp, 'model.safetensors'), [...plain, ...this.tensors], { format: 'pt', quantized_by: 'lowbit' });
    const torchDtype = dtypes.has('bf16') ? 'bfloat16' : dtypes.has('f16') ? 'float16' : 'float32';
    writeFileSync(join(tmp, 'config.json'), JSON.stringify({ ...toHfConfigJson(cfg, torchDtype), quantization_config: quantizationConfig }, null, 2) + '\n');
    writeFileSync(join(tmp, QUANT_CONFIG), JSON.stringify(quantizationConfig, null, 2) + '\n');
    writeFileSync(join(tmp, QUANT_REPORT), JSON.stringify({ ...report, zeroWraps: this.zeroWraps }, null, 2) + '\n');
    this.copyTokenizer(tmp);
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
  }

  private copyTokenizer(dir: string): void {
    const p = this.src.tokenizerPath;
    if (!p) throw new Error(`${this.src.path}: the checkpoint does not say where its tokenizer came from`);
    if (this.src.format === 'gguf') {
      const v = ggufVocab(readGgufHeader(p));
      writeFileSync(join(dir, SPM_TOKENIZER), JSON.stringify({ source: p, tokens: v.tokens, scores: v.scores, types: v.types, bosId: v.bosId, eosId: v.eosId, addSpacePrefix: v.addSpacePrefix }) + '\n');
    } else if (this.src.format === 'llama2c') {
      copyFileSync(p, join(dir, basename(p)));
    } else {
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', SPM_TOKENIZER]) {
        if (existsSync(join(p, f))) copyFileSync(join(p, f), join(dir, f));
      }
    }
  }
}
