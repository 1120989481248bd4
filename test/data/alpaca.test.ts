import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  alpacaPrompt, bundledAlpacaPath, IGNORE_INDEX, nextTokenTargets, parseAlpaca, readAlpaca, tokenizeAlpaca, type AlpacaRecord,
} from '../../src/data/alpaca.js';
import { FormatError, UsageError } from '../../src/errors.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { loadHfTokenizer } from '../../src/io/tokenizers/hf.js';
import { TINY656K } from '../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'lowbit-alpaca-'));
const write = (name: string, text: string | Uint8Array) => { const p = join(dir, name); writeFileSync(p, text); return p; };

test('the bundled file: the first 200 Stanford Alpaca records, 118 with an input (SOURCE.md)', () => {
  const rs = readAlpaca(bundledAlpacaPath());
  assert.equal(rs.length, 200);
  assert.equal(rs.filter((r) => r.input !== '').length, 118);
  assert.equal(rs[0]!.instruction, 'Give three tips for staying healthy.');
  assert.equal(rs[4]!.instruction, 'Describe a time when you had to make a difficult decision.');
  assert.equal(rs[199]!.instruction, 'Describe the impact of the coronavirus on the economy.');
});

test('JSON array and JSON Lines (also gzipped) give the same records; input may be missing; extra keys are ignored', () => {
  const recs = [
    { instruction: 'Add the numbers.', input: '2 and 3', output: '5', id: 7 },
    { instruction: 'Say hi.', output: 'Hi!' },
    { instruction: 'Echo.', input: '', output: '' },
  ];
  const want: AlpacaRecord[] = [
    { instruction: 'Add the numbers.', input: '2 and 3', output: '5' },
    { instruction: 'Say hi.', input: '', output: 'Hi!' },
    { instruction: 'Echo.', input: '', output: '' },
  ];
  assert.deepEqual(readAlpaca(write('a.json', '\uFEFF' + JSON.stringify(recs, null, 2))), want);
  assert.deepEqual(readAlpaca(write('a.jsonl', recs.map((r) => JSON.stringify(r)).join('\n') + '\n\n')), want);
  assert.deepEqual(readAlpaca(write('a.jsonl.gz', gzipSync(recs.map((r) => JSON.stringify(r)).join('\r\n')))), want);
});

test('malformed records are FormatErrors naming the file and the 0-based record', () => {
  const bad = (name: string, text: string, pattern: RegExp) => {
    const p = write(name, text);
    assert.throws(() => readAlpaca(p), (e: unknown) => e instanceof FormatError && e.message.startsWith(p) && pattern.test(e.message), `${name}: ${pattern}`);
  };
  bad('missing.json', JSON.stringify([{ instruction: 'a', output: 'b' }, { instruction: 'c' }]), /record 1 \(0-based\) has no "output"/);
  bad('number.json', JSON.stringify([{ instruction: 'a', input: 3, output: 'b' }]), /record 0 \(0-based\): "input" is number, not a string/);
  bad('null.jsonl', '{"instruction": "a", "output": "b"}\n\n{"instruction": null, "output": "b"}\n', /record 1 \(0-based; line 3\): "instruction" is null/);
  bad('notobj.json', '[{"instruction": "a", "output": "b"}, "x"]', /record 1 \(0-based\) is not an object/);
  bad('broken.jsonl', '{"instruction": "a", "output": "b"}\n{"instruction": "a", \n', /record 1 \(0-based; line 2\) is not valid JSON/);
  bad('broken.json', '[{"instruction": "a"', /not valid JSON/);
  bad('empty.json', '[]', /no records/);
  bad('blank.jsonl', '\n  \n', /no records/);
  bad('csv.txt', 'instruction,output\n', /neither a JSON array nor JSON Lines/);
  assert.throws(() => readAlpaca(join(dir, 'absent.json')), /absent\.json: file not found/);
});

test('prompts are qlora\'s ALPACA_PROMPT_DICT, filled in one pass like str.format', () => {
  assert.equal(alpacaPrompt({ instruction: 'Sort {input}.', input: '3, 1 and $&', output: 'x' }),
    'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n' +
    '### Instruction:\nSort {input}.\n\n### Input:\n3, 1 and $&\n\n### Response: ');
  assert.equal(alpacaPrompt({ instruction: 'Say hi.', input: '', output: 'x' }),
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nSay hi.\n\n### Response: ');
});

test('tokenizeAlpaca: BOS + prompt, then output + EOS; source labels ignored unless trainOnSource; truncation keeps the start', () => {
  const tok = loadHfTokenizer(TINY656K);
  assert.notEqual(tok.bosId, undefined);
  assert.notEqual(tok.eosId, undefined);
  const rec: AlpacaRecord = { instruction: 'Tell a story about a cat.', input: 'The cat is red.', output: 'Once upon a time, a red cat played.' };
  const prompt = tok.encode(alpacaPrompt(rec), { bos: false }), out = tok.encode(rec.output, { bos: false });
  const source = [tok.bosId!, ...prompt], target = [...out, tok.eosId!];

  const [ex] = tokenizeAlpaca([rec], tok, { sourceMaxLen: 1024, targetMaxLen: 256, trainOnSource: false });
  assert.deepEqual([...ex!.ids], [...source, ...target]);
  assert.deepEqual([...ex!.labels], [...source.map(() => IGNORE_INDEX), ...target]);
  assert.equal(ex!.ids[0], tok.bosId);
  assert.equal(ex!.ids.at(-1), tok.eosId);

  const [all] = tokenizeAlpaca([rec], tok, { sourceMaxLen: 1024, targetMaxLen: 256, trainOnSource: true });
  assert.deepEqual([...all!.labels], [...all!.ids]);

  const [cut] = tokenizeAlpaca([rec], tok, { sourceMaxLen: 5, targetMaxLen: 3, trainOnSource: false });
  assert.deepEqual([...cut!.ids], [...source.slice(0, 5), ...out.slice(0, 3)]);
  assert.deepEqual([...cut!.labels], [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, ...out.slice(0, 3)]);
  assert.notEqual(cut!.ids.at(-1), tok.eosId);

  const bundled = tokenizeAlpaca(readAlpaca(bundledAlpacaPath()).slice(0, 3), tok);
  assert.equal(bundled.length, 3);
  for (const b of bundled) assert.equal(b.ids.length, b.labels.length);

  assert.throws(() => tokenizeAlpaca([rec], tok, { sourceMaxLen: 0, targetMaxLen: 3, trainOnSource: false }), UsageError);
  const noBos: Tokenizer = { kind: 'test', description: 'test tokenizer (no BOS)', vocabSize: 4, bosId: undefined, eosId: 2, encode: () => [3], decode: () => '' };
  assert.throws(() => tokenizeAlpaca([rec], noBos), (e: unknown) => e instanceof UsageError && /test tokenizer \(no BOS\) has no BOS/.test(e.message));
  assert.throws(() => tokenizeAlpaca([rec], { ...noBos, bosId: 1, eosId: undefined, description: 'eos-less' }), /eos-less has no EOS/);
});

test('nextTokenTargets: the causal-LM shift, out[t] = labels[t + 1], last ignored', () => {
  assert.deepEqual([...nextTokenTargets(Int32Array.of(-100, -100, 7, 8, 2))], [-100, 7, 8, 2, -100]);
  assert.deepEqual([...nextTokenTargets(Int32Array.of(5))], [-100]);
});

test('parseAlpaca names the path it is given', () => {
  assert.throws(() => parseAlpaca('mem://x.json', '[1]'), (e: unknown) => e instanceof FormatError && e.message === 'mem://x.json: record 0 (0-based) is not an object');
});
