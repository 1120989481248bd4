/**
 * `lowbit export --format gguf`: any checkpoint lowbit opens (a lowbit/GPTQ folder, HF, GGUF) to one
 * llama.cpp GGUF file. Metadata as convert_hf_to_gguf.py writes it (general.architecture llama, llama.*
 * hyper-parameters, tokenizer.ggml.* from gguf/vocab.ts); q/k rows permuted to llama.cpp's adjacent-pair
 * RoPE layout; norms in F32; each other tensor converted by ggufTensors.ts, which refuses (one line
 * naming the layer) what the chosen type cannot hold exactly unless `requantize`. The names of the
 * re-quantized tensors are recorded in the file (`lowbit.requantized`); the report says, tensor by
 * tensor, whether the export is exact and by how much it moved the weights.
 */
import { basename, resolve } from 'node:path';
import { UsageError } from '../../errors.js';
import type { LlamaConfig } from '../config.js';
import { openModel } from '../open.js';
import { halvesToPairs } from '../qkPermute.js';
import { LAYER_MAP } from '../gguf/source.js';
import { GgmlType, GgufValueType } from '../gguf/types.js';
import { ggufVocabKvs } from '../gguf/vocab.js';
import { writeGguf, type GgufKv, type GgufTensorOut } from '../gguf/write.js';
import { NAMES, type TensorSource } from '../source.js';
import { isGptqPacked } from '../../tensor/packed.js';
import { gptqZeroPoints } from '../../tensor/gptqPack.js';
import { convertTensor, isBlock, type FloatType, type TargetType } from './ggufTensors.js';

export const GGUF_TYPES = ['auto', 'q4_0', 'q4_1', 'q8_0', 'f16', 'bf16', 'f32'] as const;
export type GgufExportType = (typeof GGUF_TYPES)[number];

const TYPE_OF: Readonly<Record<Exclude<GgufExportType, 'auto'>, TargetType>> = Object.freeze({
  q4_0: GgmlType.Q4_0, q4_1: GgmlType.Q4_1, q8_0: GgmlType.Q8_0, f16: GgmlType.F16, bf16: GgmlType.BF16, f32: GgmlType.F32,
});

/** llama.cpp's llama_ftype (general.file_type) of a file whose linear layers are mostly `t`. */
const FILE_TYPE: Readonly<Record<TargetType, number>> = Object.freeze({
  [GgmlType.F32]: 0, [GgmlType.F16]: 1, [GgmlType.Q4_0]: 2, [GgmlType.Q4_1]: 3, [GgmlType.Q8_0]: 7, [GgmlType.BF16]: 32,
});

export interface GgufTensorReport {
  readonly name: string;
  readonly from: string;
  readonly type: string;
  readonly how: 'exact' | 'rounded' | 'requantized';
  readonly maxAbsChange: number;
}

export interface GgufExport {
  readonly from: string;
  readonly out: string;
  readonly type: GgufExportType;
  readonly fileType: number;
  readonly exact: boolean;
  readonly maxAbsChange: number;
  readonly requantized: readonly string[];
  readonly tensors: readonly GgufTensorReport[];
}

/** The float type a tensor keeps under --type auto (and in block exports, for embeddings): its stored dtype, widened to F32 otherwise. */
function storedFloat(source: TensorSource, name: string): FloatType {
  const dtype = source.list().find((t) => t.name === name)?.dtype;
  return dtype === 'f16' ? GgmlType.F16 : dtype === 'bf16' ? GgmlType.BF16 : GgmlType.F32;
}

/**
 * The type of a layer under --type auto: a GPTQ-layout grid's own (8-bit → Q8_0; 4-bit → Q4_0 when every
 * zero is 8, else Q4_1); another packed layer → Q4_1 (refused with the reason unless re-quantized); float
 * weights keep their stored float type.
 */
function autoType(source: TensorSource, name: string): TargetType {
  const p = source.readQuantized?.(name);
  if (!p) return storedFloat(source, name);
  if (!isGptqPacked(p)) return GgmlType.Q4_1;
  if (p.bits === 8) return GgmlType.Q8_0;
  return p.bits === 4 && !p.zerosF && gptqZeroPoints(p).every((z) => z === 8) ? GgmlType.Q4_0 : GgmlType.Q4_1;
}

function metadata(config: LlamaConfig, name: string, fileType: number, requantized: string[]): GgufKv[] {
  const u32 = (key: string, value: number): GgufKv => ({ key, type: GgufValueType.UINT32, value });
  const f32 = (key: string, value: number): GgufKv => ({ key, type: GgufValueType.FLOAT32, value });
  const kvs: GgufKv[] = [
    { key: 'general.architecture', type: GgufValueType.STRING, value: 'llama' },
    { key: 'general.name', type: GgufValueType.STRING, value: name },
    u32('llama.block_count', config.numLayers),
    u32('llama.context_length', config.maxPositionEmbeddings),
    u32('llama.embedding_length', config.hiddenSize),
    u32('llama.feed_forward_length', config.intermediateSize),
    u32('llama.attention.head_count', config.numHeads),
    u32('llama.attention.head_count_kv', config.numKvHeads),
    f32('llama.rope.freq_base', config.ropeTheta),
    f32('llama.attention.layer_norm_rms_epsilon', config.rmsNormEps),
    u32('general.file_type', fileType),
    u32('llama.vocab_size', config.vocabSize),
    u32('llama.rope.dimension_count', config.headDim),
  ];
  if (config.headDim * config.numHeads !== config.hiddenSize) kvs.push(u32('llama.attention.key_length', config.headDim), u32('llama.attention.value_length', config.headDim));
  kvs.push(u32('general.quantization_version', 2));
  kvs.push({ key: 'lowbit.requantized', type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: requantized });
  return kvs;
}

/** GGUF name → lowbit (HF) name, in llama.cpp's order. */
function tensorNames(config: LlamaConfig): [gguf: string, hf: string][] {
  const out: [string, string][] = [['token_embd.weight', NAMES.embed]];
  for (let i = 0; i < config.numLayers; i++) {
    for (const [g, part] of Object.entries(LAYER_MAP)) out.push([`blk.${i}.${g}.weight`, NAMES.layer(i, part)]);
  }
  out.push(['output_norm.weight', NAMES.finalNorm]);
  if (!config.tieWordEmbeddings) out.push(['output.weight', NAMES.lmHead]);
  return out;
}

export function exportGguf(model: string, out: string, opts: { type: GgufExportType; requantize: boolean }): GgufExport {
  const ckpt = openModel(model);
  const { config } = ckpt;
  if (ckpt.activation) throw new UsageError(`${model}: quantizes activations to ${ckpt.activation.bits} bits (SmoothQuant), which a GGUF file cannot say; GGUF export takes weight-only checkpoints`);
  if (ckpt.adapter) throw new UsageError(`${model}: holds a LoRA adapter; merge it first (lowbit finetune --merge) and export the merged checkpoint`);
  if (config.ropeScaling) throw new UsageError(`${model}: RoPE scaling (rope_scaling in config.json) is not written by the GGUF export`);
  const source = ckpt.weights;
  const tensors: GgufTensorOut[] = [], reports: GgufTensorReport[] = [];
  const linearTypes = new Map<TargetType, number>();
  for (const [gguf, hf] of tensorNames(config)) {
    const info = source.list().find((t) => t.name === hf);
    if (!info) throw new UsageError(`${model}: no tensor ${hf} (for ${gguf})`);
    const ne = [...info.shape].reverse();
    if (info.shape.length === 1) { // norms: F32, as llama.cpp keeps them
      const c = convertTensor(GgmlType.F32, { label: `${gguf} (${hf})`, rows: 1, cols: info.shape[0]!, packed: undefined, values: () => source.read(hf).toF32(), requantize: false });
      tensors.push({ name: gguf, ne, type: GgmlType.F32, data: c.data });
      reports.push({ name: gguf, from: hf, type: 'F32', how: c.how, maxAbsChange: c.maxAbsChange });
      continue;
    }
    const [rows, cols] = info.shape as [number, number];
    const linear = gguf.startsWith('blk.');
    const requested = opts.type === 'auto' ? autoType(source, hf) : TYPE_OF[opts.type];
    // embeddings and the head stay in their float type in a block export (lowbit never quantizes them)
    const type = !linear && isBlock(requested) ? storedFloat(source, hf) : requested;
    const packed = source.readQuantized?.(hf);
    const c = convertTensor(type, { label: `${gguf} (${hf}) of ${model}`, rows, cols, packed, values: () => source.read(hf).toF32(), requantize: opts.requantize });
    let data = c.data;
    const qk = hf.endsWith('.self_attn.q_proj.weight') ? config.numHeads : hf.endsWith('.self_attn.k_proj.weight') ? config.numKvHeads : 0;
    if (qk > 0) data = halvesToPairs(data, rows, data.length / rows, qk);
    tensors.push({ name: gguf, ne, type: c.type, data });
    reports.push({ name: gguf, from: hf, type: GgmlType[c.type], how: c.how, maxAbsChange: c.maxAbsChange });
    if (linear) linearTypes.set(c.type, (linearTypes.get(c.type) ?? 0) + 1);
  }
  const main = [...linearTypes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? GgmlType.F32;
  const fileType = FILE_TYPE[main];
  const requantized = reports.filter((r) => r.how === 'requantized').map((r) => r.name);
  const name = basename(resolve(model)).replace(/\.gguf$/, '');
  writeGguf(out, [...metadata(config, name, fileType, requantized), ...ggufVocabKvs(ckpt.tokenizerPath ?? model, config.vocabSize)], tensors);
  return {
    from: model, out, type: opts.type, fileType,
    exact: reports.every((r) => r.how === 'exact'),
    maxAbsChange: Math.max(0, ...reports.map((r) => r.maxAbsChange)),
    requantized, tensors: reports,
  };
}
