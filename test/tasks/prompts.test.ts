import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadArc } from '../../src/data/tasks/arc.js';
import { loadHellaswag } from '../../src/data/tasks/hellaswag.js';
import type { MmluRow } from '../../src/data/tasks/mmlu.js';
import { loadMmluSubject } from '../../src/data/tasks/mmlu.js';
import { loadPiqa } from '../../src/data/tasks/piqa.js';
import { loadWinogrande } from '../../src/data/tasks/winogrande.js';
import { formatSubject, mmluHeader, mmluPrompt } from '../../src/eval/tasks/mmlu.js';
import {
  arcRequest, choicePairs, hellaswagPreprocess, hellaswagRequest, hellaswagTxtRequest, piqaRequest, pyCapitalize, winograndeRequest,
} from '../../src/eval/tasks/requests.js';
import { HAS_TASK_DATA, NO_TASK_DATA_REASON, DATA } from '../helpers/paths.js';

const skip = HAS_TASK_DATA ? false : NO_TASK_DATA_REASON;

test('PIQA: "Question: " + goal + "\\nAnswer:", choices sol1/sol2', () => {
  assert.deepEqual(piqaRequest({ goal: 'How to open a jar?', sol1: 'Twist the lid.', sol2: 'Eat the lid.', label: 0 }), {
    context: 'Question: How to open a jar?\nAnswer:', continuations: ['Twist the lid.', 'Eat the lid.'], gold: 0,
  });
});

test('PIQA: first example of the shared file', { skip }, () => {
  const r = piqaRequest(loadPiqa(DATA)[0]!);
  assert.equal(r.context, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
  assert.equal(r.gold, 0);
  assert.match(r.continuations[0]!, /^Provide the guinea pig .*ripped paper strips, .*food dish\.$/);
});

test('ARC: question stem, choice texts, gold = index of a numeric answerKey', { skip }, () => {
  const r = arcRequest(loadArc('ARC-Easy', DATA)[14]!);
  assert.deepEqual(r, {
    context: 'Question: All living and nonliving material is composed of\nAnswer:',
    continuations: ['air', 'elements', 'water', 'soil'],
    gold: 1,
  });
  const c = arcRequest(loadArc('ARC-Challenge', DATA)[0]!);
  assert.match(c.context, /^Question: An astronomer observes that a planet rotates faster after a meteorite impact.*\nAnswer:$/s);
  assert.equal(c.gold, 2); // answerKey C
});

test('HellaSwag jsonl: capitalize(ctx_b), " [title]" → ". ", [..] spans removed, double spaces collapsed once', () => {
  // hand-written lines in the layout of hellaswag_val.jsonl (the first record, and a WikiHow-style one)
  const first = hellaswagRequest({
    activity_label: 'Roof shingle removal', ctx_a: 'A man is sitting on a roof.', ctx_b: 'he',
    endings: ['is using wrap to wrap a pair of skis.', 'is ripping level tiles off.', "is holding a rubik's cube.", 'starts pulling up roofing on a roof.'],
    label: 3,
  });
  assert.equal(first.context, 'Roof shingle removal: A man is sitting on a roof. He');
  assert.equal(first.continuations[3], 'starts pulling up roofing on a roof.');
  assert.equal(first.gold, 3);
  const wiki = hellaswagRequest({
    activity_label: 'Home and Garden',
    ctx_a: '[header] How to clean a grill [title] Heat the grill.  [step] Turn it on',
    ctx_b: '',
    endings: ['and WAIT [substeps] ten minutes. ', '[title] Scrub it.', 'x', 'y'],
    label: 0,
  });
  // "Garden: [header] How" → "Garden:  How" → "Garden: How"; "grill.  [step] Turn" → three spaces → two (one pass)
  assert.equal(wiki.context, 'Home and Garden: How to clean a grill. Heat the grill.  Turn it on');
  // trim comes first, so a leading "[title]" leaves its following space (as Python's lm-eval does)
  assert.deepEqual(wiki.continuations, ['and WAIT ten minutes.', ' Scrub it.', 'x', 'y']);
  assert.equal(pyCapitalize('then THE man'), 'Then the man');
  assert.equal(hellaswagRequest({ activity_label: 'A', ctx_a: 'b.', ctx_b: 'then THE man', endings: ['1', '2', '3', '4'], label: 1 }).context, 'A: b. Then the man');
  assert.equal(hellaswagPreprocess('  a [x] b  '), 'a b');
});

test('HellaSwag llama.cpp text layout: lines used as they are (ctx_b not capitalized)', { skip }, () => {
  const data = loadHellaswag(DATA);
  assert.equal(data.layout, 'llamacpp-txt');
  if (data.layout !== 'llamacpp-txt') return;
  const r = hellaswagTxtRequest(data.docs[0]!);
  assert.equal(r.context, 'Roof shingle removal: A man is sitting on a roof. he');
  assert.equal(r.gold, 3);
  assert.deepEqual(r.continuations, ['is using wrap to wrap a pair of skis.', 'is ripping level tiles off.', "is holding a rubik's cube.", 'starts pulling up roofing on a roof.']);
});

test('Winogrande: partial scoring splits at "_": two contexts, one shared continuation', { skip }, () => {
  const r = winograndeRequest(loadWinogrande(DATA)[0]!);
  assert.deepEqual(r, {
    contexts: ['Sarah was a much better surgeon than Maria so Sarah', 'Sarah was a much better surgeon than Maria so Maria'],
    continuation: 'always got the easier cases.',
    gold: 1,
  });
  assert.deepEqual(choicePairs(r).map((p) => p.continuation), ['always got the easier cases.', 'always got the easier cases.']);
  // only the first "_" splits; the continuation is trimmed
  const h = winograndeRequest({ sentence: 'The cup beat the mug because _ was  a_b. ', option1: 'the cup', option2: 'the mug', answer: 1 });
  assert.deepEqual(h, { contexts: ['The cup beat the mug because the cup', 'The cup beat the mug because the mug'], continuation: 'was  a_b.', gold: 0 });
});

const row = (question: string, choices: string[], answer: string): MmluRow =>
  ({ question, choices, answer, gold: ['A', 'B', 'C', 'D'].indexOf(answer) });

test('MMLU: header with formatSubject (two spaces after "about"), shots with answers, question ending "\\nAnswer:"', () => {
  assert.equal(formatSubject('high_school_us_history'), ' high school us history');
  assert.equal(mmluHeader('abstract_algebra'), 'The following are multiple choice questions (with answers) about  abstract algebra.\n\n');
  const shots = [row('1+1=?', ['1', '2', '3', '4'], 'B'), row('Say "hi", please', ['hi', 'ho', 'ha, ha', 'he'], 'A')];
  const q = row('2+2=?', ['4', '5', '6', '7'], 'A');
  assert.equal(mmluPrompt('college_mathematics', shots, q),
    'The following are multiple choice questions (with answers) about  college mathematics.\n\n' +
    '1+1=?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n' +
    'Say "hi", please\nA. hi\nB. ho\nC. ha, ha\nD. he\nAnswer: A\n\n' +
    '2+2=?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer:');
});

test('MMLU: a real 5-shot prompt starts and ends as the hendrycks script writes it', { skip }, () => {
  const dev = loadMmluSubject('abstract_algebra', 'dev', DATA).rows;
  const test0 = loadMmluSubject('abstract_algebra', 'test', DATA).rows[0]!;
  const p = mmluPrompt('abstract_algebra', dev.slice(0, 5), test0);
  assert.ok(p.startsWith('The following are multiple choice questions (with answers) about  abstract algebra.\n\n' +
    'Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n' +
    'Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. Statement 2 | If H and K are subgroups of G then HK is a subgroup of G.\nA. True, True\n'));
  assert.ok(p.endsWith('\n\nFind the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:'));
  assert.equal(p.split('\nAnswer: ').length - 1, 5);
  assert.equal(test0.gold, 1);
});
