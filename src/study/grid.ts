import { readFileSync } from 'node:fs';
import { FormatError, UsageError } from '../errors.js';

/** One cell of a study: a method at a bit width and group size ('fp16' = the unquantized model). */
export interface Cell {
  readonly method: string;
  readonly wbits: number;
  /** -1 = per output channel */
  readonly group: number;
  readonly sym: boolean;
  readonly actOrder: boolean;
}

export interface Grid { readonly name: string; readonly cells: readonly Cell[] }

export const FP16: Cell = Object.freeze({ method: 'fp16', wbits: 16, group: -1, sym: false, actOrder: false });

function product(methods: string[], wbits: number[], groups: number[], extra: Partial<Cell> = {}): Cell[] {
  const out: Cell[] = [];
  for (const method of methods) for (const w of wbits) for (const g of groups) {
    out.push({ method, wbits: w, group: g, sym: extra.sym ?? false, actOrder: extra.actOrder ?? false });
  }
  return out;
}

/** Built-in grids. `paper-ptq`: the RTN and GPTQ rows of Table 1 of Huang et al. (2024) plus FP16. */
export const BUILTIN_GRIDS: Readonly<Record<string, () => Grid>> = Object.freeze({
  'paper-ptq': () => ({ name: 'paper-ptq', cells: [FP16, ...product(['rtn', 'gptq'], [8, 4, 3, 2], [128, -1])] }),
  /** the README's default study on the bundled model: minutes on two cores */
  quick: () => ({ name: 'quick', cells: [FP16, ...product(['rtn', 'gptq'], [8, 4, 3], [32])] }),
});

/** Stable file-name-safe key of a cell. */
export function cellKey(c: Cell): string {
  if (c.method === 'fp16') return 'fp16';
  return `${c.method}-w${c.wbits}-${c.group === -1 ? 'pc' : `g${c.group}`}${c.sym ? '-sym' : ''}${c.actOrder ? '-act' : ''}`;
}

function checkCell(c: Partial<Cell>, where: string): Cell {
  const method = String(c.method ?? '');
  if (!method) throw new UsageError(`${where}: a cell needs a method`);
  if (method === 'fp16') return FP16;
  const wbits = Number(c.wbits), group = Number(c.group ?? -1);
  if (!Number.isInteger(wbits) || wbits < 1 || wbits > 8) throw new UsageError(`${where}: wbits must be 1–8 (got ${c.wbits})`);
  if (!Number.isInteger(group) || (group !== -1 && group < 1)) throw new UsageError(`${where}: group must be -1 or a positive integer (got ${c.group})`);
  return { method, wbits, group, sym: !!c.sym, actOrder: !!c.actOrder };
}

/**
 * A grid file is JSON: either {"cells": [{"method": "gptq", "wbits": 4, "group": 128}, ...]}
 * or a product {"methods": [...], "wbits": [...], "groups": [...], "fp16": true, "sym": false, "actOrder": false}.
 */
export function parseGrid(spec: string): Grid {
  const builtin = BUILTIN_GRIDS[spec];
  if (builtin) return builtin();
  let json: any;
  try { json = JSON.parse(readFileSync(spec, 'utf8')); } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new UsageError(`--grid: '${spec}' is neither a built-in grid (${Object.keys(BUILTIN_GRIDS).join(', ')}) nor a file`);
    throw new FormatError(spec, `not a valid grid JSON file: ${err.message}`);
  }
  let cells: Cell[];
  if (Array.isArray(json.cells)) cells = json.cells.map((c: Partial<Cell>, i: number) => checkCell(c, `${spec} cell ${i}`));
  else if (Array.isArray(json.methods)) {
    cells = product(json.methods, json.wbits ?? [4], json.groups ?? [128], json).map((c, i) => checkCell(c, `${spec} cell ${i}`));
    if (json.fp16 !== false) cells.unshift(FP16);
  } else throw new FormatError(spec, 'a grid needs "cells" or "methods"');
  const seen = new Set<string>();
  cells = cells.filter((c) => !seen.has(cellKey(c)) && !!seen.add(cellKey(c)));
  return { name: json.name ?? spec, cells };
}
