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
 * (QA-LoRA's adapter form is train/lora.ts 'qa' and its merge tensor/gptqZeroShift.ts; its recipe
 * — GPTQ W4 g32 base, qlora's trainer, the merged checkpoint — is not wired into finetune yet.)
 */
import type { LoraSpec } from '../../train/lora.js';
import type { FinetuneConfig } from '../../train/finetune.js';

export type FinetuneMethod = 'qlora' | 'irqlora';
export const FINETUNE_METHODS: readonly FinetuneMethod[] = Object.freeze(['qlora', 'irqlora']);

export interface FinetuneRecipe {
  readonly method: FinetuneMethod;
  /** the base quantization (a quantize method with its options) */
  readonly base: { readonly method: string; readonly bits: number; readonly group?: number; readonly options: Readonly<Record<string, number | boolean>>; readonly calib?: string };
  readonly lora: LoraSpec;
  readonly train: Omit<FinetuneConfig, 'lora' | 'steps' | 'seed' | 'saveEvery'>;
  /** one line for the README and every result: where the defaults come from */
  readonly source: string;
}

const QLORA_TRAIN = Object.freeze({
  lr: 2e-4, schedule: 'constant' as const, warmupRatio: 0.03, maxGradNorm: 0.3,
  adam: Object.freeze({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }), gradAccum: 16,
});

export const RECIPES: Readonly<Record<FinetuneMethod, FinetuneRecipe>> = Object.freeze({
  qlora: {
    method: 'qlora',
    base: { method: 'nf4', bits: 4, options: { doubleQuant: true } },
    lora: { form: 'lora', rank: 64, alpha: 16, dropout: 0 },
    train: QLORA_TRAIN,
    source: 'artidoro/qlora 7f4e95a qlora.py defaults',
  },
  irqlora: {
    method: 'irqlora',
    base: { method: 'icq', bits: 4, options: { doubleQuant: true, tauLambda: 0.1, tauN: 100 } },
    lora: { form: 'iec', rank: 64, alpha: 16, dropout: 0 },
    train: QLORA_TRAIN,
    source: 'htqin/IR-QLoRA e6fef4a irlora.py defaults (tau_lambda 0.1, tau_n 100, blocksize2 256)',
  },
});
