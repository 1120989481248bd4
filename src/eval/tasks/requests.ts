/**
 * Zero-shot multiple-choice requests, as lm-evaluation-harness builds them (PROTOCOLS.md §2). Continuations are kept
 * without their leading space; the scorer scores `" " + continuation` and acc_norm divides by the characters of the
 * continuation as stored here.
 */
import type { ArcDoc } from '../../data/tasks/arc.js';
import type { HellaswagDoc, HellaswagTxtDoc } from '../../data/tasks/hellaswag.js';
import type { PiqaDoc } from '../../data/tasks/piqa.js';
import type { WinograndeDoc } from '../../data/tasks/winogrande.js';

/** One context, one continuation per choice (PIQA, ARC, HellaSwag). */
export interface McRequest {
  readonly context: string;
  readonly continuations: readonly string[];
  readonly gold: number;
}

/** Partial scoring (Winogrande): one context per choice, one continuation shared by all. */
export interface PartialRequest {
  readonly contexts: readonly string[];
  readonly continuation: string;
  readonly gold: number;
}

export type TaskRequest = McRequest | PartialRequest;

/** The (context, continuation) text pair scored for each choice, in choice order. */
export function choicePairs(req: TaskRequest): { context: string; continuation: string }[] {
  if ('contexts' in req) return req.contexts.map((context) => ({ context, continuation: req.continuation }));
  return req.continuations.map((continuation) => ({ context: req.context, continuation }));
}

export function piqaRequest(d: PiqaDoc): McRequest {
  return { context: `Question: ${d.goal}\nAnswer:`, continuations: [d.sol1, d.sol2], gold: d.label };
}

export function arcRequest(d: ArcDoc): McRequest {
  return { context: `Question: ${d.question}\nAnswer:`, continuations: d.choices, gold: d.gold };
}

/** lm-eval's HellaSwag `preprocess`: trim; " [title]" → ". "; delete every [...] span; "  " → " " (one pass). */
export function hellaswagPreprocess(text: string): string {
  return text.trim().replaceAll(' [title]', '. ').replace(/\[.*?\]/g, '').replaceAll('  ', ' ');
}

/** Python's str.capitalize(): first character upper-cased, the rest lower-cased. */
export function pyCapitalize(s: string): string {
  const [first, ...rest] = [...s];
  return first === undefined ? '' : first.toUpperCase() + rest.join('').toLowerCase();
}

export function hellaswagRequest(d: HellaswagDoc): McRequest {
  const ctx = `${d.ctx_a} ${pyCapitalize(d.ctx_b)}`;
  return {
    context: hellaswagPreprocess(`${d.activity_label}: ${ctx}`),
    continuations: d.endings.map(hellaswagPreprocess),
    gold: d.label,
  };
}

/** llama.cpp's text layout: its lines are already preprocessed (ctx_b not capitalized); lm-eval's preprocess is applied again. */
export function hellaswagTxtRequest(d: HellaswagTxtDoc): McRequest {
  return { context: hellaswagPreprocess(d.ctx), continuations: d.endings.map(hellaswagPreprocess), gold: d.label };
}

/** Partial scoring: contexts `sentence[:i] + option`, continuation `sentence[i+1:].trim()`, i = first "_". */
export function winograndeRequest(d: WinograndeDoc): PartialRequest {
  const i = d.sentence.indexOf('_');
  const prefix = d.sentence.slice(0, i);
  return { contexts: [prefix + d.option1, prefix + d.option2], continuation: d.sentence.slice(i + 1).trim(), gold: d.answer - 1 };
}
