import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readC4Docs, sampleC4Windows } from '../../src/data/c4.js';
import { pplStream } from '../../src/data/pplData.js';
import { DATA_FILES, ptbRows, tinystoriesRows, wikitextRows } from '../../src/data/textFiles.js';
import { FormatError, UsageError } from '../../src/errors.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { loadHfTokenizer } from '../../src/io/tokenizers/hf.js';
import { readLlama2cTokenizer } from '../../src/io/tokenizers/llama2c.js';
import { DATA, STORIES260K, TINY656K } from '../helpers/paths.js';

/** A tokenizer that makes the joined text visible: one id per UTF-16 unit, BOS = -1. */
const charTok: Tokenizer = {
  kind: 'test-chars', description: 'chars', vocabSize: 65536, bosId: -1, eosId: undefined,
  encode: (text, opts) => [...(opts.bos ? [-1] : []), ...Array.from(text, (c) => c.charCodeAt(0))],
  decode: (ids) => String.fromCharCode(...ids.filter((i) => i >= 0)),
};
const textOf = (ids: Int32Array): string => charTok.decode(Array.from(ids));

function fixtureDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-ppl-'));
  const put = (rel: string, text: string): void => {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), text);
  };
  put(DATA_FILES.wikitext2Test, ' \n = Title = \n \n Body line .\n');
  put(DATA_FILES.ptbValid, ' a b c \n d e \n');
  put(DATA_FILES.ptbTest, ' x y \n z \n');
  put(DATA_FILES.tinystoriesValid, 'One.\n\nTwo.\n<|endoftext|>\n Three.\n<|endoftext|>\n');
  put(DATA_FILES.c4Valid, '[\n    {\n        "text": "first {doc} \\"q\\""\n    },\n    {\n        "text": "second"\n    },\n    {\n        "text": "cut off');
  return dir;
}

test('join rules on a fixture (rows as HF datasets gives them, GPTQ joins)', () => {
  const dir = fixtureDir();
  const s = (name: string, bos = false): string => textOf(pplStream(name, charTok, { seqlen: 4, dataDir: dir, bos }).ids);
  assert.equal(s('wikitext2'), ['', ' = Title = \n', '', ' Body line .\n'].join('\n\n'));
  assert.equal(s('ptb'), 'a b c\n\nd e');
  assert.equal(s('ptb-new'), 'x y z');
  assert.equal(s('tinystories'), 'One.\n\nTwo.\n\nThree.');
  const withBos = pplStream('ptb', charTok, { seqlen: 4, dataDir: dir });
  assert.equal(withBos.ids[0], -1);
  assert.equal(withBos.ids.filter((i) => i === -1).length, 1);
  assert.equal(withBos.info.bos, true);
  assert.equal(withBos.info.protocol, 'gptq');
  // c4-new: the complete docs joined with " ", truncated to 256 × seqlen tokens
  assert.equal(s('c4-new'), 'first {doc} "q" second');
  assert.deepEqual(readC4Docs(join(dir, DATA_FILES.c4Valid)), ['first {doc} "q"', 'second']);
  assert.deepEqual(wikitextRows('a\n  \nb'), ['a\n', '', 'b']);
  assert.deepEqual(ptbRows(' a \n'), ['a']);
  assert.deepEqual(tinystoriesRows('<|endoftext|>x<|endoftext|>\n'), ['x']);
});

test('file:PATH and plain paths tokenize the whole text once', () => {
  const dir = fixtureDir();
  const f = join(dir, DATA_FILES.ptbTest);
  assert.equal(textOf(pplStream(`file:${f}`, charTok, { seqlen: 4, bos: false }).ids), ' x y \n z \n');
  assert.equal(pplStream(f, charTok, { seqlen: 4 }).info.files[0], f);
});

test('missing files and unknown names are one-line errors naming the path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-empty-'));
  assert.throws(() => pplStream('wikitext2', charTok, { seqlen: 8, dataDir: dir }),
    (e: unknown) => e instanceof FormatError && e.message.includes(join(dir, DATA_FILES.wikitext2Test)) && /file not found/.test(e.message));
  assert.throws(() => pplStream('c4', charTok, { seqlen: 8, dataDir: dir }), FormatError);
  assert.throws(() => pplStream('file:/no/such/file.txt', charTok, { seqlen: 8 }), /\/no\/such\/file\.txt: file not found/);
  assert.throws(() => pplStream('wikitext3', charTok, { seqlen: 8 }), UsageError);
});

test('golden stream lengths with the TinyStories-656K tokenizer (bundled data)', () => {
  const tok = loadHfTokenizer(TINY656K);
  const wiki = pplStream('wikitext2', tok, { seqlen: 2048, dataDir: DATA });
  assert.equal(wiki.info.tokens, 560212); // includes the one BOS
  assert.equal(wiki.info.textChars, 1294336);
  assert.equal(wiki.ids[0], tok.bosId);
  assert.equal(Math.floor(wiki.ids.length / 2048), 273); // GPTQ windows
  const ptb = pplStream('ptb', tok, { seqlen: 2048, dataDir: DATA });
  assert.equal(ptb.info.tokens, 156363);
  assert.equal(ptb.info.textChars, 396410);
});

test('c4: GPTQ sampler windows are slices of the drawn documents, deterministic', () => {
  const tok = readLlama2cTokenizer(join(STORIES260K, 'tok512.bin'), 512);
  const seqlen = 256;
  const stream = pplStream('c4', tok, { seqlen, dataDir: DATA });
  assert.equal(stream.ids.length, 256 * seqlen);
  assert.ok(stream.info.notes!.some((n) => /1025/.test(n)));
  const docs = readC4Docs(join(DATA, DATA_FILES.c4Valid));
  assert.equal(docs.length, 1025);
  const windows = sampleC4Windows(docs, tok, { count: 256, seqlen, seed: 0, bos: true, file: 'c4', split: 'validation' });
  // random.seed(0); random.randint(0, 1024) == 788: the first draw, kept when doc 788 is long enough
  const first = tok.encode(docs[788]!, { bos: true });
  if (first.length >= seqlen) assert.equal(windows[0]!.doc, 788);
  for (const k of [0, 1, 100, 255]) {
    const w = windows[k]!;
    const ids = tok.encode(docs[w.doc]!, { bos: true });
    assert.ok(ids.length > seqlen);
    assert.deepEqual(Array.from(w.ids), ids.slice(w.start, w.start + seqlen));
    assert.deepEqual(stream.ids.subarray(k * seqlen, (k + 1) * seqlen), w.ids);
  }
  assert.deepEqual(pplStream('c4', tok, { seqlen, dataDir: DATA }).ids, stream.ids);
  assert.throws(() => pplStream('c4', tok, { seqlen: 1_000_000, dataDir: DATA }), /no document has 1000000 tokens/);
});

test('c4 sampler: train draws need more than seqlen tokens (GPTQ `>`), validation at least seqlen (`>=`)', () => {
  // one token per character: doc 0 has exactly 4 tokens, doc 1 has 6
  const tok = { kind: 'toy', description: 'toy', vocabSize: 300, bosId: undefined, eosId: undefined,
    encode: (t: string) => [...t].map((c) => c.charCodeAt(0)), decode: () => '' };
  const docs = ['aaaa', 'bbbbbb'];
  const train = sampleC4Windows(docs, tok, { count: 20, seqlen: 4, seed: 3, bos: false, file: 'x', split: 'train' });
  assert.ok(train.every((w) => w.doc === 1), 'a train window never comes from a doc of exactly seqlen tokens');
  // validation keeps a doc of exactly seqlen tokens and then fails as CPython's randint(0, -1) does
  assert.throws(() => sampleC4Windows(docs, tok, { count: 20, seqlen: 4, seed: 3, bos: false, file: 'x', split: 'validation' }), /exactly seqlen/);
});
