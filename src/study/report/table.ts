import { fmtFixed, fmtPpl } from '../../numbers.js';
import type { CellRecord } from '../journal.js';
import type { CellCost } from '../cost.js';
import { formatRate } from '../../eval/speed.js';
import { METHODS } from '../../quant/registry.js';
import { optionKeyParts } from '../../quant/options.js';
import { RECIPES, type FinetuneMethod } from '../../quant/lora/recipes.js';

/** The paper's column layout: Method, #W, #G, the PPL sets, then CommonSenseQA tasks and MMLU; then what the cell costs. */
export interface Column { readonly key: string; readonly title: string; readonly value: (r: CellRecord) => number | string | null }

const PPL_TITLES: Record<string, string> = { wikitext2: 'WikiText2', c4: 'C4', ptb: 'PTB', 'ptb-new': 'PTB-new', 'c4-new': 'C4-new', tinystories: 'TinyStories' };
const PPL_ORDER = ['wikitext2', 'c4', 'ptb', 'c4-new', 'ptb-new', 'tinystories'];
const TASK_TITLES: Record<string, string> = { piqa: 'PIQA', arc_easy: 'ARC-e', arc_challenge: 'ARC-c', hellaswag: 'HellaSwag', winogrande: 'Wino' };
const MMLU_TITLES: Record<string, string> = { humanities: 'Hums.', stem: 'STEM', social: 'Social', other: 'Other', avg: 'MMLU Avg' };

type Results = {
  ppl?: Record<string, { ppl: number }>; kld?: Record<string, { kl: { mean: number; sameTop: number } }>; tasks?: Record<string, { acc: number }>; mmlu?: Record<string, number>; quant?: { totalError?: number | null; nominalBits?: number };
  cost?: CellCost;
};
const res = (r: CellRecord) => r.results as Results;

/** The method's name as the paper writes it, with what sets the cell apart: non-default options (#A has its own column), fp16 scales. */
function methodLabel(r: CellRecord): string {
  if (r.cell.method === 'fp16') return 'FP16';
  if (r.cell.finetune && Object.hasOwn(RECIPES, r.cell.method)) return `${RECIPES[r.cell.method as FinetuneMethod].label} (${r.cell.finetune.steps} steps)`;
  const m = Object.hasOwn(METHODS, r.cell.method) ? METHODS[r.cell.method] : undefined;
  if (!m) return r.cell.method;
  const parts = optionKeyParts(m, Object.fromEntries(Object.entries(r.cell.options ?? {}).filter(([k]) => k !== 'abits')));
  if (r.cell.scaleDtype === 'f16') parts.push('fp16 scales');
  return parts.length ? `${m.label} (${parts.join(', ')})` : m.label;
}

/** Activation bits of a cell: its abits option, else 16 (weights only). */
function activationBits(r: CellRecord): number {
  const a = r.cell.options?.abits;
  return typeof a === 'number' ? a : 16;
}

/** Columns present in at least one record, in the paper's order. */
export function columnsFor(records: readonly CellRecord[]): Column[] {
  const cols: Column[] = [
    { key: 'method', title: 'Method', value: methodLabel },
    { key: 'wbits', title: '#W', value: (r) => (typeof res(r).quant?.nominalBits === 'number' ? res(r).quant!.nominalBits! : r.cell.wbits) },
    ...(records.some((r) => typeof r.cell.options?.abits === 'number') ? [{ key: 'abits', title: '#A', value: activationBits }] : []),
    { key: 'group', title: '#G', value: (r) => (r.cell.method === 'fp16' || r.cell.group === -1 ? '-' : r.cell.group) },
  ];
  const pplSets = new Set(records.flatMap((r) => Object.keys(res(r).ppl ?? {})));
  for (const k of [...PPL_ORDER, ...[...pplSets].filter((s) => !PPL_ORDER.includes(s)).sort()]) {
    if (pplSets.has(k)) cols.push({ key: `ppl.${k}`, title: PPL_TITLES[k] ?? k, value: (r) => res(r).ppl?.[k]?.ppl ?? null });
  }
  // KL-divergence against the FP cell (the study's model), per set: mean KL per token and top-1 agreement; the FP cell itself shows 0 and 100
  const kldSets = new Set(records.flatMap((r) => Object.keys(res(r).kld ?? {})));
  const isBase = (r: CellRecord) => r.cell.method === 'fp16';
  for (const k of [...PPL_ORDER, ...[...kldSets].filter((s) => !PPL_ORDER.includes(s)).sort()]) {
    if (!kldSets.has(k)) continue;
    cols.push(
      { key: `kld.${k}`, title: `KLD ${PPL_TITLES[k] ?? k}`, value: (r) => (isBase(r) ? 0 : res(r).kld?.[k]?.kl.mean ?? null) },
      { key: `top1.${k}`, title: `Top-1 ${PPL_TITLES[k] ?? k}`, value: (r) => (isBase(r) ? 100 : pct(res(r).kld?.[k]?.kl.sameTop)) },
    );
  }
  const tasks = Object.keys(TASK_TITLES).filter((t) => records.some((r) => res(r).tasks?.[t]));
  for (const t of tasks) cols.push({ key: `acc.${t}`, title: TASK_TITLES[t]!, value: (r) => pct(res(r).tasks?.[t]?.acc) });
  if (tasks.length) {
    cols.push({
      key: 'acc.avg', title: 'Avg', value: (r) => {
        const v = tasks.map((t) => res(r).tasks?.[t]?.acc).filter((x): x is number => typeof x === 'number');
        return v.length === tasks.length ? pct(v.reduce((a, b) => a + b, 0) / v.length) : null;
      },
    });
  }
  if (records.some((r) => res(r).mmlu)) {
    for (const [k, title] of Object.entries(MMLU_TITLES)) cols.push({ key: `mmlu.${k}`, title, value: (r) => pct(res(r).mmlu?.[k]) });
  }
  if (records.some((r) => res(r).cost)) {
    cols.push(
      { key: 'cost.size', title: 'Size (MiB)', value: (r) => { const c = res(r).cost; return c ? c.weightBytes / MIB : null; } },
      { key: 'cost.bits', title: 'Bits/W', value: (r) => res(r).cost?.bitsPerWeight.storedLinear ?? null },
      { key: 'cost.decode', title: 'Decode tok/s', value: (r) => res(r).cost?.speed?.decode.tokensPerSecond.median ?? null },
    );
  }
  if (records.some((r) => typeof res(r).quant?.totalError === 'number')) {
    cols.push({ key: 'quant.error', title: 'Σ layer error', value: (r) => res(r).quant?.totalError ?? null });
  }
  // cells whose queue job failed for good (src/study/queue/study.ts): their one-line error, no results
  if (records.some((r) => typeof (r.results as { failed?: unknown }).failed === 'string')) {
    cols.push({ key: 'failed', title: 'Failed', value: (r) => { const f = (r.results as { failed?: string }).failed; return f === undefined ? null : f.replace(/\|/g, '/'); } });
  }
  return cols;
}

function pct(x: number | undefined): number | null { return typeof x === 'number' ? 100 * x : null; }

const MIB = 1024 * 1024;

/** What the cost columns mean, for under the Markdown table; empty when there are none. */
export function costNote(records: readonly CellRecord[]): string {
  const speed = records.map((r) => res(r).cost?.speed).find((s) => s);
  if (!records.some((r) => res(r).cost)) return '';
  return 'Size: bytes of the files holding the tensors, in MiB. Bits/W: stored bits per weight of the linear layers ' +
    '(quantized: every stored part: qweight, qzeros, scales, and g_idx for GPTQ). Decode tok/s: ' +
    (speed ? `median of ${speed.reps} runs of ${speed.decodeTokens} greedy tokens after a ${speed.promptTokens}-token prompt, ` +
      `model resident, ${speed.warmup} warm-up run${speed.warmup === 1 ? '' : 's'} (\`lowbit bench\` measures longer).` : 'not measured (--no-speed).');
}

export function formatValue(col: Column, v: number | string | null): string {
  if (v === null) return '–';
  if (typeof v === 'string') return v;
  if (col.key.startsWith('ppl.')) return fmtPpl(v);
  if (col.key.startsWith('kld.')) return v.toFixed(5);
  if (col.key.startsWith('top1.')) return v.toFixed(2);
  if (col.key.startsWith('acc.') || col.key.startsWith('mmlu.')) return v.toFixed(1);
  if (col.key === 'quant.error') return v.toExponential(3);
  if (col.key === 'cost.size' || col.key === 'cost.bits') return fmtFixed(v, 2);
  if (col.key === 'cost.decode') return formatRate(v);
  return String(v);
}
