/**
 * The LoRA-finetuning methods as their authors' code runs them: which quantizer makes the frozen
 * base, which adapter form trains on it, and the trainer's defaults. Sources (read at these commits):
 *   QLoRA     artidoro/qlora 7f4e95a qlora.py: NF4 + double quant; r 64, alpha 16, dropout 0.0,
 *             lr 2e-4, 'constant' schedule (HF's constant ignores warmup_ratio 0.03), max_grad_norm 0.3,
 *             paged AdamW 32-bit (β 0.9/0.999, ε 1e-8), weight decay 0, batch 1 × grad-accum 16,
 *             source/target caps 1024/256, loss on the response only.
 *   IR-QLoRA  htqin/IR-QLoRA e6fef4a irlora.py + utils.py: ICQ (tau_lambda 0.1, tau_n 100, blocks of 256
 *             for τ) + double quant; LoRA with the elastic connections (two trainable scalars per
 *             linear, 0 at init); the QLoRA trainer's defaults otherwise.
 *   QA-LoRA   yuhuixu1993/qa-lora 91604c7 qalora.py + peft_utils.py: GPTQ W4 g32 (act-order off) base;
 *             A [r, in/32] on the group means (AvgPool1d(32)), xavier init; qlora's trainer defaults;
 *             merged after training into the zeros (merge.py): the output is a GPTQ checkpoint.
 */
import type { LoraSpec } from '../../train/lora.js';
import type { FinetuneConfig } from '../../train/finetune.js';

export type FinetuneMethod = 'qlora' | 'irqlora' | 'qalora';
export const FINETUNE_METHODS: readonly FinetuneMethod[] = Object.freeze(['qlora', 'irqlora', 'qalora']);

export interface FinetuneRecipe {
  readonly method: FinetuneMethod;
  /** the name tables print */
  readonly label: string;
  /** the base quantization (a quantize method with its options) */
  readonly base: { readonly method: string; readonly bits: number; readonly group?: number; readonly options: Readonly<Record<string, number | boolean>>; readonly calib?: string };
  readonly lora: LoraSpec;
  readonly train: Omit<FinetuneConfig, 'lora' | 'steps' | 'seed' | 'saveEvery'>;
  /** one line for the README and every result: where the defaults come from */
  readonly source: string;
  /** the adapters merge into the base after training (QA-LoRA): OUT is then the merged checkpoint alone */
  readonly merge?: boolean;
}

const QLORA_TRAIN = Object.freeze({
  lr: 2e-4, schedule: 'constant' as const, warmupRatio: 0.03, maxGradNorm: 0.3,
  adam: Object.freeze({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }), gradAccum: 16,
});

export const RECIPES: Readonly<Record<FinetuneMethod, FinetuneRecipe>> = Object.freeze({
  qlora: {
    method: 'qlora', label: 'QLoRA',
    base: { method: 'nf4', bits: 4, options: { doubleQuant: true } },
    lora: { form: 'lora', rank: 64, alpha: 16, dropout: 0 },
    train: QLORA_TRAIN,
    source: 'artidoro/qlora 7f4e95a qlora.py defaults',
  },
  irqlora: {
    method: 'irqlora', label: 'IR-QLoRA',
    base: { method: 'icq', bits: 4, options: { doubleQuant: true, tauLambda: 0.1, tauN: 100 } },
    lora: { form: 'iec', rank: 64, alpha: 16, dropout: 0 },
    train: QLORA_TRAIN,
    source: 'htqin/IR-QLoRA e6fef4a irlora.py defaults (tau_lambda 0.1, tau_n 100, blocksize2 256)',
  },
  qalora: {
    method: 'qalora', label: 'QA-LoRA',
    base: { method: 'gptq', bits: 4, group: 32, options: {}, calib: 'c4' },
    lora: { form: 'qa', rank: 64, alpha: 16, dropout: 0, groupSize: 32 },
    train: QLORA_TRAIN,
    source: 'yuhuixu1993/qa-lora 91604c7 qalora.py defaults, GPTQ W4 g32 base (c4 calibration), merged into the zeros',
    merge: true,
  },
});
