/** PIQA validation (`piqa/valid.jsonl` + `piqa/valid-labels.lst`, the authors' release). */
import { join } from 'node:path';
import { defaultDataDir } from '../../paths.js';
import { readJsonl, readLabels, str } from './lines.js';

export interface PiqaDoc {
  readonly goal: string;
  readonly sol1: string;
  readonly sol2: string;
  /** 0 = sol1, 1 = sol2 */
  readonly label: number;
}

export function loadPiqa(dataDir: string = defaultDataDir()): PiqaDoc[] {
  const file = join(dataDir, 'piqa', 'valid.jsonl');
  const labelsFile = join(dataDir, 'piqa', 'valid-labels.lst');
  const recs = readJsonl(file);
  const labels = readLabels(labelsFile, recs.length, [0, 1], file);
  return recs.map((r, i) => ({ goal: str(file, r, 'goal'), sol1: str(file, r, 'sol1'), sol2: str(file, r, 'sol2'), label: labels[i]! }));
}
