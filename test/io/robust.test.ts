// The fuzzing campaign's findings (issue 10, item 6), each as the reproducer that failed before its
// fix: openModel refuses what the engine would mis-run or crash on, with a LowbitError naming the
// file at fault, and accepts what it can run. Cases that used to hang live in test/cli/robust.test.ts
// (a child process with a time limit).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { FormatError, LowbitError, UsageError } from '../../src/errors.js';
import { openModel } from '../../src/io/open.js';
import { NAMES } from '../../src/io/source.js';
import { loadHfTokenizer } from '../../src/io/tokenizers/hf.js';
import { streamedNll } from '../../src/model/stream.js';
import { STORIES260K, TINY656K } from '../helpers/paths.js';
import { folderWith, ggufMap, ggufWithNumber, patched, removeScratch, safetensorsHeader, scratchDir, withSafetensorsHeader, type JsonValue } from './mutate.js';
import { quantizedTiny } from './quantizedFixture.js';

after(removeScratch);

const ST = new Uint8Array(readFileSync(join(TINY656K, 'model.safetensors')));
const CONFIG = JSON.parse(readFileSync(join(TINY656K, 'config.json'), 'utf8')) as Record<string, JsonValue>;
const TOKENIZER = JSON.parse(readFileSync(join(TINY656K, 'tokenizer.json'), 'utf8')) as Record<string, JsonValue>;
const GGUF_F16 = join(TINY656K, 'gguf/TinyStories-656K-GGUF/TinyStories-656K.f16.gguf');
const GGUF_Q8 = join(TINY656K, 'gguf/TinyStories-656K-Q8_0-GGUF/tinystories-656k-q8_0.gguf');
const GGUF_260K = new Uint8Array(readFileSync(join(STORIES260K, 'stories260K.gguf')));

/** `fn` throws a LowbitError of class `cls` whose message starts with `file` and matches `re`. */
function refuses(fn: () => unknown, cls: typeof LowbitError, file: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String((e as Error)?.stack ?? e)}`);
    assert.ok(e.message.startsWith(`${file}: `), `the message must name ${file}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

const withConfig = (edit: Record<string, JsonValue | undefined>, files: Record<string, string | null> = {}): string =>
  folderWith(TINY656K, { 'config.json': JSON.stringify({ ...CONFIG, ...edit }), ...files });
const withTokenizer = (json: JsonValue): string => folderWith(TINY656K, { 'tokenizer.json': JSON.stringify(json) });
/** TinyStories-656K with its safetensors header edited (the data section kept). */
const withHeader = (edit: (h: Record<string, any>) => void, data?: Uint8Array): string => {
  const h = structuredClone(safetensorsHeader(ST).header) as Record<string, any>;
  edit(h);
  return folderWith(TINY656K, { 'model.safetensors': withSafetensorsHeader(ST, h, data) });
};

// ---------- 1. counts checked against what the file holds ----------

test('a config with more layers than the weights names the first missing tensor, whatever the count', () => {
  for (const n of [3, 1_000_000, 2 ** 31 - 1]) {
    const d = withConfig({ num_hidden_layers: n });
    refuses(() => openModel(d), FormatError, join(d, 'model.safetensors'), new RegExp(`"model\\.layers\\.2\\.input_layernorm\\.weight" is missing \\(the config has ${n} layers, the file holds 2\\)`));
  }
  const g = scratchDir();
  writeFileSync(join(g, 'm.gguf'), ggufWithNumber(GGUF_260K, 'llama.block_count', 2 ** 31 - 1));
  refuses(() => openModel(join(g, 'm.gguf')), FormatError, join(g, 'm.gguf'), /model\.layers\.5\.input_layernorm\.weight" is missing/);
});

test('tokenizer.json ids far beyond the entries it holds are refused before the library sizes arrays by them', () => {
  const vocab = { ...(TOKENIZER.model as Record<string, JsonValue>).vocab as Record<string, JsonValue>, zzz: 1e9 };
  const d = withTokenizer({ ...TOKENIZER, model: { ...(TOKENIZER.model as object), vocab } });
  refuses(() => loadHfTokenizer(d), FormatError, join(d, 'tokenizer.json'), /token id 1000000000 is far beyond the 2052 tokens the file holds/);
});

// ---------- 2. token ids outside the vocabulary ----------

test('tokenizer ids beyond the embedding rows, and special ids outside the vocabulary, are refused at open', () => {
  const model = TOKENIZER.model as Record<string, JsonValue>;
  const vocab = { ...model.vocab as Record<string, JsonValue>, zzz: 2050 };
  let d = withTokenizer({ ...TOKENIZER, model: { ...model, vocab } });
  refuses(() => openModel(d), FormatError, join(d, 'tokenizer.json'), /ids go up to 2050, beyond the model's 2048 embedding rows/);
  const added = [...TOKENIZER.added_tokens as JsonValue[], { id: 2100, content: '<extra>', special: true }];
  d = withTokenizer({ ...TOKENIZER, added_tokens: added });
  refuses(() => openModel(d), FormatError, join(d, 'tokenizer.json'), /ids go up to 2100/);
  // config.json's ids: checked against vocab_size when the config is read (the tokenizer falls back to them)
  d = withConfig({ bos_token_id: 5000 }, { 'tokenizer_config.json': null });
  refuses(() => openModel(d), FormatError, join(d, 'config.json'), /BOS token id 5000 is outside the vocabulary of 2048 tokens/);
  for (const id of [512, 2 ** 31, 2 ** 32 - 1]) {
    const g = join(scratchDir(), 'm.gguf');
    writeFileSync(g, ggufWithNumber(GGUF_260K, 'tokenizer.ggml.bos_token_id', id));
    refuses(() => openModel(g), FormatError, g, new RegExp(`BOS token id ${id} is outside the vocabulary of 512 tokens`));
  }
});

// ---------- 3 and 7. quantized checkpoints: the same checks, naming the file ----------

test('quantized checkpoints: shape checks of every format, errors naming the file at fault', async () => {
  const q = await quantizedTiny();
  assert.equal(openModel(q).format, 'lowbit-gptq');
  const qst = new Uint8Array(readFileSync(join(q, 'model.safetensors')));
  const header = safetensorsHeader(qst).header as Record<string, any>;
  const withQHeader = (edit: (h: Record<string, any>) => void): string => {
    const h = structuredClone(header);
    edit(h);
    return folderWith(q, { 'model.safetensors': withSafetensorsHeader(qst, h) });
  };
  let d = folderWith(q, { 'quantize_config.json': 'null' });
  refuses(() => openModel(d), FormatError, join(d, 'quantize_config.json'), /not a JSON object/);
  d = folderWith(q, { 'quantize_config.json': '{"bits": "4"}' });
  refuses(() => openModel(d), FormatError, join(d, 'quantize_config.json'), /bits must be an integer 1–8/);
  const g = 'model.layers.0.mlp.down_proj.g_idx';
  d = withQHeader((h) => { h[g].shape = [2, h[g].shape[0] / 2]; });
  refuses(() => openModel(d), FormatError, join(d, 'model.safetensors'), /"model\.layers\.0\.mlp\.down_proj\.g_idx" has shape \[2, 192\]; for 4-bit GPTQ it must be \[in\]/);
  d = withQHeader((h) => { h['model.norm.weight'].shape = [2, 64]; });
  refuses(() => openModel(d), FormatError, join(d, 'model.safetensors'), /"model\.norm\.weight" has shape \[2, 64\], the config implies \[128\]/);
  d = withQHeader((h) => { delete h['model.layers.1.self_attn.k_proj.qzeros']; h.pad = { dtype: 'U8', shape: [header['model.layers.1.self_attn.k_proj.qzeros'].data_offsets[1] - header['model.layers.1.self_attn.k_proj.qzeros'].data_offsets[0]], data_offsets: header['model.layers.1.self_attn.k_proj.qzeros'].data_offsets }; });
  refuses(() => openModel(d), FormatError, join(d, 'model.safetensors'), /k_proj has a qweight but no qzeros/);
  const qconfig = JSON.parse(readFileSync(join(q, 'config.json'), 'utf8')) as Record<string, JsonValue>;
  d = folderWith(q, { 'config.json': JSON.stringify({ ...qconfig, head_dim: 15 }) });
  refuses(() => openModel(d), FormatError, join(d, 'config.json'), /head dimension 15 is odd/);
  d = folderWith(q, { 'config.json': JSON.stringify({ ...qconfig, head_dim: 8 }) });
  refuses(() => openModel(d), FormatError, join(d, 'model.safetensors'), /"model\.layers\.0\.self_attn\.q_proj\.weight" has shape \[128, 128\], the config implies \[64, 128\]/);
});

// ---------- 5. silent wrong results ----------

test('non-finite weights: the file and the tensor are named when the weight is read', async () => {
  const { header, dataStart } = safetensorsHeader(ST);
  const norm = header['model.norm.weight'] as { data_offsets: [number, number] };
  for (const bits of [0x7fc0, 0x7f80, 0xff80]) { // bf16 NaN, +Inf, -Inf
    const data = ST.slice(dataStart);
    new DataView(data.buffer).setUint16(norm.data_offsets[0] + 6, bits, true);
    const d = withHeader(() => {}, data);
    const ck = openModel(d);
    refuses(() => ck.weights.read(NAMES.finalNorm), FormatError, join(d, 'model.safetensors'), /tensor "model\.norm\.weight" holds non-finite values \(element 3/);
    await assert.rejects(streamedNll(ck, new CpuBackend(), [Int32Array.of(1, 5, 9)]), /model\.safetensors: tensor "model\.norm\.weight" holds non-finite values/);
  }
});

test('integer dtypes are refused as weights', () => {
  for (const [dtype, shape] of [['I16', [128]], ['U8', [256]], ['I8', [256]], ['BOOL', [256]], ['I32', [64]]] as const) {
    const d = withHeader((h) => { h['model.norm.weight'].dtype = dtype; h['model.norm.weight'].shape = shape; });
    refuses(() => openModel(d), FormatError, join(d, 'model.safetensors'), new RegExp(`"model\\.norm\\.weight" is stored as ${dtype}; a weight must be floating point`));
  }
});

test('fewer layers in the config than in the weights, biases and unsupported activations are refused', () => {
  let d = withConfig({ num_hidden_layers: 1 });
  refuses(() => openModel(d), FormatError, join(d, 'model.safetensors'), /"model\.layers\.1\.[a-z_.]+weight" belongs to layer 1, but the config has 1 layers/);
  for (const [edit, re] of [
    [{ attention_bias: true }, /"attention_bias": true is not supported/],
    [{ mlp_bias: true }, /"mlp_bias": true is not supported/],
    [{ hidden_act: 'gelu' }, /"hidden_act" "gelu" is not supported/],
    [{ max_position_embeddings: 1 }, /context .* is 1; it must be at least 2/],
  ] as const) {
    d = withConfig(edit);
    refuses(() => openModel(d), FormatError, join(d, 'config.json'), re);
  }
  assert.equal(openModel(withConfig({ hidden_act: 'silu', attention_bias: false, mlp_bias: false })).format, 'hf');
  // a bias tensor in the weights (the norm's bytes reused: the data section is unchanged)
  d = withHeader((h) => {
    const n = h['model.norm.weight'];
    delete h['model.norm.weight'];
    h['model.layers.0.self_attn.q_proj.bias'] = n;
  });
  refuses(() => openModel(d), FormatError, join(d, 'model.safetensors'), /"model\.layers\.0\.self_attn\.q_proj\.bias" is a bias/);
});

test('GGUF tensors whose data overlap are refused', () => {
  const map = ggufMap(GGUF_260K);
  const [a, b] = [map.tensors[1]!, map.tensors[2]!];
  const g = join(scratchDir(), 'm.gguf');
  writeFileSync(g, patched(GGUF_260K, b.offsetAt, (v) => v.setBigUint64(0, a.offset, true)));
  refuses(() => openModel(g), FormatError, g, new RegExp(`overlaps tensor "(${a.name}|${b.name})"`));
});

// ---------- 4. the bundled GGUFs encode the bundled data ----------

test('TinyStories-656K GGUFs: characters with no piece and no byte token encode as <unk>, a run as one', () => {
  for (const file of [GGUF_F16, GGUF_Q8]) {
    const tok = openModel(file).tokenizer;
    const plain = tok.encode('a b', { bos: false });
    const ids = tok.encode('a = b', { bos: false });
    assert.ok(ids.includes(0), `"=" has no piece in ${file}: expected <unk> (0) in ${ids}`);
    assert.deepEqual(tok.encode('a ãé b', { bos: false }).filter((x) => x === 0), [0]);
    assert.equal(tok.decode(ids), tok.decode(plain).replace(' b', '  b'));
  }
});

// ---------- 6. --tokenizer for every format ----------

test('the tokenizer option is honoured for every format, and a missing one is a UsageError', async () => {
  const q = await quantizedTiny();
  for (const model of [GGUF_F16, q, join(STORIES260K, 'stories260K.gguf')]) {
    const alt = model.includes('stories260K') ? join(STORIES260K, 'tok512.bin') : TINY656K;
    const ck = openModel(model, { tokenizer: alt });
    assert.equal(ck.tokenizer.kind, model.includes('stories260K') ? 'llama2c-spm' : 'tokenizer.json', model);
    assert.equal(ck.tokenizerPath, alt);
  }
  assert.equal(openModel(TINY656K, { tokenizer: GGUF_F16 }).tokenizer.kind, 'gguf-spm');
  for (const model of [TINY656K, GGUF_F16, q, join(STORIES260K, 'stories260K.bin')]) {
    assert.throws(() => openModel(model, { tokenizer: '/nonexistent' }), (e: unknown) => e instanceof UsageError && e.message === 'tokenizer /nonexistent does not exist');
  }
  // a tokenizer bigger than the model is refused whichever way it comes
  refuses(() => openModel(join(STORIES260K, 'stories260K.gguf'), { tokenizer: TINY656K }), FormatError, join(TINY656K, 'tokenizer.json'), /beyond the model's 512 embedding rows/);
});

// ---------- 7 and 8. tokenizer.json: broken model types and decoders are named at load ----------

test('tokenizer.json: an unknown model type and a decoder with an invalid regex are FormatErrors at load', () => {
  let d = withTokenizer({ ...TOKENIZER, model: { ...(TOKENIZER.model as object), type: 'garbage' } });
  refuses(() => openModel(d), FormatError, join(d, 'tokenizer.json'), /model type "garbage" is not supported/);
  d = withTokenizer({ ...TOKENIZER, model: { ...(TOKENIZER.model as object), type: 'Unigram' } });
  refuses(() => openModel(d), FormatError, join(d, 'tokenizer.json'), /Unigram "model\.vocab" must be a list/);
  d = withTokenizer({ ...TOKENIZER, decoder: { type: 'Replace', pattern: { Regex: '(' }, content: ' ' } });
  refuses(() => loadHfTokenizer(d), FormatError, join(d, 'tokenizer.json'), /fails on a probe text/);
  d = withTokenizer({ ...TOKENIZER, normalizer: { type: 'Replace', pattern: { Regex: '[' }, content: ' ' } });
  refuses(() => loadHfTokenizer(d), FormatError, join(d, 'tokenizer.json'), /cannot build the tokenizer: Invalid regular expression/);
  d = withTokenizer({ ...TOKENIZER, added_tokens: [], normalizer: { type: 'Replace', pattern: { Regex: '[' }, content: ' ' } });
  refuses(() => loadHfTokenizer(d), FormatError, join(d, 'tokenizer.json'), /fails on a probe text: Invalid regular expression/);
});
