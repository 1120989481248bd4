import type { Backend } from '../backend/backend.js';
import { bitsPerWeight, checkpointFiles, type BitsPerWeight } from '../io/storage.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { measureCheckpointSpeed, type SpeedResult, type SpeedSettings } from '../eval/speed.js';

/** A study's speed check of each cell: short (the study is about quality), the same for every cell. */
export interface StudySpeed extends Partial<SpeedSettings> {
  /** worker threads of the backend, for the record */
  readonly threads?: number | undefined;
}

/** What a cell's model costs, next to its quality: size on disk, bits per weight, decode speed. */
export interface CellCost {
  /** bytes of the files holding the tensors (io/storage.ts: CheckpointFiles.weightBytes) */
  readonly weightBytes: number;
  /** bytes of every file of the checkpoint (config, tokenizer, report included) */
  readonly totalBytes: number;
  readonly bitsPerWeight: BitsPerWeight;
  /** null when the speed check was skipped */
  readonly speed: (SpeedResult & { readonly backend: string; readonly threads: number | null; readonly node: string }) | null;
}

/** A 32-token prompt, 16 new tokens, 1 warm-up run and 3 repetitions (within the model's context). */
function studySpeedSettings(context: number, s: StudySpeed = {}): SpeedSettings {
  const promptTokens = s.promptTokens ?? Math.max(1, Math.min(32, Math.floor(context / 2)));
  return { promptTokens, decodeTokens: s.decodeTokens ?? Math.max(1, Math.min(16, context - promptTokens)), warmup: s.warmup ?? 1, reps: s.reps ?? 3 };
}

/** Size and bits of `ckpt` (exact, from its files' headers) and, unless `speed` is false, its decode speed. */
export async function cellCost(ckpt: ModelCheckpoint, be: Backend, speed: StudySpeed | false): Promise<CellCost> {
  const files = checkpointFiles(ckpt);
  const measured = speed === false ? null
    : (await measureCheckpointSpeed(ckpt, be, studySpeedSettings(ckpt.config.maxPositionEmbeddings, speed))).speed;
  return {
    weightBytes: files.weightBytes, totalBytes: files.totalBytes, bitsPerWeight: bitsPerWeight(ckpt),
    speed: measured && { ...measured, backend: be.description, threads: speed === false ? null : speed.threads ?? null, node: process.version },
  };
}
