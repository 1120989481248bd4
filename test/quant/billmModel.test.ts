// BiLLM on the bundled model: the checkpoint (stored kind `billm`) reads back as the pipeline's fake-quantized weights
// bit for bit, says what it is, and costs what its parts cost; the summed reconstruction error is below RTN's at
// 1 bit (the nominal width) and at W2 g128 (the comparison the study's table makes for sub-2-bit methods).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../../src/io/open.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { quantizeBlocks } from '../../src/quant/pipeline.js';
import { getMethod } from '../../src/quant/registry.js';
import { resolveOptions } from '../../src/quant/options.js';
import { calibrationSet } from '../../src/data/calibration.js';
import { bitsPerWeight } from '../../src/io/storage.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { DATA, TINY656K } from '../helpers/paths.js';

const { kernels, note } = selectKernels('auto', 2);
const be = new CpuBackend(kernels, note);
const ck = openModel(TINY656K);
const tmp = mkdtempSync(join(tmpdir(), 'lowbit-billm-'));
const calib = { calib: 'c4', nsamples: 8, seed: 0, dataDir: DATA } as const;

test('bundled model: the billm checkpoint reads back as the pipeline\'s Q bit for bit (f32 and f16 parameters) and costs what its parts cost', async () => {
  const windows = calibrationSet('c4', ck.tokenizer, { nsamples: 8, seqlen: 512, seed: 0, dataDir: DATA }).windows;
  const billm = getMethod('billm');
  for (const scaleDtype of ['f32', 'f16'] as const) {
    const captured = new Map<string, Float32Array>();
    await quantizeBlocks(ck, be, {
      method: billm, spec: { bits: 1, groupSize: 128, sym: false, scaleDtype }, options: resolveOptions(billm, {}),
      calibration: windows, onLayer: (l) => captured.set(l.name, l.out.Q),
    });
    const out = join(tmp, `billm-${scaleDtype}`);
    const report = await quantizeModel(ck, be, { method: 'billm', bits: 1, ...calib, scaleDtype, out });
    assert.equal(report.settings.trueSequential, false, 'all seven linears from one forward, as the reference');
    assert.equal(report.settings.nominalBits, 1.1);
    const back = openModel(out);
    assert.equal(back.format, 'lowbit-billm');
    assert.equal(captured.size, 14);
    for (const [name, Q] of captured) {
      const got = back.weights.read(`${name}.weight`).toF32();
      assert.deepEqual(new Uint32Array(got.buffer, got.byteOffset, got.length), new Uint32Array(Q.buffer, Q.byteOffset, Q.length), name);
    }
    const qc = JSON.parse(readFileSync(join(out, 'quantize_config.json'), 'utf8'));
    assert.deepEqual([qc.quant_method, qc.kind, qc.bits, qc.group_size, qc.lowbit_method, qc.true_sequential], ['lowbit', 'billm', 1.1, 128, 'billm', false]);
    // every layer reports the paper's count for itself; the model's figure is their parameter-weighted mean
    const perLayer = report.layers.map((l) => Number(/BiLLM: ([\d.]+) bits per weight/.exec(l.notes.join(' '))![1]));
    assert.ok(perLayer.every((b) => b > 1 && b < 1.5), perLayer.join(' '));
    // stored bits: exactly the parts' bytes (planes, masks, parameters, zero signs)
    const st = SafetensorsFile.open(join(out, 'model.safetensors'));
    let bytes = 0, weights = 0;
    for (const t of st.list()) {
      const m = /^(model\.layers\.\d+\.(?:self_attn|mlp)\.\w+_proj)\.(planes|salient|params|zero_signs)$/.exec(t.name);
      if (!m) continue;
      bytes += t.shape.reduce((a, b) => a * b, 1) * { u8: 1, bool: 1, i32: 4, f32: 4, f16: 2 }[t.dtype as 'u8']!;
      if (m[2] === 'planes') weights += t.shape[1]! * t.shape[2]! * 8;
    }
    const bpw = bitsPerWeight(back);
    assert.equal(bpw.linearWeights, weights);
    assert.equal(bpw.linearStoredBytes, bytes);
    assert.ok(Math.abs(bpw.nominal - 1.1) < 1e-12, `nominal ${bpw.nominal}`);
    // 2 bits of planes + 8 parameters per row per block of 128 (f32: 2 bits, f16: 1) + masks and zero signs
    const floor = 2 + (scaleDtype === 'f32' ? 2 : 1);
    assert.ok(bpw.storedLinear > floor && bpw.storedLinear < floor + 0.1, `${scaleDtype}: ${bpw.storedLinear} bits per weight stored`);
    assert.match(bpw.label, /BILLM 1\.1-bit g128 \(billm\)/);
  }
});

test('bundled model: BiLLM\'s summed reconstruction error is below RTN\'s at W1 g128 and at W2 g128', async () => {
  const err = async (method: string, bits: number) => {
    const r = await quantizeModel(ck, be, { method, bits, group: 128, ...calib, out: join(tmp, `${method}${bits}`) });
    assert.ok(r.totalError !== null);
    return r.totalError;
  };
  const billm = await err('billm', 1), rtn1 = await err('rtn', 1), rtn2 = await err('rtn', 2);
  assert.ok(billm < rtn1, `BiLLM ${billm} vs RTN W1 g128 ${rtn1}`);
  assert.ok(billm < rtn2, `BiLLM ${billm} vs RTN W2 g128 ${rtn2}`);
});
