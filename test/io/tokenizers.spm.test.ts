import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormatError } from '../../src/errors.js';
import { ggufVocab } from '../../src/io/gguf/config.js';
import { readGgufHeader } from '../../src/io/gguf/parse.js';
import { readLlama2cTokenizer } from '../../src/io/tokenizers/llama2c.js';
import { spmTokenizer } from '../../src/io/tokenizers/spm.js';
import { STORIES260K } from '../helpers/paths.js';

const TOK512 = join(STORIES260K, 'tok512.bin');
const llama2c = () => readLlama2cTokenizer(TOK512, 512);
function ggufTok() {
  const file = join(STORIES260K, 'stories260K.gguf');
  const v = ggufVocab(readGgufHeader(file));
  return spmTokenizer({ tokens: v.tokens, scores: v.scores!, types: v.types, bosId: v.bosId, eosId: v.eosId, source: file });
}

test('tok512.bin: 512 pieces, BOS 1, EOS 2', () => {
  const tok = llama2c();
  assert.equal(tok.kind, 'llama2c-spm');
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
});

test('tok512.bin and the GGUF vocabulary give the same ids', () => {
  const a = llama2c();
  const b = ggufTok();
  const texts = [
    'Once upon a time, there was a little girl named Lily.',
    'The café — naïve 😀 test\n\nline two',
    '  two  leading spaces',
    'Tom said, "Let\'s go to the park!" and ran off.',
    '',
  ];
  for (const t of texts) {
    assert.deepEqual(a.encode(t, { bos: true }), b.encode(t, { bos: true }), JSON.stringify(t));
    assert.equal(a.decode(a.encode(t, { bos: true })), t === '' ? '' : ' ' + t);
  }
  // byte fallback: characters outside the 512 pieces become their UTF-8 bytes (<0xNN> = byte + 3)
  assert.deepEqual(a.encode('😀', { bos: false }).slice(1), [0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
});

test('decode of the reference greedy ids, and encode round-trips them', () => {
  const ref = JSON.parse(readFileSync(join(STORIES260K, 'reference_greedy_bos_255.json'), 'utf8')) as { generated_ids: number[] };
  const tok = llama2c();
  const text = tok.decode(ref.generated_ids);
  // decode keeps the dummy-prefix space that run.c strips after BOS
  assert.ok(text.startsWith(' Once upon a time, there was a little girl named Lily. She loved to play outside in the park.'));
  const ids = tok.encode(text.slice(1), { bos: false });
  assert.equal(tok.decode(ids), text);
  assert.deepEqual(ids, ref.generated_ids); // greedy output is itself the canonical tokenization here
});

test('a truncated or mismatched tok*.bin is a FormatError naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-tok512-'));
  const bytes = readFileSync(TOK512);
  const cut = join(dir, 'tok-cut.bin');
  writeFileSync(cut, bytes.subarray(0, bytes.length - 3));
  assert.throws(() => readLlama2cTokenizer(cut, 512), (e: unknown) => e instanceof FormatError && e.message.startsWith(cut));
  assert.throws(() => readLlama2cTokenizer(TOK512, 500), /bytes left after 500 tokens/);
  assert.throws(() => readLlama2cTokenizer(join(dir, 'absent.bin'), 512), /absent\.bin: file not found/);
});
