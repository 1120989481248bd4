// The CLI on good input, run as a child process: `info --json` on every bundled format,
// `eval --json --out` with a limit, `generate` from an empty prompt (BOS only).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STORIES260K, TINY656K } from '../helpers/paths.js';
import { assertOk, cleanup, pool, runCli, runCliAsync, scratch, writeTemp } from './helpers.js';

after(cleanup);

interface Info {
  path: string; format: string; architecture: string; parameters: number; tensors: number;
  storedDtypes: Record<string, number>; config: { maxPositionEmbeddings: number; vocabSize: number };
  tokenizer: { vocabSize: number; bos: number | null };
}

test('info --json on every bundled format', async () => {
  const cases: { model: string; extra?: string[]; format: string; parameters?: number; stored: string }[] = [
    { model: TINY656K, format: 'hf', parameters: 656000, stored: 'BF16' },
    { model: join(TINY656K, 'model.safetensors'), format: 'hf', parameters: 656000, stored: 'BF16' },
    { model: join(TINY656K, 'f32'), extra: ['--tokenizer', TINY656K], format: 'hf', parameters: 656000, stored: 'F32' },
    { model: join(TINY656K, 'gguf', 'TinyStories-656K-GGUF', 'TinyStories-656K.f16.gguf'), format: 'gguf', parameters: 656000, stored: 'F16' },
    { model: join(TINY656K, 'gguf', 'TinyStories-656K-Q8_0-GGUF', 'tinystories-656k-q8_0.gguf'), format: 'gguf', parameters: 656000, stored: 'Q8_0' },
    { model: join(STORIES260K, 'stories260K.bin'), format: 'llama2c', stored: 'F32' },
    { model: join(STORIES260K, 'stories260K.gguf'), format: 'gguf', stored: 'F32' },
  ];
  const results = await pool(cases, 4, (c) => runCliAsync(['info', '--model', c.model, '--json', ...(c.extra ?? [])]));
  for (const [i, c] of cases.entries()) {
    const r = results[i]!;
    assertOk(r);
    assert.equal(r.stderr, '', `${c.model}: nothing on stderr`);
    const info = JSON.parse(r.stdout) as Info;
    assert.equal(info.format, c.format, c.model);
    assert.equal(info.architecture, 'llama');
    if (c.parameters !== undefined) assert.equal(info.parameters, c.parameters, c.model);
    assert.ok(info.parameters > 0 && info.tensors > 0, c.model);
    assert.ok((info.storedDtypes[c.stored] ?? 0) > 0, `${c.model}: stored as ${JSON.stringify(info.storedDtypes)}`);
    assert.equal(Object.values(info.storedDtypes).reduce((a, b) => a + b, 0), info.parameters);
    assert.equal(info.tokenizer.bos, 1, c.model);
  }
});

test('info without --model reads the bundled TinyStories-656K (text)', () => {
  const r = runCli(['info']);
  assertOk(r);
  assert.match(r.stdout, /format\s+hf/);
  assert.match(r.stdout, /parameters\s+656,000 in 20 tensors/);
});

test('eval --ppl tinystories --limit 2 --json --out: JSON on stdout, the same JSON in the file', () => {
  const out = join(scratch(), 'sub', 'eval.json');
  const r = runCli(['eval', '--ppl', 'tinystories', '--limit', '2', '--json', '--out', out]);
  assertOk(r);
  assert.equal(r.stderr, '', 'no progress bar or notes on stderr with --json');
  const printed = JSON.parse(r.stdout) as { command: string; seqlen: number; limit: number | null; format: string; results: { dataset: string; windowsEvaluated: number; windows: number; seqlen: number; ppl: number }[] };
  assert.equal(printed.command, 'eval');
  assert.equal(printed.format, 'hf');
  assert.equal(printed.seqlen, 512, "the model's context");
  assert.equal(printed.limit, 2);
  assert.equal(printed.results.length, 1);
  const res = printed.results[0]!;
  assert.equal(res.dataset, 'tinystories');
  assert.equal(res.windowsEvaluated, 2);
  assert.equal(res.seqlen, 512);
  assert.ok(res.windows >= 2);
  assert.ok(Number.isFinite(res.ppl) && res.ppl > 1 && res.ppl < 100, `ppl ${res.ppl}`);
  assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), printed);
  assert.ok(!existsSync(`${out}.tmp-${process.pid}`));
});

test('eval on a text file, table output; a results file only when --out asks for one', () => {
  const cwd = scratch();
  const text = writeTemp('story.txt', 'Once upon a time, there was a little cat. The cat liked to play in the sun. '.repeat(20));
  const args = ['eval', '--model', join(STORIES260K, 'stories260K.bin'), '--ppl', text, '--seqlen', '32', '--limit', '2'];
  const r = runCli(args, { cwd });
  assertOk(r);
  assert.match(r.stdout, /\| Model \|/);
  assert.match(r.stdout, /2\/\d+ windows of 32/);
  assert.deepEqual(readdirSync(cwd), [], 'eval writes no file the user did not ask for');
  assertOk(runCli([...args, '--out', 'results/eval.json'], { cwd }));
  const written = JSON.parse(readFileSync(join(cwd, 'results', 'eval.json'), 'utf8')) as { seqlen: number; results: { windowsEvaluated: number }[] };
  assert.equal(written.seqlen, 32);
  assert.equal(written.results[0]!.windowsEvaluated, 2);
});

test('generate with an empty prompt starts from BOS and matches the llama2.c reference', () => {
  const ref = JSON.parse(readFileSync(join(STORIES260K, 'reference_greedy_bos_255.json'), 'utf8')) as { prompt_ids: number[]; generated_ids: number[] };
  const r = runCli(['generate', '--model', join(STORIES260K, 'stories260K.bin'), '--prompt', '', '--steps', '24', '--json']);
  assertOk(r);
  const g = JSON.parse(r.stdout) as { promptIds: number[]; outputIds: number[]; text: string };
  assert.deepEqual(g.promptIds, ref.prompt_ids);
  assert.deepEqual(g.outputIds, ref.generated_ids.slice(0, 24));
  assert.match(g.text, /Once upon a time/);
  // plain text output too
  const t = runCli(['generate', '--model', join(STORIES260K, 'stories260K.gguf'), '--prompt', '', '--steps', '6']);
  assertOk(t);
  assert.ok(t.stdout.trim().length > 0, 'some text');
});

test('--help exits 0', () => {
  const r = runCli(['--help']);
  assertOk(r);
  assert.match(r.stdout, /Commands:/);
});
