import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listMmluSubjects, loadMmlu, type MmluRow } from '../../src/data/tasks/mmlu.js';
import { UsageError } from '../../src/errors.js';
import { buildMmluPrompt, letterTokenIds, mmluPrompt, mmluScores } from '../../src/eval/tasks/mmlu.js';
import { MMLU_CATEGORIES, mmluCategory } from '../../src/eval/tasks/mmluCategories.js';
import { TASKS, evaluateTask, parseTasks } from '../../src/eval/tasks/registry.js';
import { HAS_TASK_DATA, NO_TASK_DATA_REASON, DATA } from '../helpers/paths.js';
import { CHAR_BOS, TableScorer, charTokenizer } from './fakes.js';

const tok = charTokenizer();
const row = (question: string, answer: string): MmluRow =>
  ({ question, choices: ['w', 'x', 'y', 'z'], answer, gold: ['A', 'B', 'C', 'D'].indexOf(answer) });

test('category averages are over questions, not over subjects', () => {
  const s = mmluScores({
    abstract_algebra: { n: 10, correct: 7 }, // STEM (math)
    college_physics: { n: 30, correct: 15 }, // STEM (physics)
    philosophy: { n: 20, correct: 5 }, // Humanities
    sociology: { n: 40, correct: 30 }, // Social Sciences (culture)
    human_sexuality: { n: 10, correct: 10 }, // Social Sciences (culture)
    virology: { n: 50, correct: 25 }, // Other (health)
  });
  assert.deepEqual(s.categories, {
    Humanities: { n: 20, acc: 0.25 },
    STEM: { n: 40, acc: 22 / 40 }, // not (0.7 + 0.5) / 2
    'Social Sciences': { n: 50, acc: 0.8 },
    Other: { n: 50, acc: 0.5 },
  });
  assert.deepEqual(s.average, { n: 160, acc: 92 / 160 });
  assert.deepEqual(s.subjects.abstract_algebra, { n: 10, acc: 0.7 });
});

test('subject → category map: 57 subjects, the standard question counts per category', { skip: HAS_TASK_DATA ? false : NO_TASK_DATA_REASON }, () => {
  const subjects = listMmluSubjects(DATA);
  assert.ok(subjects.every((s) => mmluCategory(s) !== undefined));
  const perCat = Object.fromEntries(MMLU_CATEGORIES.map((c) => [c, 0]));
  const subjectsPerCat = Object.fromEntries(MMLU_CATEGORIES.map((c) => [c, 0]));
  for (const s of loadMmlu('test', DATA)) { perCat[mmluCategory(s.subject)!]! += s.rows.length; subjectsPerCat[mmluCategory(s.subject)!]!++; }
  assert.deepEqual(perCat, { Humanities: 4705, STEM: 3018, 'Social Sciences': 3077, Other: 3242 });
  assert.deepEqual(subjectsPerCat, { Humanities: 13, STEM: 18, 'Social Sciences': 12, Other: 14 });
  assert.equal(mmluCategory('anatomy'), 'Other'); // health, not STEM (lm-eval's groups differ here)
  assert.equal(mmluCategory('not_a_subject'), undefined);
});

test('shots are dropped from the end while the prompt is longer than maxLen (BOS counted)', () => {
  const dev = [row('q1', 'A'), row('q2', 'B'), row('q3', 'C'), row('q4', 'D'), row('q5', 'A')];
  const q = row('the question', 'B');
  const len = (k: number) => mmluPrompt('virology', dev.slice(0, k), q).length; // one token per character
  let p = buildMmluPrompt(tok, 'virology', dev, q, { maxLen: len(5), bos: false });
  assert.deepEqual([p.shots, p.ids.length, p.cut], [5, len(5), false]);
  p = buildMmluPrompt(tok, 'virology', dev, q, { maxLen: len(3), bos: false });
  assert.deepEqual([p.shots, p.text], [3, mmluPrompt('virology', dev.slice(0, 3), q)]);
  p = buildMmluPrompt(tok, 'virology', dev, q, { maxLen: len(3), bos: true }); // BOS makes 3 shots one token too long
  assert.deepEqual([p.shots, p.ids[0], p.ids.length], [2, CHAR_BOS, len(2) + 1]);
  p = buildMmluPrompt(tok, 'virology', dev, q, { maxLen: 10, bos: false }); // nothing fits: keep the last 10 tokens
  assert.deepEqual([p.shots, p.cut, tok.decode(p.ids)], [0, true, ' z\nAnswer:']);
});

test('letter tokens: "A".."D" encoded alone without BOS, last id', () => {
  assert.deepEqual(letterTokenIds(tok), [65, 66, 67, 68]);
});

function mmluDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-mmlu-'));
  const files: Record<string, string> = {
    'dev/abstract_algebra_dev.csv': 'd1,a,b,c,d,A\n"d2, with comma",a,b,c,d,B\n',
    'test/abstract_algebra_test.csv': 'T1,a,b,c,d,B\nT2,a,b,c,d,C\n',
    'dev/philosophy_dev.csv': 'p1,a,b,c,d,D\n',
    'test/philosophy_test.csv': 'P1,a,b,c,d,B\nP2,a,b,c,d,B\nP3,a,b,c,d,A\n',
  };
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, 'mmlu', 'data', name, '..'), { recursive: true });
    writeFileSync(join(dir, 'mmlu', 'data', name), text);
  }
  return dir;
}

test('evaluateTask mmlu: argmax over the letter log-probs, per subject / category / average', async () => {
  // the fake model always prefers "B"
  const scorer = new TableScorer(tok, () => 0, 2048, () => [-2, -0.5, -1, -3]);
  const r = await evaluateTask('mmlu', scorer, tok, { dataDir: mmluDir() });
  assert.deepEqual([r.task, r.split, r.n, r.shots, r.bos, r.protocol, r.encoding], ['mmlu', 'test', 5, 5, true, 'hendrycks-mmlu-5shot', undefined]);
  assert.equal(r.acc, 3 / 5);
  assert.deepEqual(r.mmlu!.subjects, { abstract_algebra: { n: 2, acc: 0.5 }, philosophy: { n: 3, acc: 2 / 3 } });
  assert.deepEqual(r.mmlu!.categories.STEM, { n: 2, acc: 0.5 });
  assert.deepEqual(r.mmlu!.categories.Humanities, { n: 3, acc: 2 / 3 });
  assert.ok(Number.isNaN(r.mmlu!.categories.Other.acc));
  assert.equal(r.mmlu!.truncated, 0);
  const first = scorer.nextCalls[0]!;
  assert.deepEqual(first.candidates, [65, 66, 67, 68]);
  assert.equal(first.context[0], CHAR_BOS);
  assert.equal(tok.decode(first.context),
    'The following are multiple choice questions (with answers) about  abstract algebra.\n\n' +
    'd1\nA. a\nB. b\nC. c\nD. d\nAnswer: A\n\nd2, with comma\nA. a\nB. b\nC. c\nD. d\nAnswer: B\n\nT1\nA. a\nB. b\nC. c\nD. d\nAnswer:');
  const lim = await evaluateTask('mmlu', scorer, tok, { dataDir: mmluDir(), limit: 1, bos: false });
  assert.deepEqual([lim.n, lim.acc, lim.bos], [2, 1, false]); // T1 (B) and P1 (B)
});

test('TASKS and parseTasks', () => {
  assert.deepEqual(Object.keys(TASKS), ['piqa', 'arc_easy', 'arc_challenge', 'hellaswag', 'winogrande', 'mmlu']);
  assert.deepEqual(Object.values(TASKS).map((t) => t.size), [1838, 2376, 1172, 10042, 1267, 14042]);
  assert.deepEqual(parseTasks(' piqa,arc_easy,piqa ').map((t) => t.name), ['piqa', 'arc_easy']);
  assert.throws(() => parseTasks('piqa,boolq'), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.message, 'unknown task "boolq"; known tasks: piqa, arc_easy, arc_challenge, hellaswag, winogrande, mmlu');
    return true;
  });
  assert.throws(() => parseTasks('toString'), UsageError);
  assert.throws(() => parseTasks(''), /known tasks: piqa/);
});
