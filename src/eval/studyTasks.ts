import type { TaskResult } from './tasks/registry.js';

/** A task result reduced to what the study tables show (acc in [0,1]); MMLU by category. */
export function taskColumnsForStudy(results: readonly TaskResult[]): { tasks: Record<string, { acc: number; acc_norm?: number; n: number; protocol: string; bos: boolean }>; mmlu?: Record<string, number> } {
  const tasks: Record<string, { acc: number; acc_norm?: number; n: number; protocol: string; bos: boolean }> = {};
  let mmlu: Record<string, number> | undefined;
  for (const r of results) {
    if (r.mmlu) {
      const c = r.mmlu.categories;
      mmlu = { humanities: c.Humanities.acc, stem: c.STEM.acc, social: c['Social Sciences'].acc, other: c.Other.acc, avg: r.acc };
    } else {
      tasks[r.task] = { acc: r.acc, ...(r.acc_norm === undefined ? {} : { acc_norm: r.acc_norm }), n: r.n, protocol: r.protocol, bos: r.bos };
    }
  }
  return { tasks, ...(mmlu ? { mmlu } : {}) };
}
