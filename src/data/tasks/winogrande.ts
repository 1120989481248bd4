/** WinoGrande 1.1 dev (`winogrande/dev.jsonl` + `winogrande/dev-labels.lst`): the HF `winogrande_xl` validation set. */
import { join } from 'node:path';
import { FormatError } from '../../errors.js';
import { defaultDataDir } from '../../paths.js';
import { readJsonl, readLabels, str } from './lines.js';

export interface WinograndeDoc {
  /** contains exactly one `_` blank (the first `_` is the one used) */
  readonly sentence: string;
  readonly option1: string;
  readonly option2: string;
  /** 1 or 2, from the label file */
  readonly answer: number;
}

export function loadWinogrande(dataDir: string = defaultDataDir()): WinograndeDoc[] {
  const file = join(dataDir, 'winogrande', 'dev.jsonl');
  const labelsFile = join(dataDir, 'winogrande', 'dev-labels.lst');
  const recs = readJsonl(file);
  const labels = readLabels(labelsFile, recs.length, [1, 2], file);
  return recs.map((r, i) => {
    const sentence = str(file, r, 'sentence');
    if (!sentence.includes('_')) throw new FormatError(`${file}:${r.line}`, 'sentence has no "_" blank');
    return { sentence, option1: str(file, r, 'option1'), option2: str(file, r, 'option2'), answer: labels[i]! };
  });
}
