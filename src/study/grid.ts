import { readFileSync } from 'node:fs';
import { FormatError, UsageError } from '../errors.js';
import type { ScaleDtype } from '../quant/core/grid.js';

/** One cell of a study: a method at a bit width and group size ('fp16' = the unquantized model). */
export interface Cell {
  readonly method: string;
  readonly wbits: number;
  /** -1 = per output channel */
  readonly group: number;
  readonly sym: boolean;
  readonly actOrder: boolean;
  /** 'f32' (the paper's protocol) or 'f16' (scales rounded through fp16, AutoGPTQ's stored convention) */
  readonly scaleDtype: ScaleDtype;
}

export interface Grid { readonly name: string; readonly cells: readonly Cell[] }

export const FP16: Cell = Object.freeze({ method: 'fp16', wbits: 16, group: -1, sym: false, actOrder: false, scaleDtype: 'f32' });

function product(methods: string[], wbits: number[], groups: number[]): Partial<Cell>[] {
  const out: Partial<Cell>[] = [];
  for (const method of methods) for (const w of wbits) for (const g of groups) out.push({ method, wbits: w, group: g });
  return out;
}

/** Built-in grids. `paper-ptq`: the RTN and GPTQ rows of Table 1 of Huang et al. (2024) plus FP16. */
export const BUILTIN_GRIDS: Readonly<Record<string, () => Grid>> = Object.freeze({
  'paper-ptq': () => builtin('paper-ptq', product(['rtn', 'gptq'], [8, 4, 3, 2], [128, -1])),
  /** the README's default study on the bundled model: minutes on two cores */
  quick: () => builtin('quick', product(['rtn', 'gptq'], [8, 4, 3], [32])),
});

function builtin(name: string, cells: Partial<Cell>[]): Grid {
  return { name, cells: [FP16, ...cells.map((c, i) => checkCell(c, `grid ${name} cell ${i}`))] };
}

/** The grid with every quantized cell's scale dtype set to `dtype` unless the grid file chose one. */
export function withScaleDtype(grid: Grid, dtype: ScaleDtype, explicit: ReadonlySet<Cell> = new Set()): Grid {
  return { ...grid, cells: grid.cells.map((c) => (c.method === 'fp16' || explicit.has(c) ? c : { ...c, scaleDtype: dtype })) };
}

/** Stable file-name-safe key of a cell. */
export function cellKey(c: Cell): string {
  if (c.method === 'fp16') return 'fp16';
  return `${c.method}-w${c.wbits}-${c.group === -1 ? 'pc' : `g${c.group}`}${c.sym ? '-sym' : ''}${c.actOrder ? '-act' : ''}${c.scaleDtype === 'f16' ? '-f16s' : ''}`;
}

function checkCell(raw: unknown, where: string): Cell {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UsageError(`${where}: a cell must be an object like {"method": "gptq", "wbits": 4, "group": 128}`);
  const c = raw as Record<string, unknown>;
  if (typeof c.method !== 'string' || !c.method) throw new UsageError(`${where}: a cell needs a method name`);
  const method = c.method;
  if (method === 'fp16') return FP16;
  const wbits = Number(c.wbits), group = Number(c.group ?? -1);
  if (!Number.isInteger(wbits) || wbits < 1 || wbits > 8) throw new UsageError(`${where}: wbits must be 1–8 (got ${JSON.stringify(c.wbits ?? null)})`);
  if (!Number.isInteger(group) || (group !== -1 && group < 1)) throw new UsageError(`${where}: group must be -1 or a positive integer (got ${JSON.stringify(c.group)})`);
  const scaleDtype = c.scaleDtype ?? 'f32';
  if (scaleDtype !== 'f32' && scaleDtype !== 'f16') throw new UsageError(`${where}: scaleDtype must be "f32" or "f16" (got ${JSON.stringify(scaleDtype)})`);
  for (const k of ['sym', 'actOrder'] as const) {
    if (c[k] !== undefined && typeof c[k] !== 'boolean') throw new UsageError(`${where}: ${k} must be true or false (got ${JSON.stringify(c[k])})`);
  }
  return { method, wbits, group, sym: c.sym === true, actOrder: c.actOrder === true, scaleDtype };
}

/**
 * A grid file is JSON: either {"cells": [{"method": "gptq", "wbits": 4, "group": 128}, ...]}
 * or a product {"methods": [...], "wbits": [...], "groups": [...], "fp16": true, "sym": false, "actOrder": false}.
 * A cell may set "scaleDtype" ("f32" or "f16"); cells that do not take `lowbit study --scale-dtype`.
 * Returns the grid and the cells whose scale dtype the file set.
 */
export function parseGrid(spec: string): Grid & { readonly explicitScaleDtype: ReadonlySet<Cell> } {
  const builtinGrid = BUILTIN_GRIDS[spec];
  if (builtinGrid) return { ...builtinGrid(), explicitScaleDtype: new Set() };
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
  let raw: unknown[];
  if (g.cells !== undefined) raw = list('cells', []);
  else if (g.methods !== undefined) {
    raw = product(list('methods', []) as string[], list('wbits', [4]) as number[], list('groups', [128]) as number[])
      .map((c) => ({ ...c, sym: g.sym, actOrder: g.actOrder, scaleDtype: g.scaleDtype }));
    if (g.fp16 !== false) raw.unshift(FP16);
  } else throw new FormatError(spec, 'a grid needs "cells" or "methods"');
  const explicit = new Set<Cell>();
  let cells = raw.map((c, i) => {
    const cell = checkCell(c, `${spec} cell ${i}`);
    if (typeof c === 'object' && c !== null && (c as Record<string, unknown>).scaleDtype !== undefined) explicit.add(cell);
    return cell;
  });
  const seen = new Set<string>();
  cells = cells.filter((c) => !seen.has(cellKey(c)) && !!seen.add(cellKey(c)));
  if (cells.length === 0) throw new FormatError(spec, 'the grid has no cells');
  return { name: typeof g.name === 'string' ? g.name : spec, cells, explicitScaleDtype: explicit };
}
