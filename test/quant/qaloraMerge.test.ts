/**
 * QA-LoRA's merge: a GPTQ W4 g32 base with trained-looking QA-LoRA adapters evaluates the same
 * (float32 rounding) before the merge (base + PEFT adapter) and after it (a GPTQ checkpoint with the
 * adapters folded into float zero points, no adapter files).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { openModel } from '../../src/io/open.js';
import { DEFAULT_MODEL } from '../../src/paths.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { AdapterSet } from '../../src/train/lora.js';
import { LORA_TARGETS, writePeftAdapter } from '../../src/io/peft.js';
import { loraWeightsOf, peftLayers } from '../../src/quant/lora/finetuneModel.js';
import { writeQaLoraMerged } from '../../src/quant/lora/qaloraMerge.js';
import { LlamaModel } from '../../src/model/llama.js';

const be = new CpuBackend(jsKernels, 'js, 1 thread');
const dir = mkdtempSync(join(tmpdir(), 'lowbit-qalora-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('QA-LoRA: the merged GPTQ checkpoint evaluates as base + adapter before the merge', async () => {
  const src = openModel(DEFAULT_MODEL);
  const base = join(dir, 'base'), adapted = join(dir, 'adapted'), merged = join(dir, 'merged');
  await quantizeModel(src, be, { method: 'rtn', bits: 4, group: 32, calib: 'none', out: base, reportErrors: false });
  const set = new AdapterSet(src.config, { form: 'qa', rank: 4, alpha: 8, dropout: 0, groupSize: 32 }, 5);
  let k = 1;
  for (const a of set.all()) for (let i = 0; i < a.B.length; i++) a.B[i] = Math.cos(k++ * 0.71) * 0.05;
  cpSync(base, adapted, { recursive: true });
  writePeftAdapter(adapted, { config: { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: [...LORA_TARGETS], baseModelNameOrPath: null, lowbit: { form: 'qa', group_size: 32 } }, layers: peftLayers(set) });
  const r = writeQaLoraMerged(base, loraWeightsOf(set, adapted), merged);
  assert.equal(r.layersMerged, 7 * src.config.numLayers);
  assert.equal(existsSync(join(merged, 'adapter_config.json')), false);
  const cfg = JSON.parse(readFileSync(join(merged, 'config.json'), 'utf8')) as { quantization_config: { quant_method: string; lowbit_float_zeros: boolean } };
  assert.deepEqual([cfg.quantization_config.quant_method, cfg.quantization_config.lowbit_float_zeros], ['gptq', true]);
  const ids = Int32Array.from([1, ...src.tokenizer.encode('Once upon a time, a little dog found a ball in the garden.', { bos: false })]);
  const logits = async (path: string) => be.read(LlamaModel.load(openModel(path), be).forward(ids).logits);
  const [b, a, m] = [await logits(base), await logits(adapted), await logits(merged)];
  let num = 0, den = 0, moved = 0;
  for (let i = 0; i < a.length; i++) { num += (m[i]! - a[i]!) ** 2; den += a[i]! ** 2; moved = Math.max(moved, Math.abs(a[i]! - b[i]!)); }
  assert.ok(moved > 1e-2, `the adapter changes the logits (max ${moved})`);
  assert.ok(Math.sqrt(num / den) < 1e-5, `merged vs base + adapter: relative error ${Math.sqrt(num / den)}`);
});
