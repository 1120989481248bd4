// The fuzzing campaign's findings end to end (issue 10, item 6): headers whose counts used to hang
// `lowbit info` or allocate gigabytes, ids outside the vocabulary, broken configs and tokenizers,
// non-finite weights and quantized checkpoints all end in one line naming the file and exit 2,
// within a time limit; the bundled GGUFs evaluate the bundled data.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { STORIES260K, TINY656K } from '../helpers/paths.js';
import { folderWith, ggufWithNumber, removeScratch, safetensorsHeader, scratchDir, withSafetensorsHeader, type JsonValue } from '../io/mutate.js';
import { quantizedTiny } from '../io/quantizedFixture.js';
import { assertBadInput, cleanup, pool, runCliAsync, scratch } from './helpers.js';

after(() => { cleanup(); removeScratch(); });

/** A case that used to hang runs well under this; a regression fails instead of stalling the suite. */
const LIMIT_MS = 20_000;
const CONFIG = JSON.parse(readFileSync(join(TINY656K, 'config.json'), 'utf8')) as Record<string, JsonValue>;
const TOKENIZER = JSON.parse(readFileSync(join(TINY656K, 'tokenizer.json'), 'utf8')) as Record<string, JsonValue>;
const GGUFS = [
  join(TINY656K, 'gguf/TinyStories-656K-GGUF/TinyStories-656K.f16.gguf'),
  join(TINY656K, 'gguf/TinyStories-656K-Q8_0-GGUF/tinystories-656k-q8_0.gguf'),
];

interface Case { readonly name: string; readonly args: string[]; readonly names: string[]; readonly pattern?: RegExp }

async function check(t: TestContext, cases: Case[]): Promise<void> {
  const results = await pool(cases, 2, (c) => runCliAsync(c.args, { timeoutMs: LIMIT_MS }));
  for (const [i, c] of cases.entries()) await t.test(c.name, () => { assertBadInput(results[i]!, c.names, c.pattern); });
}

const out = (): string[] => ['--out', join(scratch(), 'o.json')];
const evalArgs = (model: string, ...more: string[]): string[] => ['eval', '--model', model, '--ppl', 'tinystories', '--limit', '1', ...out(), ...more];
const withConfig = (edit: Record<string, JsonValue>, drop: string[] = []): string =>
  folderWith(TINY656K, { 'config.json': JSON.stringify({ ...CONFIG, ...edit }), ...Object.fromEntries(drop.map((f) => [f, null])) });

test('counts a header claims: checked against the file before any loop or allocation', async (t) => {
  const cases: Case[] = [];
  for (const n of [1_000_000, 2 ** 31 - 1]) {
    const d = withConfig({ num_hidden_layers: n });
    cases.push({ name: `config.json num_hidden_layers ${n}`, args: ['info', '--model', d], names: [join(d, 'model.safetensors')], pattern: /is missing/ });
  }
  const g = join(scratchDir(), 'm.gguf');
  writeFileSync(g, ggufWithNumber(new Uint8Array(readFileSync(join(STORIES260K, 'stories260K.gguf'))), 'llama.block_count', 2 ** 31 - 1));
  cases.push({ name: 'GGUF llama.block_count 2^31-1', args: ['info', '--model', g], names: [g], pattern: /is missing/ });
  const vocab = { ...(TOKENIZER.model as Record<string, JsonValue>).vocab as Record<string, JsonValue>, zzz: 1e9 };
  const d = folderWith(TINY656K, { 'tokenizer.json': JSON.stringify({ ...TOKENIZER, model: { ...(TOKENIZER.model as object), vocab } }) });
  cases.push({ name: 'tokenizer.json vocabulary id 1e9', args: ['info', '--model', d], names: [join(d, 'tokenizer.json')] });
  await check(t, cases);
});

test('ids outside the vocabulary, broken configs and tokenizers, non-finite weights: exit 2 naming the file', async (t) => {
  const bos = withConfig({ bos_token_id: 5000 }, ['tokenizer_config.json']);
  const ctx = withConfig({ max_position_embeddings: 1 });
  const garbage = folderWith(TINY656K, { 'tokenizer.json': JSON.stringify({ ...TOKENIZER, model: { ...(TOKENIZER.model as object), type: 'garbage' } }) });
  const st = new Uint8Array(readFileSync(join(TINY656K, 'model.safetensors')));
  const { header, dataStart } = safetensorsHeader(st);
  const data = st.slice(dataStart);
  new DataView(data.buffer).setUint16((header['model.layers.1.mlp.up_proj.weight'] as { data_offsets: number[] }).data_offsets[0]!, 0x7fc0, true);
  const nan = folderWith(TINY656K, { 'model.safetensors': withSafetensorsHeader(st, header, data) });
  const gelu = withConfig({ hidden_act: 'gelu' });
  const fewer = withConfig({ num_hidden_layers: 1 });
  await check(t, [
    { name: 'config.json bos_token_id 5000', args: evalArgs(bos), names: [join(bos, 'config.json')], pattern: /BOS token id 5000/ },
    { name: 'config.json max_position_embeddings 1', args: evalArgs(ctx), names: [join(ctx, 'config.json')], pattern: /at least 2/ },
    { name: 'tokenizer.json model type "garbage"', args: evalArgs(garbage), names: [join(garbage, 'tokenizer.json')], pattern: /garbage/ },
    { name: 'a NaN in model.layers.1.mlp.up_proj.weight', args: evalArgs(nan), names: [join(nan, 'model.safetensors'), 'model.layers.1.mlp.up_proj.weight'], pattern: /non-finite/ },
    { name: 'config.json hidden_act "gelu"', args: evalArgs(gelu), names: [join(gelu, 'config.json')], pattern: /gelu/ },
    { name: 'config.json num_hidden_layers 1 (the weights have 2)', args: evalArgs(fewer), names: [join(fewer, 'model.safetensors')], pattern: /belongs to layer 1/ },
  ]);
});

test('--tokenizer: honoured for GGUF and quantized models, a missing path is one line', async (t) => {
  const q = await quantizedTiny();
  const nullConfig = folderWith(q, { 'quantize_config.json': 'null' });
  await check(t, [
    ...[GGUFS[0]!, q, join(STORIES260K, 'stories260K.bin')].map((m) => ({
      name: `--tokenizer /nonexistent with ${m.split('/').at(-1)}`, args: ['info', '--model', m, '--tokenizer', '/nonexistent'], names: ['/nonexistent'],
    })),
    { name: 'quantize_config.json holding null', args: ['info', '--model', nullConfig], names: [join(nullConfig, 'quantize_config.json')] },
  ]);
  const r = await runCliAsync(['info', '--json', '--model', GGUFS[0]!, '--tokenizer', TINY656K]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { tokenizer: { kind: string } }).tokenizer.kind, 'tokenizer.json');
});

test('the bundled TinyStories-656K GGUFs evaluate tinystories and wikitext2', async () => {
  const results = await pool(GGUFS, 2, (g) => runCliAsync(['eval', '--model', g, '--ppl', 'tinystories,wikitext2', '--limit', '1', '--json', ...out()], { timeoutMs: 60_000 }));
  for (const [i, r] of results.entries()) {
    assert.equal(r.status, 0, `${GGUFS[i]}: ${r.stderr}`);
    const ppl = (JSON.parse(r.stdout) as { results: { dataset: string; ppl: number }[] }).results;
    assert.deepEqual(ppl.map((x) => x.dataset), ['tinystories', 'wikitext2']);
    for (const x of ppl) assert.ok(Number.isFinite(x.ppl) && x.ppl > 1, `${GGUFS[i]} ${x.dataset}: ppl ${x.ppl}`);
  }
});
