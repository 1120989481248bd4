import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readGgufHeader } from '../../src/io/gguf/parse.js';
import { ggufConfig, ggufVocab } from '../../src/io/gguf/config.js';
import { GgufSource, hfName } from '../../src/io/gguf/source.js';
import { GgmlType } from '../../src/io/gguf/types.js';
import { readHfConfig } from '../../src/io/hfConfig.js';
import { halvesToPairs } from '../../src/io/qkPermute.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { bf16ToF32, f16ToF32, f32ToF16 } from '../../src/tensor/codecs.js';
import { STORIES260K, TINY656K } from '../helpers/paths.js';
import { buildGguf, tinyLlamaKvs } from './ggufBuilder.js';

const F16_GGUF = join(TINY656K, 'gguf/TinyStories-656K-GGUF/TinyStories-656K.f16.gguf');
const Q8_GGUF = join(TINY656K, 'gguf/TinyStories-656K-Q8_0-GGUF/tinystories-656k-q8_0.gguf');

function open(path: string): GgufSource {
  const h = readGgufHeader(path);
  return new GgufSource(path, ggufConfig(h), h);
}

const bf = SafetensorsFile.open(join(TINY656K, 'model.safetensors'));

test('TinyStories-656K GGUFs: config equals config.json, 20 canonical tensors', () => {
  const hf = readHfConfig(join(TINY656K, 'config.json'));
  for (const p of [F16_GGUF, Q8_GGUF]) {
    const h = readGgufHeader(p);
    assert.equal(h.version, 3);
    assert.deepEqual(ggufConfig(h), hf);
    const src = new GgufSource(p, hf, h);
    assert.deepEqual(src.list().map((t) => t.name).sort(), bf.list().map((t) => t.name).sort());
    for (const t of src.list()) assert.deepEqual(t.shape, bf.list().find((b) => b.name === t.name)!.shape);
    const v = ggufVocab(h);
    assert.equal(v.model, 'llama');
    assert.equal(v.tokens.length, 2048);
    assert.equal(v.tokens[1], '<|start_story|>');
    assert.equal(v.addBos, true);
  }
});

test('TinyStories-656K F16 GGUF (q/k un-permuted) equals the BF16 weights converted to f16, exactly', () => {
  const src = open(F16_GGUF);
  const counts: Record<string, number> = {};
  for (const t of bf.list()) {
    const info = src.list().find((x) => x.name === t.name)!;
    counts[info.storedAs] = (counts[info.storedAs] ?? 0) + 1;
    const want = bf.read(t.name).data as Uint16Array;
    const got = src.read(t.name);
    for (let i = 0; i < want.length; i++) {
      const x = bf16ToF32(want[i]!);
      const ok = info.storedAs === 'F16' ? (got.data as Uint16Array)[i] === f32ToF16(x) : Object.is((got.data as Float32Array)[i], x);
      if (!ok) assert.fail(`${t.name}[${i}]`);
    }
  }
  assert.deepEqual(counts, { F16: 15, F32: 5 });
});

/** llama.cpp quantize_row_q8_0_ref, in float32 arithmetic, then dequantized: d·q. */
function refQ8_0(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  const f = Math.fround;
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]!));
    const d = f(amax / 127);
    const id = d ? f(1 / d) : 0;
    const dStored = f16ToF32(f32ToF16(d));
    for (let j = 0; j < 32; j++) {
      const v = f(x[b + j]! * id);
      const q = Math.sign(v) * Math.floor(Math.abs(v) + 0.5); // roundf: half away from zero
      out[b + j] = dStored * (q === 0 ? 0 : q); // int8 has no -0
    }
  }
  return out;
}

test('TinyStories-656K Q8_0 GGUF equals llama.cpp reference Q8_0 of the BF16 weights, every tensor', () => {
  const src = open(Q8_GGUF);
  let quantized = 0;
  for (const t of bf.list()) {
    const info = src.list().find((x) => x.name === t.name)!;
    const x = bf.read(t.name).toF32();
    const want = info.storedAs === 'Q8_0' ? refQ8_0(x) : x;
    quantized += info.storedAs === 'Q8_0' ? 1 : 0;
    const got = src.read(t.name);
    assert.equal(got.dtype, 'f32');
    const g = got.data as Float32Array;
    for (let i = 0; i < want.length; i++) if (!Object.is(g[i], want[i])) assert.fail(`${t.name}[${i}]: ${g[i]} vs ${want[i]}`);
  }
  assert.equal(quantized, 15);
});

test('stories260K GGUF: config values from its metadata', () => {
  const c = ggufConfig(readGgufHeader(join(STORIES260K, 'stories260K.gguf')));
  assert.deepEqual(c, {
    hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8, vocabSize: 512,
    rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, maxPositionEmbeddings: 2048,
    tieWordEmbeddings: false, // it stores output.weight (a copy of token_embd)
    bosTokenId: 1, eosTokenId: 2,
  });
});

test('Q4_0 blocks decode as d·(q − 8), low nibbles first; q rows are un-permuted after decoding', () => {
  // ffn_up: one row of 64 values = 2 blocks; attn_q: 4 rows of 32, one block each
  const block = (d: number, nibbles: number[]): Uint8Array => {
    const b = new Uint8Array(18);
    const h = f32ToF16(d);
    b[0] = h & 0xff; b[1] = h >> 8;
    for (let j = 0; j < 16; j++) b[2 + j] = nibbles[j]! | (nibbles[j + 16]! << 4);
    return b;
  };
  const nib = (s: number): number[] => Array.from({ length: 32 }, (_, i) => (i * 7 + s) % 16);
  const want = (d: number, n: number[]): number[] => n.map((q) => f16ToF32(f32ToF16(d)) * (q - 8));
  const up = new Uint8Array([...block(0.5, nib(0)), ...block(-0.013, nib(3))]);
  const qRowsPairs = [0, 1, 2, 3].map((r) => block(r + 1, nib(r)));
  const q = new Uint8Array(qRowsPairs.flatMap((b) => [...b]));
  const tmp = mkdtempSync(join(tmpdir(), 'lowbit-q4-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const p = join(tmp, 'q4.gguf');
  writeFileSync(p, buildGguf(tinyLlamaKvs(), [
    { name: 'blk.0.ffn_up.weight', ne: [64, 1], type: GgmlType.Q4_0, data: up },
    { name: 'blk.0.attn_q.weight', ne: [32, 4], type: GgmlType.Q4_0, data: q },
  ]));
  const src = new GgufSource(p, { numHeads: 2, numKvHeads: 2 });
  assert.deepEqual([...src.read('model.layers.0.mlp.up_proj.weight').data], [...want(0.5, nib(0)), ...want(-0.013, nib(3))]);
  // read as one head of dim 4: stored pair rows (r0,r1),(r2,r3) become halves r0,r2 | r1,r3
  const oneHead = new GgufSource(p, { numHeads: 1, numKvHeads: 1 });
  const rows = [0, 1, 2, 3].map((r) => want(r + 1, nib(r)));
  const pairsLayout = Float32Array.from(rows.flat());
  assert.deepEqual([...oneHead.read('model.layers.0.self_attn.q_proj.weight').data], [...rows[0]!, ...rows[2]!, ...rows[1]!, ...rows[3]!]);
  assert.deepEqual(halvesToPairs(oneHead.read('model.layers.0.self_attn.q_proj.weight').data as Float32Array, 4, 32, 1), pairsLayout);
});

test('GGUF tensor names map to HF names', () => {
  assert.equal(hfName('token_embd.weight'), 'model.embed_tokens.weight');
  assert.equal(hfName('blk.11.attn_output.weight'), 'model.layers.11.self_attn.o_proj.weight');
  assert.equal(hfName('blk.0.ffn_norm.weight'), 'model.layers.0.post_attention_layernorm.weight');
  assert.equal(hfName('output.weight'), 'lm_head.weight');
  assert.equal(hfName('rope_freqs.weight'), 'rope_freqs.weight');
});
