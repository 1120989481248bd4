/**
 * Dataset readers (src/data): the first lines of the bundled PIQA, ARC, HellaSwag, WinoGrande and
 * MMLU files and the start of the C4 JSON, each mutated (bytes, truncation, or a JSON value of one
 * line swapped) and read by its loader.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { readC4Docs } from '../../../../src/data/c4.js';
import { dataPath, readText } from '../../../../src/data/textFiles.js';
import { loadArc } from '../../../../src/data/tasks/arc.js';
import { loadHellaswag } from '../../../../src/data/tasks/hellaswag.js';
import { loadMmluSubject } from '../../../../src/data/tasks/mmlu.js';
import { loadPiqa } from '../../../../src/data/tasks/piqa.js';
import { loadWinogrande } from '../../../../src/data/tasks/winogrande.js';
import { DATA } from '../../../helpers/paths.js';
import { jsonPaths, scratchDir, type JsonValue } from '../../mutate.js';
import { applyBinary, applyJson, binaryMutation, jsonMutation, type BinaryMutation, type JsonMutation } from '../mutations.js';
import { expectClean } from '../outcome.js';
import type { FuzzTarget } from '../target.js';

const C4 = 'c4/DaizeDong-Unified-MoE-Compression/c4_valid_part_of_0.json';
/** Each file (relative to the data folder) with the lines kept, and the loader that reads it. */
const FILES: readonly { rel: string; lines?: number; chars?: number; load: (dir: string) => unknown }[] = [
  { rel: 'piqa/valid.jsonl', lines: 30, load: loadPiqa },
  { rel: 'piqa/valid-labels.lst', lines: 30, load: loadPiqa },
  { rel: 'arc/ARC-Easy/ARC-Easy-Test.jsonl', lines: 30, load: (d) => loadArc('ARC-Easy', d) },
  { rel: 'hellaswag/hellaswag_val_full.txt', lines: 6 * 20, load: loadHellaswag },
  { rel: 'winogrande/dev.jsonl', lines: 30, load: loadWinogrande },
  { rel: 'winogrande/dev-labels.lst', lines: 30, load: loadWinogrande },
  { rel: 'mmlu/data/test/anatomy_test.csv', lines: 30, load: (d) => loadMmluSubject('anatomy', 'test', d) },
  { rel: C4, chars: 20_000, load: (d) => readC4Docs(join(d, C4)) },
];

interface Base { texts: Uint8Array[]; jsonLines: (JsonValue[] | undefined)[] }
type Mutation = { file: number; bytes: BinaryMutation } | { file: number; line: number; json: JsonMutation };

function head(rel: string, lines?: number, chars?: number): string {
  const text = readText(dataPath(DATA, rel));
  return lines ? text.split('\n').slice(0, lines).join('\n') + '\n' : text.slice(0, chars);
}

const target: FuzzTarget<Base, Mutation> = {
  setup() {
    const texts = FILES.map((f) => new TextEncoder().encode(head(f.rel, f.lines, f.chars)));
    const jsonLines = FILES.map((f, i) => f.rel.endsWith('.jsonl')
      ? new TextDecoder().decode(texts[i]).trimEnd().split('\n').map((l) => JSON.parse(l) as JsonValue) : undefined);
    return { texts, jsonLines };
  },
  arbitrary(b) {
    const arbs: fc.Arbitrary<Mutation>[] = FILES.map((_, i) => binaryMutation(b.texts[i]!.length, b.texts[i]!.length, []).map((bytes) => ({ file: i, bytes })));
    b.jsonLines.forEach((lines, i) => {
      if (!lines) return;
      arbs.push(fc.nat({ max: lines.length - 1 }).chain((line) => jsonMutation(jsonPaths(lines[line]!)).map((json) => ({ file: i, line, json }))));
    });
    return fc.oneof(...arbs);
  },
  run(b, m) {
    const dir = scratchDir();
    const load = FILES[m.file]!.load;
    FILES.forEach((f, i) => {
      if (f.load !== load) return; // only the files the mutated file's loader reads
      let bytes: Uint8Array | string = b.texts[i]!;
      if (i === m.file && 'bytes' in m) bytes = applyBinary(bytes, m.bytes);
      if (i === m.file && 'json' in m) bytes = b.jsonLines[i]!.map((l, k) => JSON.stringify(k === m.line ? applyJson(l, m.json) : l)).join('\n') + '\n';
      mkdirSync(dirname(join(dir, f.rel)), { recursive: true });
      writeFileSync(join(dir, f.rel), bytes);
    });
    return expectClean(dir, () => load(dir));
  },
};
export default target;
