/**
 * ARC (AI2 jsonl, `arc/ARC-Easy/ARC-Easy-Test.jsonl`, `arc/ARC-Challenge/ARC-Challenge-Test.jsonl`):
 * `{"id", "question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}`. Labels are A..E or 1..5.
 */
import { join } from 'node:path';
import { FormatError } from '../../errors.js';
import { defaultDataDir } from '../../paths.js';
import { readJsonl, str, type JsonLine } from './lines.js';

export type ArcSubset = 'ARC-Easy' | 'ARC-Challenge';
export type ArcSplit = 'Train' | 'Dev' | 'Test';

export interface ArcDoc {
  readonly id: string;
  readonly question: string;
  readonly choices: readonly string[];
  readonly labels: readonly string[];
  /** index of `answerKey` in `labels` */
  readonly gold: number;
}

function arcFile(dataDir: string, subset: ArcSubset, split: ArcSplit): string {
  return join(dataDir, 'arc', subset, `${subset}-${split}.jsonl`);
}

export function loadArc(subset: ArcSubset, dataDir: string = defaultDataDir(), split: ArcSplit = 'Test'): ArcDoc[] {
  const file = arcFile(dataDir, subset, split);
  return readJsonl(file).map((r) => parseArc(file, r));
}

function parseArc(file: string, r: JsonLine): ArcDoc {
  const where = `${file}:${r.line}`;
  const q = r.value.question as { stem?: unknown; choices?: unknown } | undefined;
  if (!q || typeof q !== 'object' || typeof q.stem !== 'string' || !Array.isArray(q.choices) || q.choices.length < 2) {
    throw new FormatError(where, 'field "question" must be {stem: string, choices: [{text, label}, ...]}');
  }
  const choices: string[] = [];
  const labels: string[] = [];
  for (const c of q.choices as { text?: unknown; label?: unknown }[]) {
    if (typeof c?.text !== 'string' || typeof c?.label !== 'string') {
      throw new FormatError(where, 'each choice must have string "text" and "label"');
    }
    choices.push(c.text);
    labels.push(c.label);
  }
  const answerKey = str(file, r, 'answerKey');
  const gold = labels.indexOf(answerKey);
  if (gold < 0) throw new FormatError(where, `answerKey ${JSON.stringify(answerKey)} is not one of the labels ${labels.join(',')}`);
  return { id: str(file, r, 'id'), question: q.stem, choices, labels, gold };
}
