import type { LlamaConfig } from '../io/config.js';

/**
 * RoPE inverse frequencies as Hugging Face computes them (float32), including the llama3
 * frequency-dependent scaling of `_compute_llama3_parameters`.
 */
export function ropeInvFreq(cfg: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const half = cfg.headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.fround(cfg.ropeTheta ** Math.fround((2 * i) / cfg.headDim));
  const s = cfg.ropeScaling;
  if (!s) return inv;
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) continue; // high frequency: unchanged
    if (wavelen > lowWavelen) { inv[i] = f / s.factor; continue; }
    const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    inv[i] = (1 - smooth) * (f / s.factor) + smooth * f;
  }
  return inv;
}

/** cos/sin tables [count, headDim/2] for positions start..start+count-1 (float32 angles, as HF). */
export function ropeTables(invFreq: Float32Array, start: number, count: number): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const cos = new Float32Array(count * half), sin = new Float32Array(count * half);
  for (let t = 0; t < count; t++) {
    const pos = start + t;
    for (let i = 0; i < half; i++) {
      const a = Math.fround(pos * invFreq[i]!);
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}
