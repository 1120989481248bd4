import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormatError, UsageError } from '../../src/errors.js';
import {
  loraScaling, PEFT_CONFIG, PEFT_WEIGHTS, peftTensorName, readPeftAdapter, writePeftAdapter, type LoraFactors, type PeftAdapter,
} from '../../src/io/peft.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Xoshiro128 } from '../../src/tensor/xoshiro.js';

const root = mkdtempSync(join(tmpdir(), 'lowbit-peft-'));
const rng = new Xoshiro128(1, 2);
const factors = (r: number, rows: number, cols: number): LoraFactors => ({
  A: new Float32Array(r * cols).map(() => rng.normal()), B: new Float32Array(rows * r).map(() => rng.normal()), rows, cols,
});
const R = 2;
const adapter: PeftAdapter = {
  config: { r: R, loraAlpha: 16, loraDropout: 0.05, targetModules: ['q_proj', 'k_proj', 'down_proj'], baseModelNameOrPath: 'raincandy-u/TinyStories-656K', lowbit: { method: 'qlora', bits: 4 } },
  layers: [0, 1].map(() => ({ q_proj: factors(R, 8, 8), k_proj: factors(R, 4, 8), down_proj: factors(R, 8, 16) })),
};
const expected = { numLayers: 2, shapes: { q_proj: { rows: 8, cols: 8 }, k_proj: { rows: 4, cols: 8 }, down_proj: { rows: 8, cols: 16 } } };

const written = join(root, 'good');
writePeftAdapter(written, adapter);

test('the writer uses PEFT\'s file names, config fields, tensor names, shapes and metadata', () => {
  const cfg = JSON.parse(readFileSync(join(written, PEFT_CONFIG), 'utf8'));
  assert.deepEqual(
    { ...cfg },
    {
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 2, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['q_proj', 'k_proj', 'down_proj'],
      bias: 'none', fan_in_fan_out: false, inference_mode: true, base_model_name_or_path: 'raincandy-u/TinyStories-656K', revision: null,
      init_lora_weights: true, modules_to_save: null, layers_to_transform: null, layers_pattern: null, rank_pattern: {}, alpha_pattern: {},
      use_rslora: false, use_dora: false, lowbit: { method: 'qlora', bits: 4 },
    },
  );
  const st = SafetensorsFile.open(join(written, PEFT_WEIGHTS));
  assert.deepEqual(st.metadata, { format: 'pt' });
  const shapes = Object.fromEntries(st.list().map((t) => [t.name, [t.storedAs, ...t.shape]]));
  assert.deepEqual(shapes['base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight'], ['F32', 2, 8]);
  assert.deepEqual(shapes['base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight'], ['F32', 4, 2]);
  assert.deepEqual(shapes['base_model.model.model.layers.0.mlp.down_proj.lora_A.weight'], ['F32', 2, 16]);
  assert.deepEqual(shapes['base_model.model.model.layers.0.mlp.down_proj.lora_B.weight'], ['F32', 8, 2]);
  assert.equal(st.list().length, 2 * 3 * 2);
  assert.equal(peftTensorName(3, 'gate_proj', 'B'), 'base_model.model.model.layers.3.mlp.gate_proj.lora_B.weight');
  assert.equal(peftTensorName(0, 'o_proj', 'A'), 'base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight');
});

test('round trip is bit-exact, with and without expected shapes; scaling is α/r', () => {
  for (const back of [readPeftAdapter(written), readPeftAdapter(written, expected)]) {
    assert.deepEqual(back.config, { ...adapter.config, useRslora: false });
    assert.equal(back.layers.length, 2);
    back.layers.forEach((layer, i) => {
      for (const t of ['q_proj', 'k_proj', 'down_proj'] as const) {
        const a = adapter.layers[i]![t]!, b = layer[t]!;
        assert.deepEqual([b.rows, b.cols], [a.rows, a.cols]);
        assert.deepEqual([...new Uint32Array(b.A.buffer)], [...new Uint32Array(a.A.buffer)]);
        assert.deepEqual([...new Uint32Array(b.B.buffer)], [...new Uint32Array(a.B.buffer)]);
      }
    });
    assert.equal(loraScaling(back.config), 8);
  }
  assert.equal(loraScaling({ ...adapter.config, useRslora: true }), 16 / Math.SQRT2);
});

/** a copy of the good adapter with its tensors passed through `edit` */
let n = 0;
function variant(edit: (ts: { name: string; tensor: Tensor }[]) => { name: string; tensor: Tensor }[], config?: (c: Record<string, unknown>) => Record<string, unknown>): string {
  const dir = join(root, `v${n++}`);
  cpSync(written, dir, { recursive: true });
  const st = SafetensorsFile.open(join(written, PEFT_WEIGHTS));
  writeSafetensors(join(dir, PEFT_WEIGHTS), edit(st.list().map((t) => ({ name: t.name, tensor: st.read(t.name) }))), { format: 'pt' });
  if (config) writeFileSync(join(dir, PEFT_CONFIG), JSON.stringify(config(JSON.parse(readFileSync(join(written, PEFT_CONFIG), 'utf8')))));
  return dir;
}
function refused(dir: string, file: string, pattern: RegExp, exp?: typeof expected) {
  assert.throws(() => readPeftAdapter(dir, exp), (e: unknown) => e instanceof FormatError && e.file === join(dir, file) && pattern.test(e.message), pattern.source);
}

test('missing tensors, wrong shapes and strangers are FormatErrors naming the file and the tensor', () => {
  const kB1 = 'base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight';
  refused(variant((ts) => ts.filter((t) => t.name !== kB1)), PEFT_WEIGHTS, /tensor "base_model\.model\.model\.layers\.1\.self_attn\.k_proj\.lora_B\.weight" is missing/);
  refused(variant((ts) => ts.map((t) => (t.name === kB1 ? { name: kB1, tensor: Tensor.f32([4, 3]) } : t))), PEFT_WEIGHTS, /tensor "[^"]*layers\.1\.self_attn\.k_proj\.lora_B\.weight" has shape \[4, 3\], expected \[out, r = 2\]/);
  const qA0 = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
  refused(variant((ts) => ts.map((t) => (t.name === qA0 ? { name: qA0, tensor: Tensor.f32([2, 9]) } : t))), PEFT_WEIGHTS, /tensor "[^"]*layers\.0\.self_attn\.q_proj\.lora_A\.weight" has shape \[2, 9\], the model's q_proj needs \[2, 8\]/, expected);
  const qA1 = 'base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight';
  refused(variant((ts) => ts.map((t) => (t.name === qA1 ? { name: qA1, tensor: Tensor.f32([2, 9]) } : t))), PEFT_WEIGHTS, /q_proj is \[8, 9\] in layer 1 but \[8, 8\] in layer 0/);
  refused(variant((ts) => [...ts, { name: 'base_model.model.lm_head.weight', tensor: Tensor.f32([2, 2]) }]), PEFT_WEIGHTS, /tensor "base_model\.model\.lm_head\.weight" is not a LoRA factor/);
  refused(variant((ts) => [...ts, { name: peftTensorName(0, 'up_proj', 'A'), tensor: Tensor.f32([2, 8]) }]), PEFT_WEIGHTS, /"up_proj" is not in adapter_config\.json's target_modules/);
  refused(variant((ts) => [...ts, { name: 'base_model.model.model.layers.0.mlp.q_proj.lora_A.weight', tensor: Tensor.f32([2, 8]) }]), PEFT_WEIGHTS, /q_proj does not belong under mlp/);
  refused(variant((ts) => ts), PEFT_WEIGHTS, /tensor "[^"]*layers\.2\.self_attn\.q_proj\.lora_A\.weight" is missing/, { ...expected, numLayers: 3 });
  refused(variant((ts) => ts), PEFT_WEIGHTS, /factors for layer 1, the model has 1 layers/, { ...expected, numLayers: 1 });
});

test('adapter_config.json that lowbit cannot apply is refused, naming the file', () => {
  refused(variant((ts) => ts, (c) => ({ ...c, peft_type: 'IA3' })), PEFT_CONFIG, /peft_type is "IA3"/);
  refused(variant((ts) => ts, (c) => ({ ...c, use_dora: true })), PEFT_CONFIG, /DoRA/);
  refused(variant((ts) => ts, (c) => ({ ...c, bias: 'all' })), PEFT_CONFIG, /bias is "all"/);
  refused(variant((ts) => ts, (c) => ({ ...c, r: '2' })), PEFT_CONFIG, /r must be an integer/);
  refused(variant((ts) => ts, (c) => ({ ...c, target_modules: 'q_proj|v_proj' })), PEFT_CONFIG, /regular expression/);
  refused(variant((ts) => ts, (c) => ({ ...c, rank_pattern: { q_proj: 4 } })), PEFT_CONFIG, /rank_pattern is not empty/);
  refused(variant((ts) => ts, (c) => ({ ...c, target_modules: ['q_proj', 'lm_head'] })), PEFT_CONFIG, /target module "lm_head"/);
  const dir = variant((ts) => ts);
  writeFileSync(join(dir, PEFT_CONFIG), '{"peft_type": "LORA",');
  refused(dir, PEFT_CONFIG, /not valid JSON/);
  refused(join(root, 'nothing'), PEFT_CONFIG, /file not found/);
});

test('bf16 factors (as PEFT saves from a bf16 model) are read as float32', () => {
  const dir = variant((ts) => ts.map(({ name, tensor }) => ({ name, tensor: new Tensor('bf16', tensor.shape, new Uint16Array(tensor.numel).fill(0x3f80)) })));
  const back = readPeftAdapter(dir, expected);
  assert.deepEqual([...back.layers[1]!.down_proj!.B], new Array(16).fill(1));
});

test('the writer refuses factors whose sizes do not fit r and the shape, and targets outside target_modules', () => {
  const bad = { ...adapter, layers: [{ q_proj: { ...factors(R, 8, 8), cols: 9 } }] };
  assert.throws(() => writePeftAdapter(join(root, 'w1'), bad), (e: unknown) => e instanceof UsageError && /layer 0 q_proj/.test(e.message));
  assert.throws(() => writePeftAdapter(join(root, 'w2'), { ...adapter, layers: [{ v_proj: factors(R, 8, 8) }] }), /v_proj, which is not in target_modules/);
  assert.throws(() => writePeftAdapter(join(root, 'w3'), { ...adapter, config: { ...adapter.config, r: 0 } }), UsageError);
});
