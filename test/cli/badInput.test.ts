// The bad-input contract, end to end through the CLI: a truncated or corrupt safetensors / GGUF /
// llama2.c file, a header that claims more bytes than the file has, an unknown dtype or
// architecture, a missing dataset file, a seqlen longer than the data, a bad option: each gives
// exit code 2 and exactly one `lowbit: ...` line on stderr naming the file or the option, with no
// stack frames and no attempt to allocate what a header merely claims.
import { after, test, type TestContext } from 'node:test';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { STORIES260K, TINY656K } from '../helpers/paths.js';
import { assertBadInput, cleanup, pool, readBytes, runCliAsync, scratch, writeTemp } from './helpers.js';

after(cleanup);

interface Case {
  readonly name: string;
  readonly args: string[];
  /** strings the error line must contain: the file's path, the option */
  readonly names: string[];
  readonly pattern?: RegExp;
  readonly todo?: string;
  /** for a case that is known to hang (todo): fail fast instead of waiting a minute */
  readonly timeoutMs?: number;
}

/** Runs every case side by side, then checks each as its own subtest. */
async function check(t: TestContext, cases: Case[]): Promise<void> {
  const results = await pool(cases, 4, (c) => runCliAsync(c.args, c.timeoutMs ? { timeoutMs: c.timeoutMs } : {}));
  if (process.env.LOWBIT_CLI_TEST_LOG) for (const [i, r] of results.entries()) process.stderr.write(`[${cases[i]!.name}] ${r.status} ${r.stderr}`);
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]!;
    await t.test(c.name, c.todo ? { todo: c.todo } : {}, () => { assertBadInput(results[i]!, c.names, c.pattern); });
  }
}

const u64 = (bytes: Uint8Array, at: number, v: bigint): Uint8Array => {
  const out = bytes.slice();
  new DataView(out.buffer, out.byteOffset).setBigUint64(at, v, true);
  return out;
};
const i32s = (bytes: Uint8Array, fields: Record<number, number>): Uint8Array => {
  const out = bytes.slice();
  const v = new DataView(out.buffer, out.byteOffset);
  for (const [i, x] of Object.entries(fields)) v.setInt32(4 * Number(i), x, true);
  return out;
};
/** Cut points: a few first bytes, around `marks` (where a header ends), the middle, the last byte. */
const cuts = (size: number, marks: number[], first = [0, 4, 8, 24]): number[] =>
  [...new Set([...first, ...marks.flatMap((m) => [m - 1, m, m + 1]), size >> 1, size - 1])]
    .filter((c) => c >= 0 && c < size).sort((a, b) => a - b);

// ---------- HF folder: config.json + model.safetensors + tokenizer.json ----------

const HF_SIDE_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];
const ST = readBytes(join(TINY656K, 'model.safetensors'));
const ST_HEADER_LEN = Number(new DataView(ST.buffer, ST.byteOffset).getBigUint64(0, true));
const ST_HEADER = JSON.parse(new TextDecoder().decode(ST.subarray(8, 8 + ST_HEADER_LEN))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;

/** A copy of the TinyStories-656K folder with the given safetensors bytes / config text / tokenizer text. */
function hfFolder(parts: { st?: Uint8Array | null; config?: string; tokenizer?: string } = {}): { dir: string; st: string; config: string; tokenizer: string } {
  const dir = scratch('hf');
  for (const f of HF_SIDE_FILES) copyFileSync(join(TINY656K, f), join(dir, f));
  const st = join(dir, 'model.safetensors');
  if (parts.st !== null) writeFileSync(st, parts.st ?? ST);
  if (parts.config !== undefined) writeFileSync(join(dir, 'config.json'), parts.config);
  if (parts.tokenizer !== undefined) writeFileSync(join(dir, 'tokenizer.json'), parts.tokenizer);
  return { dir, st, config: join(dir, 'config.json'), tokenizer: join(dir, 'tokenizer.json') };
}

/** The safetensors file with its header replaced (data bytes unchanged). */
function withHeader(edit: (h: typeof ST_HEADER) => void): Uint8Array {
  const h = structuredClone(ST_HEADER);
  edit(h);
  const json = new TextEncoder().encode(JSON.stringify(h));
  const data = ST.subarray(8 + ST_HEADER_LEN);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

test('safetensors: every truncation is one line naming the file, exit 2', async (t) => {
  const cases = cuts(ST.length, [8 + ST_HEADER_LEN]).map((cut): Case => {
    const f = hfFolder({ st: ST.subarray(0, cut) });
    return { name: `cut at ${cut} of ${ST.length}`, args: ['info', '--model', f.dir], names: [f.st] };
  });
  // the folder's model.safetensors given directly, and an `eval` that would read the weights
  const f = hfFolder({ st: ST.subarray(0, ST.length - 100) });
  cases.push({ name: '--model path/model.safetensors, cut 100 bytes short', args: ['info', '--model', f.st], names: [f.st] });
  cases.push({ name: 'eval on a truncated checkpoint', args: ['eval', '--model', f.dir, '--ppl', 'tinystories', '--limit', '1', '--json', '--out', join(f.dir, 'o.json')], names: [f.st] });
  await check(t, cases);
});

test('safetensors: hostile and corrupt headers', async (t) => {
  const last = Object.keys(ST_HEADER).filter((k) => k !== '__metadata__').at(-1)!;
  const garbage = ST.slice();
  garbage[8] = 0x78; // '{' → 'x'
  const cases: [string, Uint8Array, RegExp?][] = [
    ['header length 2^50', u64(ST, 0, 2n ** 50n)],
    ['header length 2^64-1', u64(ST, 0, 2n ** 64n - 1n)],
    ['header length one byte past the end', u64(ST, 0, BigInt(ST.length - 8 + 1))],
    ['header is not JSON', garbage],
    ['unknown dtype F8_E9', withHeader((h) => { h['model.embed_tokens.weight']!.dtype = 'F8_E9'; }), /F8_E9/],
    ['data_offsets 2^50 past the data', withHeader((h) => { const e = h[last]!; e.data_offsets = [e.data_offsets[0], 2 ** 50]; })],
    ['shape claiming 2^50 elements', withHeader((h) => { h['model.norm.weight']!.shape = [2 ** 25, 2 ** 25]; })],
    ['negative data offset', withHeader((h) => { h[last]!.data_offsets = [-2, 0]; })],
  ];
  await check(t, cases.map(([name, bytes, pattern]) => {
    const f = hfFolder({ st: bytes });
    return { name, args: ['info', '--model', f.dir], names: [f.st], ...(pattern ? { pattern } : {}) };
  }));
});

test('HF folder: unknown architecture, corrupt config.json, missing weights, corrupt tokenizer', async (t) => {
  const config = JSON.parse(readFileSync(join(TINY656K, 'config.json'), 'utf8')) as Record<string, unknown>;
  const gpt2 = hfFolder({ config: JSON.stringify({ ...config, architectures: ['GPT2LMHeadModel'] }) });
  const gpt2Type = hfFolder({ config: JSON.stringify({ ...config, architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }) });
  const cutConfig = hfFolder({ config: readFileSync(join(TINY656K, 'config.json'), 'utf8').slice(0, 100) });
  const huge = hfFolder({ config: JSON.stringify({ ...config, hidden_size: 2 ** 40, num_attention_heads: 8 }) });
  const noWeights = hfFolder({ st: null });
  const cutTok = hfFolder({ tokenizer: readFileSync(join(TINY656K, 'tokenizer.json'), 'utf8').slice(0, 5000) });
  await check(t, [
    { name: 'architectures ["GPT2LMHeadModel"]', args: ['info', '--model', gpt2.dir], names: [gpt2.config], pattern: /GPT2LMHeadModel/ },
    { name: 'GPT2LMHeadModel, model_type gpt2', args: ['info', '--model', gpt2Type.dir], names: [gpt2Type.config], pattern: /GPT2LMHeadModel|gpt2/ },
    { name: 'GPT2LMHeadModel via eval', args: ['eval', '--model', gpt2.dir, '--ppl', 'tinystories', '--limit', '1', '--out', join(gpt2.dir, 'o.json')], names: [gpt2.config] },
    { name: 'config.json cut at 100 bytes', args: ['info', '--model', cutConfig.dir], names: [cutConfig.config] },
    { name: 'hidden_size 2^40', args: ['info', '--model', huge.dir], names: [huge.dir] },
    { name: 'no model.safetensors', args: ['info', '--model', noWeights.dir], names: [noWeights.dir] },
    { name: 'tokenizer.json cut at 5000 chars', args: ['info', '--model', cutTok.dir], names: [cutTok.tokenizer] },
  ]);
});

// ---------- GGUF ----------

const GGUF_FILES = [
  join(STORIES260K, 'stories260K.gguf'),
  join(TINY656K, 'gguf', 'TinyStories-656K-GGUF', 'TinyStories-656K.f16.gguf'),
];

/** The GGUF with general.architecture's value "llama" replaced by another 5-letter name. */
function ggufArchitecture(bytes: Uint8Array, arch: string): Uint8Array {
  const key = new TextEncoder().encode('general.architecture');
  const at = Buffer.from(bytes).indexOf(key);
  if (at < 0) throw new Error('no general.architecture key');
  const value = at + key.length + 4 + 8; // type u32, string length u64
  const out = bytes.slice();
  out.set(new TextEncoder().encode(arch), value);
  return out;
}

test('GGUF: every truncation is one line naming the file, exit 2', async (t) => {
  const cases: Case[] = [];
  for (const [k, src] of GGUF_FILES.entries()) {
    const bytes = readBytes(src);
    for (const cut of k === 0 ? cuts(bytes.length, [2000], [0, 3, 4, 8, 16, 24, 200]) : [24, 20000, bytes.length - 1]) {
      const p = writeTemp('m.gguf', bytes.subarray(0, cut));
      cases.push({ name: `${src.split('/').at(-1)} cut at ${cut} of ${bytes.length}`, args: ['info', '--model', p], names: [p] });
    }
  }
  await check(t, cases);
});

test('GGUF: hostile headers and an unknown architecture', async (t) => {
  const bytes = readBytes(GGUF_FILES[0]!);
  const badMagic = bytes.slice();
  badMagic.set(new TextEncoder().encode('GGUX'), 0);
  const cases: [string, Uint8Array, RegExp?][] = [
    ['tensor count 2^40', u64(bytes, 8, 2n ** 40n)],
    ['tensor count 2^64-1', u64(bytes, 8, 2n ** 64n - 1n)],
    ['kv count 2^40', u64(bytes, 16, 2n ** 40n)],
    ['first key length 2^50', u64(bytes, 24, 2n ** 50n)],
    ['bad magic', badMagic],
    ['version 99', i32s(bytes, { 1: 99 })],
    ['general.architecture "bloom"', ggufArchitecture(bytes, 'bloom'), /bloom/],
  ];
  await check(t, cases.map(([name, b, pattern]) => {
    const p = writeTemp('m.gguf', b);
    return { name, args: ['info', '--model', p], names: [p], ...(pattern ? { pattern } : {}) };
  }));
});

// ---------- llama2.c ----------

const L2C = readBytes(join(STORIES260K, 'stories260K.bin'));
const TOK = readBytes(join(STORIES260K, 'tok512.bin'));

/** A folder with a llama2.c checkpoint and its tokenizer; returns both paths. */
function l2cFolder(ckpt: Uint8Array, tok: Uint8Array = TOK): { bin: string; tok: string } {
  const dir = scratch('l2c');
  writeFileSync(join(dir, 'stories260K.bin'), ckpt);
  writeFileSync(join(dir, 'tok512.bin'), tok);
  return { bin: join(dir, 'stories260K.bin'), tok: join(dir, 'tok512.bin') };
}

test('llama2.c: every truncation is one line naming the file, exit 2', async (t) => {
  const cases = cuts(L2C.length, [28], [0, 4]).map((cut): Case => {
    const f = l2cFolder(L2C.subarray(0, cut));
    return { name: `cut at ${cut} of ${L2C.length}`, args: ['info', '--model', f.bin], names: [f.bin] };
  });
  const f = l2cFolder(L2C.subarray(0, L2C.length - 4));
  cases.push({ name: 'generate on a checkpoint 4 bytes short', args: ['generate', '--model', f.bin, '--steps', '2'], names: [f.bin] });
  await check(t, cases);
});

test('llama2.c: headers that claim more than the file has, and nonsense fields', async (t) => {
  const cases: [string, Record<number, number>, string?][] = [
    ['dim 2^30', { 0: 2 ** 30 }],
    ['dim 2^31-8 (int32 max, 8 heads)', { 0: 2 ** 31 - 8 }],
    ['hidden_dim 2^31-1', { 1: 2 ** 31 - 1 }],
    ['n_layers 2^31-1', { 2: 2 ** 31 - 1 }],
    ['vocab_size 2^31-1', { 5: 2 ** 31 - 1 }],
    ['vocab_size -(2^31)', { 5: -(2 ** 31) }],
    ['seq_len 2^31-1', { 6: 2 ** 31 - 1 }],
    ['dim 0', { 0: 0 }],
    ['n_heads -8', { 3: -8 }],
    ['n_kv_heads 3 (does not divide 8)', { 4: 3 }],
  ];
  await check(t, cases.map(([name, fields, todo]) => {
    const f = l2cFolder(i32s(L2C, fields));
    return { name, args: ['info', '--model', f.bin], names: [f.bin], ...(todo ? { todo, timeoutMs: 5000 } : {}) };
  }));
});

test('llama2.c tokenizer: truncated or hostile tok512.bin is named', async (t) => {
  const cases: Case[] = cuts(TOK.length, [8, 12]).map((cut) => {
    const f = l2cFolder(L2C, TOK.subarray(0, cut));
    return { name: `tok512.bin cut at ${cut} of ${TOK.length}`, args: ['info', '--model', f.bin], names: [f.tok] };
  });
  const huge = l2cFolder(L2C, i32s(TOK, { 2: 2 ** 31 - 1 })); // max_token_length, score, then the first token's length
  cases.push({ name: 'first token length 2^31-1', args: ['info', '--model', huge.bin], names: [huge.tok] });
  const none = scratch('l2c');
  writeFileSync(join(none, 'stories260K.bin'), L2C);
  cases.push({ name: 'no tok*.bin beside the checkpoint', args: ['info', '--model', join(none, 'stories260K.bin')], names: [join(none, 'stories260K.bin')], pattern: /--tokenizer/ });
  await check(t, cases);
});

// ---------- datasets ----------

test('datasets: missing files, seqlen longer than the data, unknown set names', async (t) => {
  const empty = scratch('data');
  const tiny = writeTemp('x.txt', 'Once upon a time, there was a cat.\n');
  const blank = writeTemp('blank.txt', '');
  const missing = join(scratch(), 'missing.txt');
  const out = (): string[] => ['--out', join(scratch(), 'o.json')];
  await check(t, [
    { name: '--data-dir is an empty folder (tinystories)', args: ['eval', '--ppl', 'tinystories', '--data-dir', empty, '--limit', '1', ...out()], names: [empty], pattern: /not found|does not exist|missing/ },
    { name: '--data-dir is an empty folder (wikitext2)', args: ['eval', '--ppl', 'wikitext2', '--data-dir', empty, '--limit', '1', ...out()], names: [empty] },
    { name: '--data-dir is an empty folder (c4)', args: ['eval', '--ppl', 'c4', '--data-dir', empty, '--limit', '1', ...out()], names: [empty] },
    { name: '--data-dir does not exist', args: ['eval', '--ppl', 'ptb', '--data-dir', join(empty, 'nope'), '--limit', '1', ...out()], names: [join(empty, 'nope')] },
    { name: '--seqlen 256 on a 10-token text file', args: ['eval', '--ppl', tiny, '--seqlen', '256', ...out()], names: [tiny], pattern: /seqlen|longer|tokens/ },
    { name: 'default seqlen (512) on a 10-token text file', args: ['eval', '--ppl', tiny, ...out()], names: [tiny] },
    { name: 'file:PATH with a 10-token text file', args: ['eval', '--ppl', `file:${tiny}`, '--seqlen', '64', ...out()], names: [tiny] },
    { name: 'an empty text file', args: ['eval', '--ppl', blank, '--seqlen', '16', ...out()], names: [blank] },
    { name: 'file:PATH that does not exist', args: ['eval', '--ppl', `file:${missing}`, '--seqlen', '16', ...out()], names: [missing], pattern: /not exist|not found/ },
    { name: 'a path that does not exist', args: ['eval', '--ppl', missing, '--seqlen', '16', ...out()], names: [missing] },
    { name: 'unknown --ppl set', args: ['eval', '--ppl', 'wikitext3', '--limit', '1', ...out()], names: ['wikitext3'] },
    { name: 'empty --ppl list', args: ['eval', '--ppl', ' , ', '--limit', '1', ...out()], names: ['--ppl'] },
  ]);
});

// ---------- options ----------

test('options: bad values, unknown options and commands, missing models', async (t) => {
  const notDir = writeTemp('plain-file', 'x');
  const text = writeTemp('t.txt', 'Once upon a time, there was a cat. '.repeat(40));
  const nowhere = join(scratch(), 'no-such-model');
  const l2c = join(STORIES260K, 'stories260K.bin');
  await check(t, [
    { name: '--limit 0', args: ['eval', '--ppl', 'tinystories', '--limit', '0'], names: ['--limit'] },
    { name: '--limit -3', args: ['eval', '--ppl', 'tinystories', '--limit', '-3'], names: ['--limit'] },
    { name: '--limit 1.5', args: ['eval', '--ppl', 'tinystories', '--limit', '1.5'], names: ['--limit'] },
    { name: '--seqlen abc', args: ['eval', '--ppl', 'tinystories', '--seqlen', 'abc'], names: ['--seqlen', 'abc'] },
    { name: '--seqlen 1', args: ['eval', '--ppl', 'tinystories', '--seqlen', '1'], names: ['--seqlen'] },
    { name: '--limit without a value', args: ['eval', '--limit'], names: ['--limit'] },
    { name: 'unknown option --bogus (eval)', args: ['eval', '--bogus'], names: ['--bogus'] },
    { name: 'unknown option --limt (info)', args: ['info', '--limt', '3'], names: ['--limt'] },
    { name: 'unknown option before the command', args: ['--bogus', 'info'], names: ['--bogus'] },
    { name: 'unknown command', args: ['frobnicate'], names: ['frobnicate'] },
    { name: '--model does not exist (info)', args: ['info', '--model', nowhere], names: [nowhere] },
    { name: '--model does not exist (eval)', args: ['eval', '--model', nowhere, '--ppl', 'tinystories', '--limit', '1'], names: [nowhere] },
    { name: '--model does not exist (generate)', args: ['generate', '--model', nowhere], names: [nowhere] },
    { name: '--model is a text file', args: ['info', '--model', text], names: [text] },
    { name: '--model is a folder with no checkpoint', args: ['info', '--model', scratch()], names: ['no config.json'] },
    { name: '--tokenizer does not exist', args: ['info', '--model', l2c, '--tokenizer', nowhere], names: [nowhere] },
    { name: '--steps 0', args: ['generate', '--model', l2c, '--steps', '0'], names: ['--steps'] },
    { name: '--threads 0', args: ['generate', '--model', l2c, '--threads', '0'], names: ['--threads'] },
    { name: '--cpu-kernels gpu', args: ['generate', '--model', l2c, '--cpu-kernels', 'gpu'], names: ['--cpu-kernels'] },
    { name: '--backend cuda', args: ['generate', '--model', l2c, '--backend', 'cuda'], names: ['cuda'] },
    { name: 'empty prompt with --no-bos', args: ['generate', '--model', l2c, '--prompt', '', '--no-bos', '--steps', '2'], names: ['--no-bos'] },
    { name: '--out under a plain file', args: ['eval', '--model', l2c, '--ppl', text, '--seqlen', '16', '--limit', '1', '--out', join(notDir, 'r.json')], names: [join(notDir, 'r.json')] },
  ]);
});
