import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { ptbRows } from '../../src/data/textFiles.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calibrationSet, sampleStreamStarts } from '../../src/data/calibration.js';
import { pplStream } from '../../src/data/pplData.js';
import { FormatError, UsageError } from '../../src/errors.js';
import { loadHfTokenizer } from '../../src/io/tokenizers/hf.js';
import { readLlama2cTokenizer } from '../../src/io/tokenizers/llama2c.js';
import { DATA, STORIES260K, TINY656K } from '../helpers/paths.js';

test('stream starts are CPython randint draws', () => {
  // random.seed(0); [random.randint(0, 100000-2048-1) for _ in range(5)]
  assert.deepEqual(sampleStreamStarts(100000, { nsamples: 5, seqlen: 2048, seed: 0 }), [50494, 55125, 5306, 33936, 67013]);
  assert.throws(() => sampleStreamStarts(2048, { nsamples: 1, seqlen: 2048, seed: 0 }), UsageError);
});

test('wikitext2-valid: GPTQ windows of the joined valid stream (TinyStories-656K, seed 2)', () => {
  const tok = loadHfTokenizer(TINY656K);
  const cal = calibrationSet('wikitext2-valid', tok, { nsamples: 8, seqlen: 512, seed: 2, dataDir: DATA });
  // golden stream length 494,851 (with BOS); then
  // random.seed(2); [random.randint(0, 494851-512-1) for _ in range(8)]
  assert.deepEqual(cal.info.starts, [452517, 445149, 29649, 48016, 44497, 189298, 438042, 88648]);
  assert.equal(cal.windows.length, 8);
  assert.ok(cal.windows.every((w) => w.length === 512));
  assert.match(cal.info.file, /wiki\.valid\.raw$/);
});

test('c4 train: each window is a slice of the drawn document, deterministic', () => {
  const tok = readLlama2cTokenizer(join(STORIES260K, 'tok512.bin'), 512);
  const opts = { nsamples: 4, seqlen: 128, seed: 0, dataDir: DATA };
  const a = calibrationSet('c4', tok, opts);
  const b = calibrationSet('c4', tok, opts);
  assert.deepEqual(a.info.starts, b.info.starts);
  assert.deepEqual(a.info.docs, b.info.docs);
  // random.seed(0); random.randint(0, 1041 - 1) == 788 (1,041 train docs in the data)
  assert.equal(a.info.docs![0], 788);
  const docs = JSON.parse(readPrefix(join(DATA, 'c4/DaizeDong-Unified-MoE-Compression/c4_train_part_of_0.json'))) as { text: string }[];
  a.windows.forEach((w, k) => {
    const ids = tok.encode(docs[a.info.docs![k]!]!.text, { bos: true });
    assert.ok(ids.length >= 128);
    assert.deepEqual(Array.from(w), ids.slice(a.info.starts[k]!, a.info.starts[k]! + 128));
  });
});

test('a file source, and errors for missing or short sources', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-cal-'));
  const file = join(dir, 'calib.txt');
  writeFileSync(file, 'Once upon a time there was a little dog. '.repeat(40));
  const tok = readLlama2cTokenizer(join(STORIES260K, 'tok512.bin'), 512);
  const cal = calibrationSet(file, tok, { nsamples: 3, seqlen: 16, seed: 0 });
  const stream = pplStream(`file:${file}`, tok, { seqlen: 16 }).ids;
  assert.deepEqual(cal.info.starts, sampleStreamStarts(stream.length, { nsamples: 3, seqlen: 16, seed: 0 }));
  cal.windows.forEach((w, k) => assert.deepEqual(w, stream.slice(cal.info.starts[k]!, cal.info.starts[k]! + 16)));
  assert.throws(() => calibrationSet(file, tok, { nsamples: 1, seqlen: 100000, seed: 0 }), /too long for the calibration data/);
  assert.throws(() => calibrationSet('wikitext2', tok, { nsamples: 1, seqlen: 16, seed: 0, dataDir: dir }),
    (e: unknown) => e instanceof FormatError && /wiki\.train\.raw/.test(e.message) && /assets\/data\/README\.md/.test(e.message) && /c4 \(the default\), ptb or wikitext2-valid/.test(e.message));
  assert.throws(() => calibrationSet('ptb', tok, { nsamples: 1, seqlen: 16, seed: 0, dataDir: dir }), /ptb\.train\.txt: file not found/);
  assert.throws(() => calibrationSet('no-such-source', tok, { nsamples: 1, seqlen: 16, seed: 0 }), UsageError);
});

test('ptb calibration works from the bundled data alone (its train split ships gzip-compressed)', () => {
  const tok = readLlama2cTokenizer(join(STORIES260K, 'tok512.bin'), 512);
  const cal = calibrationSet('ptb', tok, { nsamples: 2, seqlen: 64, seed: 0, dataDir: DATA });
  assert.ok(cal.info.file.endsWith(join('ptb', 'ptb.train.txt.gz')), cal.info.file);
  const text = gunzipSync(readFileSync(cal.info.file)).toString('utf8');
  const stream = tok.encode(ptbRows(text).join('\n\n'), { bos: true });
  assert.equal(stream.length > 100_000, true);
  cal.windows.forEach((w, k) => assert.deepEqual([...w], stream.slice(cal.info.starts[k]!, cal.info.starts[k]! + 64)));
});

/** The complete objects of a truncated C4 JSON array, for an independent check of the reader. */
function readPrefix(file: string): string {
  const text = readFileSync(file, 'utf8');
  const end = text.lastIndexOf('\n    },') + '\n    }'.length;
  return text.slice(0, end) + '\n]';
}

