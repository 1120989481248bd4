/**
 * `lowbit bench`: what a checkpoint costs to run and to keep: prefill and decode tokens/s (speed.ts),
 * peak memory, size on disk and bits per weight (io/storage.ts), recorded with everything that
 * changes the figures.
 */
import type { Backend } from '../backend/backend.js';
import { bitsPerWeight, checkpointFiles, storedTensors, type BitsPerWeight, type CheckpointFiles, type StoredTensor } from '../io/storage.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { DTYPE_BYTES } from '../tensor/dtype.js';
import { measureCheckpointSpeed, type SpeedResult, type SpeedSettings } from './speed.js';

export interface BenchOptions extends SpeedSettings {
  /** worker threads of the backend, for the record (null when not known) */
  readonly threads?: number | undefined;
  readonly onRun?: ((done: number, total: number) => void) | undefined;
}

export interface BenchMemory {
  /** the process's peak resident set size so far (process.resourceUsage().maxRSS): Node itself, kernels, weights, KV cache */
  readonly peakRssBytes: number;
  /** resident set size just before the model was loaded (Node, kernels, tokenizer) */
  readonly rssBeforeLoadBytes: number;
  /** the weights as the backend holds them: GPTQ codes packed, float weights in their stored dtype, GGUF blocks decoded to f32 */
  readonly residentWeightBytes: number;
}

export interface BenchResult {
  readonly tool: 'lowbit';
  readonly model: string;
  readonly format: ModelCheckpoint['format'];
  readonly backend: string;
  readonly threads: number | null;
  readonly node: string;
  readonly loadSeconds: number;
  readonly speed: SpeedResult;
  readonly memory: BenchMemory;
  readonly storage: CheckpointFiles;
  readonly bitsPerWeight: BitsPerWeight;
}

/**
 * Bytes of the weights once uploaded, by the Backend contract: a packed GPTQ layer stays packed (its stored
 * bytes), any other weight takes the dtype `read` gives (its stored float dtype; f32 for GGUF blocks).
 */
export function residentWeightBytes(tensors: readonly StoredTensor[]): number {
  return tensors.reduce((a, t) => a + (t.packed ? t.bytes : t.params * DTYPE_BYTES[t.info.dtype]), 0);
}

/** Measures `ckpt` on `be` (loaded resident, freed before returning). */
export async function benchModel(ckpt: ModelCheckpoint, be: Backend, o: BenchOptions): Promise<BenchResult> {
  const storage = checkpointFiles(ckpt);
  const tensors = storedTensors(ckpt);
  const bits = bitsPerWeight(ckpt, tensors);
  const rssBeforeLoadBytes = process.memoryUsage().rss;
  const { speed, loadSeconds } = await measureCheckpointSpeed(ckpt, be, o, o.onRun);
  return {
    tool: 'lowbit', model: ckpt.path, format: ckpt.format, backend: be.description, threads: o.threads ?? null, node: process.version,
    loadSeconds, speed,
    // maxRSS is in KiB (libuv normalises it on every platform)
    memory: { peakRssBytes: process.resourceUsage().maxRSS * 1024, rssBeforeLoadBytes, residentWeightBytes: residentWeightBytes(tensors) },
    storage, bitsPerWeight: bits,
  };
}
