import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadArc } from '../../src/data/tasks/arc.js';
import { parseCsv } from '../../src/data/tasks/csv.js';
import { loadHellaswag, readHellaswagJsonl, readHellaswagTxt } from '../../src/data/tasks/hellaswag.js';
import { listMmluSubjects, loadMmlu, readMmluCsv } from '../../src/data/tasks/mmlu.js';
import { loadPiqa } from '../../src/data/tasks/piqa.js';
import { loadWinogrande } from '../../src/data/tasks/winogrande.js';
import { FormatError } from '../../src/errors.js';
import { HAS_TASK_DATA, NO_TASK_DATA_REASON, DATA } from '../helpers/paths.js';

const skip = HAS_TASK_DATA ? false : NO_TASK_DATA_REASON;

function tmp(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-tasks-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** Asserts a FormatError whose message starts with `where` (e.g. "file:3"). */
function throwsAt(fn: () => unknown, where: string, detail?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${e}`);
    assert.ok(e.message.startsWith(`${where}: `), `message "${e.message}" should start with "${where}: "`);
    if (detail) assert.match(e.message, detail);
    assert.equal(e.message.split('\n').length, 1, 'one line');
    return true;
  });
}

test('example counts of the shared data', { skip }, () => {
  const piqa = loadPiqa(DATA);
  assert.equal(piqa.length, 1838);
  assert.deepEqual([piqa.filter((d) => d.label === 0).length, piqa.filter((d) => d.label === 1).length], [910, 928]);
  assert.equal(piqa[0]!.goal, "How do I ready a guinea pig cage for it's new occupants?");
  assert.equal(piqa[0]!.label, 0);
  assert.equal(loadArc('ARC-Easy', DATA).length, 2376);
  assert.equal(loadArc('ARC-Challenge', DATA).length, 1172);
  const wg = loadWinogrande(DATA);
  assert.equal(wg.length, 1267);
  assert.deepEqual([wg.filter((d) => d.answer === 1).length, wg.filter((d) => d.answer === 2).length], [628, 639]);
  const hs = loadHellaswag(DATA);
  assert.equal(hs.layout, 'llamacpp-txt');
  assert.equal(hs.docs.length, 10042);
  assert.deepEqual([0, 1, 2, 3].map((l) => hs.docs.filter((d) => d.label === l).length), [2515, 2485, 2584, 2458]);
  assert.equal(hs.docs[0]!.ctx, 'Roof shingle removal: A man is sitting on a roof. he');
  assert.equal(hs.docs[0]!.endings[3], 'starts pulling up roofing on a roof.');
});

test('ARC: numeric labels 1..4 give the index of answerKey', { skip }, () => {
  const docs = loadArc('ARC-Easy', DATA);
  const d = docs[14]!; // line 15: NYSEDREGENTS_2015_8_28, labels 1..4, answerKey "2"
  assert.equal(d.id, 'NYSEDREGENTS_2015_8_28');
  assert.deepEqual(d.labels, ['1', '2', '3', '4']);
  assert.equal(d.gold, 1);
  assert.equal(d.choices[d.gold], 'elements');
  assert.equal(docs.filter((x) => x.choices.length === 5).length, 4);
});

test('MMLU: 57 subjects, 14,042 test and 285 dev rows; fields equal Python csv.reader', { skip }, () => {
  assert.equal(listMmluSubjects(DATA, 'test').length, 57);
  // golden figures from Python's csv.reader over the same files: rows, total characters, fields with a newline, quote chars
  for (const [split, rows, chars, withNewline, quotes] of [['test', 14042, 6222448, 1131, 4347], ['dev', 285, 110283, 36, 81]] as const) {
    const subjects = loadMmlu(split, DATA);
    assert.equal(subjects.length, 57);
    const all = subjects.flatMap((s) => s.rows);
    assert.equal(all.length, rows);
    const fields = all.flatMap((r) => [r.question, ...r.choices, r.answer]);
    assert.equal(fields.reduce((a, f) => a + [...f].length, 0), chars);
    assert.equal(fields.filter((f) => f.includes('\n')).length, withNewline);
    assert.equal(fields.reduce((a, f) => a + f.split('"').length - 1, 0), quotes);
  }
  const aa = loadMmlu('dev', DATA)[0]!;
  assert.equal(aa.subject, 'abstract_algebra');
  assert.deepEqual(aa.rows[1]!.choices, ['True, True', 'False, False', 'True, False', 'False, True']);
});

test('CSV: quoted commas, doubled quotes, newlines inside quotes, CRLF, blank lines, no header', () => {
  const recs = parseCsv('a,"b, c","say ""hi""\nthere"\r\n\nx,,""\nlast,row', 'f.csv');
  assert.deepEqual(recs, [
    { line: 1, fields: ['a', 'b, c', 'say "hi"\nthere'] },
    { line: 4, fields: ['x', '', ''] },
    { line: 5, fields: ['last', 'row'] },
  ]);
});

test('CSV/MMLU: malformed rows are reported as file:line', () => {
  throwsAt(() => parseCsv('a,b\n"open,\nstill open', 'f.csv'), 'f.csv:2', /not closed/);
  throwsAt(() => parseCsv('a,b\n"q"x,c\n', 'f.csv'), 'f.csv:2', /after a closing quote/);
  const dir = tmp({
    'few.csv': 'Q1,a,b,c,d,A\n"Q2\nspans two lines",a,b,c,d,B\nQ3,a,b,c,D\n',
    'letter.csv': 'Q1,a,b,c,d,A\nQ2,a,b,c,d,E\n',
  });
  throwsAt(() => readMmluCsv(join(dir, 'few.csv')), `${join(dir, 'few.csv')}:4`, /expected 6 fields/);
  throwsAt(() => readMmluCsv(join(dir, 'letter.csv')), `${join(dir, 'letter.csv')}:2`, /answer "E"/);
});

test('jsonl: a malformed line is reported as file:line', () => {
  const dir = tmp({
    'piqa/valid.jsonl': '{"goal": "g1", "sol1": "a", "sol2": "b"}\n{"goal": "g2", "sol1": "a", "sol2": "b"}\n{"goal": "g3", "sol1": "a",\n',
    'piqa/valid-labels.lst': '0\n1\n0\n',
    'winogrande/dev.jsonl': '{"sentence": "A _ b.", "option1": "x", "option2": "y"}\n{"sentence": "no blank", "option1": "x", "option2": "y"}\n',
    'winogrande/dev-labels.lst': '1\n2\n',
    'hellaswag/bad.jsonl': '{"activity_label": "A", "ctx_a": "b", "ctx_b": "c", "endings": ["1", "2", "3"], "label": 0}\n',
    'arc/ARC-Easy/ARC-Easy-Test.jsonl': '{"id": "x", "question": {"stem": "s", "choices": [{"text": "t", "label": "A"}, {"text": "u", "label": "B"}]}, "answerKey": "C"}\n',
  });
  throwsAt(() => loadPiqa(dir), `${join(dir, 'piqa/valid.jsonl')}:3`, /not valid JSON/);
  throwsAt(() => loadWinogrande(dir), `${join(dir, 'winogrande/dev.jsonl')}:2`, /no "_"/);
  throwsAt(() => readHellaswagJsonl(join(dir, 'hellaswag/bad.jsonl')), `${join(dir, 'hellaswag/bad.jsonl')}:1`, /4 endings/);
  throwsAt(() => loadArc('ARC-Easy', dir), `${join(dir, 'arc/ARC-Easy/ARC-Easy-Test.jsonl')}:1`, /answerKey "C"/);
});

test('label file length different from the data file', () => {
  const dir = tmp({
    'piqa/valid.jsonl': '{"goal": "g1", "sol1": "a", "sol2": "b"}\n{"goal": "g2", "sol1": "a", "sol2": "b"}\n',
    'piqa/valid-labels.lst': '0\n1\n1\n',
    'winogrande/dev.jsonl': '{"sentence": "A _ b.", "option1": "x", "option2": "y"}\n',
    'winogrande/dev-labels.lst': '1\n3\n',
  });
  throwsAt(() => loadPiqa(dir), join(dir, 'piqa/valid-labels.lst'), /3 labels but .*valid\.jsonl has 2 examples/);
  throwsAt(() => loadWinogrande(dir), join(dir, 'winogrande/dev-labels.lst'), /2 labels but .*dev\.jsonl has 1 examples/);
  writeFileSync(join(dir, 'winogrande/dev-labels.lst'), '3\n');
  throwsAt(() => loadWinogrande(dir), `${join(dir, 'winogrande/dev-labels.lst')}:1`, /not one of 1, 2/);
});

test('HellaSwag text layout: 6 lines per example, label line checked', () => {
  const dir = tmp({
    'hellaswag/hellaswag_val_full.txt': 'Act: ctx\n2\ne0\ne1\ne2\ne3\nAct2: ctx2\n4\ne0\ne1\ne2\ne3\n',
    'short.txt': 'Act: ctx\n2\ne0\ne1\ne2\n',
  });
  const f = join(dir, 'hellaswag/hellaswag_val_full.txt');
  throwsAt(() => readHellaswagTxt(f), `${f}:8`, /label "4"/);
  throwsAt(() => readHellaswagTxt(join(dir, 'short.txt')), join(dir, 'short.txt'), /5 lines, not a multiple of 6/);
  writeFileSync(f, 'Act: ctx\n2\ne0\ne1\ne2\ne3\n');
  assert.deepEqual(loadHellaswag(dir), { layout: 'llamacpp-txt', file: f, docs: [{ ctx: 'Act: ctx', label: 2, endings: ['e0', 'e1', 'e2', 'e3'] }] });
  // the original jsonl layout wins when present
  writeFileSync(join(dir, 'hellaswag/hellaswag_val.jsonl'), '{"activity_label": "A", "ctx_a": "b", "ctx_b": "c", "endings": ["1", "2", "3", "4"], "label": "3"}\n');
  const data = loadHellaswag(dir);
  assert.equal(data.layout, 'jsonl');
  assert.deepEqual(data.docs, [{ activity_label: 'A', ctx_a: 'b', ctx_b: 'c', endings: ['1', '2', '3', '4'], label: 3 }]);
});
