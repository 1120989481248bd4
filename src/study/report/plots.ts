import type { TopLevelSpec } from 'vega-lite';
import type { CellRecord } from '../journal.js';
import type { Column } from './table.js';

/**
 * Vega-Lite specs of a study's plots, data inlined (the report is read offline): perplexity, accuracy and
 * KL-divergence against bits per method, and each quantized cell's per-layer reconstruction error.
 * The values come from the table's own columns (table.ts), so a plot and the table never disagree.
 */
export interface Plot {
  readonly id: string;
  readonly title: string;
  /** one sentence under the title: what is drawn and how */
  readonly note: string;
  readonly spec: TopLevelSpec;
}

/** A value against bits for one series (method, options, group) and one panel (data set or task). */
interface BitsPoint { series: string; bits: number; panel: string; value: number; cell: string }
/** The FP cell's value in a panel, drawn as a dashed line. */
interface Baseline { panel: string; value: number }

interface LayerReport { name: string; error: number | null }

const PANEL_WIDTH = 240;
const PANEL_HEIGHT = 180;

/** Series of a cell: the table's Method label, then its group (and activation bits when set). */
function seriesOf(r: CellRecord, method: Column): string {
  const label = String(method.value(r));
  const group = r.cell.group === -1 ? 'per-channel' : `g${r.cell.group}`;
  const abits = r.cell.options?.abits;
  return `${label} ${group}${typeof abits === 'number' ? ` A${abits}` : ''}`;
}

function bitsOf(r: CellRecord, cols: readonly Column[]): number {
  const w = cols.find((c) => c.key === 'wbits')!.value(r);
  return typeof w === 'number' ? w : r.cell.wbits;
}

/** One panel per column that `keep` selects: quantized cells as points, the FP cell as a baseline. */
function bitsData(records: readonly CellRecord[], cols: readonly Column[], keep: (c: Column) => boolean, positiveOnly: boolean) {
  const method = cols.find((c) => c.key === 'method')!;
  const points: BitsPoint[] = [], baselines: Baseline[] = [];
  for (const col of cols.filter(keep)) {
    for (const r of records) {
      const v = col.value(r);
      if (typeof v !== 'number' || !Number.isFinite(v) || (positiveOnly && v <= 0)) continue;
      if (r.cell.method === 'fp16') baselines.push({ panel: col.title, value: v });
      else points.push({ series: seriesOf(r, method), bits: bitsOf(r, cols), panel: col.title, value: v, cell: r.key });
    }
  }
  return { points, baselines, panels: [...new Set(cols.filter(keep).map((c) => c.title))] };
}

/** Faceted value-against-bits chart; `log` puts the value axis on a log scale. Ticks at the bit widths present. */
function bitsSpec(data: ReturnType<typeof bitsData>, yTitle: string, log: boolean): TopLevelSpec {
  const y = {
    field: 'value', type: 'quantitative' as const, title: yTitle, axis: { format: '.4~g' },
    scale: log ? { type: 'log' as const } : { zero: false },
  };
  const bits = [...new Set(data.points.map((p) => p.bits))].sort((a, b) => a - b);
  const cells = {
    transform: [{ filter: "datum.kind === 'cell'" }],
    mark: { type: 'line' as const, point: true },
    encoding: {
      x: { field: 'bits', type: 'quantitative' as const, title: 'bits per weight', scale: { zero: false }, axis: { values: bits, format: '.3~g' } },
      y, color: { field: 'series', type: 'nominal' as const, title: 'method' },
      tooltip: [{ field: 'cell' }, { field: 'bits' }, { field: 'value', format: '.4~g' }],
    },
  };
  // the FP cell's dashed line, only where there is one (an empty layer leaves vega an infinite extent)
  const fp = {
    transform: [{ filter: "datum.kind === 'fp'" }],
    mark: { type: 'rule' as const, strokeDash: [4, 4], color: 'gray' },
    encoding: { y, tooltip: [{ field: 'series' }, { field: 'value', format: '.4~g' }] },
  };
  const values = [...data.points.map((p) => ({ ...p, kind: 'cell' })), ...data.baselines.map((b) => ({ ...b, kind: 'fp', series: 'FP16' }))];
  return {
    data: { values },
    facet: { field: 'panel', type: 'nominal', title: null, sort: data.panels },
    columns: 3,
    spec: { width: PANEL_WIDTH, height: PANEL_HEIGHT, layer: data.baselines.length ? [cells, fp] : [cells] },
    resolve: { scale: { y: 'independent' } },
  };
}

/** Per-layer reconstruction error of every quantized cell with calibration: one panel per method and group, bits as colour. */
function layerErrorPlot(records: readonly CellRecord[], cols: readonly Column[]): Plot | null {
  const method = cols.find((c) => c.key === 'method')!;
  const values: { series: string; bits: number; cell: string; index: number; layer: string; error: number }[] = [];
  for (const r of records) {
    const layers = (r.results.quant as { layers?: LayerReport[] } | null | undefined)?.layers ?? [];
    layers.forEach((l, index) => {
      if (typeof l.error === 'number' && Number.isFinite(l.error) && l.error > 0) {
        values.push({ series: seriesOf(r, method), bits: bitsOf(r, cols), cell: r.key, index, layer: l.name, error: l.error });
      }
    });
  }
  if (values.length === 0) return null;
  return {
    id: 'layer-error', title: 'Per-layer reconstruction error',
    note: 'Mean over calibration sequences of ‖WX − ŴX‖² for each linear layer, in quantization order (log scale); one panel per method and group, one line per bit width.',
    spec: {
      data: { values },
      facet: { field: 'series', type: 'nominal', title: null },
      columns: 2,
      spec: {
        width: 2 * PANEL_WIDTH, height: PANEL_HEIGHT,
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'index', type: 'quantitative', title: 'linear layer (quantization order)' },
          y: { field: 'error', type: 'quantitative', title: 'reconstruction error', scale: { type: 'log' } },
          color: { field: 'bits', type: 'ordinal', title: 'bits', scale: { scheme: 'viridis' } },
          detail: { field: 'cell' },
          tooltip: [{ field: 'cell' }, { field: 'layer' }, { field: 'error', format: '.4~g' }],
        },
      },
    },
  };
}

/** Every plot the records have data for, in the report's order. */
export function studyPlots(records: readonly CellRecord[], cols: readonly Column[]): Plot[] {
  const plots: Plot[] = [];
  const ppl = bitsData(records, cols, (c) => c.key.startsWith('ppl.'), true);
  if (ppl.points.length) {
    plots.push({
      id: 'ppl', title: 'Perplexity against bits',
      note: 'Perplexity of each quantized cell (log scale) against its bits per weight, one panel per data set; the dashed line is the FP cell.',
      spec: bitsSpec(ppl, 'perplexity', true),
    });
  }
  const acc = bitsData(records, cols, (c) => c.key.startsWith('acc.') || c.key.startsWith('mmlu.'), false);
  if (acc.points.length) {
    plots.push({
      id: 'accuracy', title: 'Accuracy against bits',
      note: 'Zero-shot accuracy (%) of each quantized cell against its bits per weight, one panel per task and MMLU category; the dashed line is the FP cell.',
      spec: bitsSpec(acc, 'accuracy (%)', false),
    });
  }
  const kld = bitsData(records, cols, (c) => c.key.startsWith('kld.'), true);
  if (kld.points.length) {
    plots.push({
      id: 'kld', title: 'KL-divergence against bits',
      note: 'Mean per-token KL-divergence from the FP cell (log scale) against bits per weight, one panel per data set.',
      spec: bitsSpec(kld, 'KL-divergence', true),
    });
  }
  const layers = layerErrorPlot(records, cols);
  if (layers) plots.push(layers);
  return plots;
}
