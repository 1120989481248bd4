import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { pplStream } from '../../src/data/pplData.js';
import { FormatError } from '../../src/errors.js';
import { loadHfTokenizer } from '../../src/io/tokenizers/hf.js';
import { DATA, PACKAGE_ROOT, TINY656K } from '../helpers/paths.js';

interface Reference656K {
  greedy: { prompt: string; prompt_ids: number[]; output_ids: number[]; output_text: string };
  nll: { text: string; ids: number[] };
}
const ref = JSON.parse(readFileSync(join(TINY656K, 'reference_greedy.json'), 'utf8')) as Reference656K;

test('TinyStories-656K tokenizer.json reproduces the reference ids (BOS explicit)', () => {
  const tok = loadHfTokenizer(TINY656K);
  assert.equal(tok.kind, 'tokenizer.json');
  assert.match(tok.description, /^tokenizer\.json \(BPE, 2048 tokens, sha256 [0-9a-f]{8}…\)$/);
  assert.equal(tok.vocabSize, 2048);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.deepEqual(tok.encode(ref.greedy.prompt, { bos: true }), ref.greedy.prompt_ids);
  assert.deepEqual(tok.encode(ref.nll.text, { bos: true }), ref.nll.ids);
  assert.deepEqual(tok.encode(ref.nll.text, { bos: false }), ref.nll.ids.slice(1));
  assert.deepEqual(tok.encode('', { bos: true }), [1]);
});

test('TinyStories-656K decodes the reference output (special tokens skipped, decoder strips one leading space)', () => {
  const tok = loadHfTokenizer(TINY656K);
  // The reference text is the raw pieces joined (" Once upon ..."); the tokenizer's Strip decoder drops that first space.
  assert.equal(tok.decode(ref.greedy.output_ids), ref.greedy.output_text.replace(/^ /, ''));
  assert.equal(tok.decode([]), '');
});

test('long words take the fast merge path and give exactly the library ids', () => {
  const json = JSON.parse(readFileSync(join(TINY656K, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  const config = JSON.parse(readFileSync(join(TINY656K, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const library = new HfTokenizer(json, config);
  const ours = loadHfTokenizer(TINY656K);
  const wiki = readFileSync(join(DATA, 'wikitext2/wikitext-2-raw/wiki.test.raw'), 'utf8').slice(0, 30000);
  for (const text of [wiki, ref.nll.text.repeat(20), 'naïve café 😀 ' + 'x'.repeat(300) + ' <unk> end']) {
    assert.deepEqual(ours.encode(text, { bos: false }), library.encode(text, { add_special_tokens: false }).ids);
  }
});

test('LLaMA-3 tokenizer: WikiText-2 test is 289,076 tokens without BOS', () => {
  // The devDependency ships LLaMA-3's tokenizer.json + tokenizer_config.json in models/.
  const dir = join(PACKAGE_ROOT, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');
  const tok = loadHfTokenizer(dir);
  assert.equal(tok.bosId, 128000);
  assert.equal(tok.eosId, 128001);
  assert.deepEqual(tok.encode('Hello world', { bos: true }), [128000, 9906, 1917]);
  const stream = pplStream('wikitext2', tok, { seqlen: 2048, dataDir: DATA, bos: false });
  assert.equal(stream.ids.length, 289076);
  assert.equal(Math.floor(stream.ids.length / 2048), 141);
});

test('missing or invalid tokenizer.json is a FormatError naming it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-tok-'));
  assert.throws(() => loadHfTokenizer(dir), (e: unknown) => e instanceof FormatError && e.message.includes(join(dir, 'tokenizer.json')));
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
  assert.throws(() => loadHfTokenizer(dir), /tokenizer\.json: invalid JSON/);
  writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
  assert.throws(() => loadHfTokenizer(dir), /no "model"/);
});
