import { readFileSync } from 'node:fs';
import { FormatError, UsageError } from '../errors.js';
import type { ScaleDtype } from '../quant/core/grid.js';
import type { OptionValues } from '../quant/method.js';
import { allOptions, optionKeyParts, resolveOptions } from '../quant/options.js';
import { getMethod, METHODS } from '../quant/registry.js';
import { RECIPES, type FinetuneMethod } from '../quant/lora/recipes.js';

/** One cell of a study: a method at a bit width and group size with its options ('fp16' = the unquantized model). */
export interface Cell {
  readonly method: string;
  readonly wbits: number;
  /** -1 = per output channel */
  readonly group: number;
  readonly sym: boolean;
  /** 'f32' (the paper's protocol) or 'f16' (scales rounded through fp16, AutoGPTQ's stored convention) */
  readonly scaleDtype: ScaleDtype;
  /** the method's own options (its schema in quant/method.ts), checked, defaults filled in */
  readonly options: OptionValues;
  /** a LoRA-finetuning cell (method qlora, irqlora or qalora: quant/lora/recipes.ts): its training run */
  readonly finetune?: { readonly steps: number; readonly data?: string };
}

export interface Grid { readonly name: string; readonly cells: readonly Cell[] }

/** Settings for every cell that does not set them itself (`lowbit study --scale-dtype`, method flags). */
export interface GridDefaults {
  readonly scaleDtype?: ScaleDtype;
  /** optimizer steps of fine-tuning cells that do not set "steps" (`lowbit study --ft-steps`, default 10) */
  readonly ftSteps?: number;
  /** method options by name; each applies to the cells whose method takes it */
  readonly options?: Readonly<Record<string, unknown>>;
}

export const FP16: Cell = Object.freeze({ method: 'fp16', wbits: 16, group: -1, sym: false, scaleDtype: 'f32', options: Object.freeze({}) });

type RawCell = Readonly<Record<string, unknown>>;

function product(methods: readonly unknown[], wbits: readonly unknown[], groups: readonly unknown[], extra: RawCell = {}): RawCell[] {
  const out: RawCell[] = [];
  for (const method of methods) for (const w of wbits) for (const g of groups) out.push({ ...extra, method, wbits: w, group: g });
  return out;
}

/**
 * Built-in grids. `paper-ptq`: the PTQ rows of Table 1 of Huang et al. (2024) that lowbit implements, plus FP16:
 * RTN, GPTQ and AWQ at W8/4/3/2 with groups of 128 and per channel, SmoothQuant W8A8, W6A6, W4A4 (per channel),
 * QuIP W4/3/2 (per channel).
 */
export const BUILTIN_GRIDS: Readonly<Record<string, () => RawCell[]>> = Object.freeze({
  'paper-ptq': () => [
    ...product(['rtn', 'gptq', 'awq'], [8, 4, 3, 2], [128, -1]),
    ...[8, 6, 4].map((b) => ({ method: 'smoothquant', wbits: b, abits: b, group: -1 })),
    ...[4, 3, 2].map((b) => ({ method: 'quip', wbits: b, group: -1 })),
    ...[6 / 7, 0.9].map((f) => ({ method: 'pbllm', wbits: 1, group: 128, lowFrac: f })), // PB-LLM 2 and 1.7 bits g128 (low fraction 6/7, 0.9)
    { method: 'billm', wbits: 1, group: 128 }, // BiLLM, 1.1 bits as the paper counts them
    { method: 'dbllm', wbits: 2, group: 128, steps: 200 }, // DB-LLM W2 g128: FDB + 200 distillation steps (lowbit's choice)
  ],
  /** the README's default study on the bundled model: minutes on two cores */
  quick: () => product(['rtn', 'gptq'], [8, 4, 3], [32]),
  /**
   * Table 3 of Huang et al. (2024) and QA-LoRA beside it: NF4 and ICQ without fine-tuning (double-quantized,
   * as QLoRA and IR-QLoRA run them), then QLoRA, IR-QLoRA and QA-LoRA fine-tuned on Alpaca
   * (`--ft-steps`); scored on MMLU by category and the five zero-shot tasks (GRID_EVAL).
   */
  'paper-loraft': () => [
    { method: 'nf4', wbits: 4, group: 64, doubleQuant: true },
    { method: 'icq', wbits: 4, group: 64, doubleQuant: true },
    { method: 'qlora' }, { method: 'irqlora' }, { method: 'qalora' },
  ],
});

/** What a built-in grid is scored on when the command line does not say (`--ppl`, `--tasks`). */
export const GRID_EVAL: Readonly<Record<string, { readonly ppl: readonly string[]; readonly tasks: readonly string[] }>> = Object.freeze({
  'paper-loraft': { ppl: [], tasks: ['mmlu', 'piqa', 'arc_easy', 'arc_challenge', 'hellaswag', 'winogrande'] },
});

/** Stable file-name-safe key of a cell: method, bits, group, then what differs from the defaults. */
export function cellKey(c: Cell): string {
  if (c.method === 'fp16') return 'fp16';
  if (c.finetune) return `${c.method}-s${c.finetune.steps}`;
  const parts = [c.method, `w${c.wbits}`, c.group === -1 ? 'pc' : `g${c.group}`];
  if (c.sym) parts.push('sym');
  parts.push(...optionKeyParts(getMethod(c.method), c.options));
  if (c.scaleDtype === 'f16') parts.push('f16s');
  return parts.join('-');
}

const CELL_FIELDS = new Set(['method', 'wbits', 'group', 'sym', 'scaleDtype']);

function checkCell(raw: unknown, where: string, defaults: GridDefaults): Cell {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UsageError(`${where}: a cell must be an object like {"method": "gptq", "wbits": 4, "group": 128}`);
  const c = raw as RawCell;
  if (typeof c.method !== 'string' || !c.method) throw new UsageError(`${where}: a cell needs a method name`);
  if (c.method === 'fp16') return FP16;
  if (Object.hasOwn(RECIPES, c.method)) return finetuneCell(c, where, defaults);
  let method;
  try { method = getMethod(c.method); } catch (e) { throw new UsageError(`${where}: ${(e as Error).message}`); }
  const wbits = Number(c.wbits), group = Number(c.group ?? -1);
  if (!Number.isInteger(wbits) || wbits < 1 || wbits > 8) throw new UsageError(`${where}: wbits must be 1–8 (got ${JSON.stringify(c.wbits ?? null)})`);
  if (!Number.isInteger(group) || (group !== -1 && group < 1)) throw new UsageError(`${where}: group must be -1 or a positive integer (got ${JSON.stringify(c.group)})`);
  const scaleDtype = c.scaleDtype ?? defaults.scaleDtype ?? 'f32';
  if (scaleDtype !== 'f32' && scaleDtype !== 'f16') throw new UsageError(`${where}: scaleDtype must be "f32" or "f16" (got ${JSON.stringify(scaleDtype)})`);
  if (c.sym !== undefined && typeof c.sym !== 'boolean') throw new UsageError(`${where}: sym must be true or false (got ${JSON.stringify(c.sym)})`);
  const own = Object.fromEntries(Object.entries(c).filter(([k]) => !CELL_FIELDS.has(k)));
  const inherited = Object.fromEntries(Object.entries(defaults.options ?? {}).filter(([k]) => k in method.options && !(k in own)));
  let options: OptionValues;
  try {
    options = resolveOptions(method, { ...inherited, ...own }, allOptions(METHODS));
    method.validate?.({ bits: wbits, groupSize: group, sym: c.sym === true, scaleDtype }, options);
  } catch (e) { throw new UsageError(`${where}: ${(e as Error).message}`); }
  return { method: method.name, wbits, group, sym: c.sym === true, scaleDtype, options };
}

/** A fine-tuning cell: {"method": "qlora" | "irqlora" | "qalora", "steps"?: N, "data"?: file}; bits and group are the recipe's base. */
function finetuneCell(c: RawCell, where: string, defaults: GridDefaults): Cell {
  const r = RECIPES[c.method as FinetuneMethod];
  const extra = Object.keys(c).filter((k) => !['method', 'steps', 'data'].includes(k));
  if (extra.length) throw new UsageError(`${where}: a ${r.method} cell takes "steps" and "data" only (the recipe fixes the rest), not ${extra.map((k) => JSON.stringify(k)).join(', ')}`);
  const steps = Number(c.steps ?? defaults.ftSteps ?? 10);
  if (!Number.isSafeInteger(steps) || steps < 1) throw new UsageError(`${where}: steps must be a positive integer (got ${JSON.stringify(c.steps ?? defaults.ftSteps)})`);
  if (c.data !== undefined && typeof c.data !== 'string') throw new UsageError(`${where}: data must be a file path`);
  const group = r.base.group ?? 64;
  return { method: r.method, wbits: r.base.bits, group, sym: false, scaleDtype: 'f32', options: {}, finetune: { steps, ...(c.data ? { data: c.data } : {}) } };
}

/** Reads a grid file's cells (before checking): a list, or a product with shared settings. */
function readGridFile(spec: string): { name: string; cells: unknown[] } {
  let json: unknown;
  try { json = JSON.parse(readFileSync(spec, 'utf8')); } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new UsageError(`--grid: '${spec}' is neither a built-in grid (${Object.keys(BUILTIN_GRIDS).join(', ')}) nor a file`);
    if (err.code) throw new FormatError(spec, `cannot read the grid file (${err.code})`);
    throw new FormatError(spec, `not a valid grid JSON file: ${err.message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FormatError(spec, 'a grid file must hold a JSON object with "cells" or "methods"');
  const g = json as Record<string, unknown>;
  const list = (k: string, dflt: unknown[]): unknown[] => {
    const v = g[k] ?? dflt;
    if (!Array.isArray(v)) throw new FormatError(spec, `"${k}" must be a list`);
    return v;
  };
  const name = typeof g.name === 'string' ? g.name : spec;
  if (g.cells !== undefined) return { name, cells: list('cells', []) };
  if (g.methods === undefined) throw new FormatError(spec, 'a grid needs "cells" or "methods"');
  const shared = Object.fromEntries(Object.entries(g).filter(([k]) => !['name', 'cells', 'methods', 'wbits', 'groups', 'fp16'].includes(k)));
  const cells: unknown[] = product(list('methods', []), list('wbits', [4]), list('groups', [128]), shared);
  if (g.fp16 !== false) cells.unshift(FP16);
  return { name, cells };
}

/**
 * A built-in grid's name, or a JSON grid file: {"cells": [{"method": "gptq", "wbits": 4, "group": 128, "actOrder": true}, ...]}
 * or a product {"methods": [...], "wbits": [...], "groups": [...], "fp16": true, ...settings for every cell}. A cell may set
 * "sym", "scaleDtype" ("f32" or "f16") and its method's options (e.g. "actOrder", "percdamp", "abits", "alpha"); what it
 * does not set comes from `defaults`. Built-in grids start with FP16.
 */
export function parseGrid(spec: string, defaults: GridDefaults = {}): Grid {
  const builtin = Object.hasOwn(BUILTIN_GRIDS, spec) ? BUILTIN_GRIDS[spec] : undefined;
  const { name, cells: raw } = builtin ? { name: spec, cells: [FP16, ...builtin()] } : readGridFile(spec);
  const where = builtin ? `grid ${spec}` : spec;
  let cells = raw.map((c, i) => checkCell(c, `${where} cell ${i}`, defaults));
  const seen = new Set<string>();
  cells = cells.filter((c) => !seen.has(cellKey(c)) && !!seen.add(cellKey(c)));
  if (cells.length === 0) throw new FormatError(spec, 'the grid has no cells');
  for (const [opt, v] of Object.entries(defaults.options ?? {})) {
    if (v !== undefined && !cells.some((c) => c.method !== 'fp16' && !c.finetune && opt in getMethod(c.method).options)) {
      throw new UsageError(`${allOptions(METHODS).get(opt)?.flag ?? opt} applies to no cell of the grid ${name}`);
    }
  }
  return { name, cells };
}

/** A cell as a grid file writes it (the inverse of the checks above): what a queue job carries. */
export function rawCell(c: Cell): Record<string, unknown> {
  if (c.method === 'fp16') return { method: 'fp16' };
  if (c.finetune) return { method: c.method, steps: c.finetune.steps, ...(c.finetune.data ? { data: c.finetune.data } : {}) };
  return { method: c.method, wbits: c.wbits, group: c.group, sym: c.sym, scaleDtype: c.scaleDtype, ...c.options };
}

/** One cell received as JSON (a queue job's), checked as a grid file's cell is; `where` names it in errors. */
export function checkRawCell(raw: unknown, where: string): Cell {
  return checkCell(raw, where, {});
}
