/**
 * The whole protocol between the evaluation page (evalPage.ts) and its worker (evalWorker.ts), in one
 * file (web-llm's message.ts habit). The page posts one EvalRequest; the worker answers with progress
 * messages, one `backend` message saying what runs and why, a `result` per set, a `taskResult` per task,
 * then `done` or `error`.
 */

export type BackendChoice = 'auto' | 'webgpu' | 'wasm';
export const BACKEND_CHOICES: readonly BackendChoice[] = Object.freeze(['auto', 'webgpu', 'wasm']);

/** A file the user picked: its path in the tab's file system (vfs.ts) and the File itself (read lazily). */
export interface PickedFile { readonly path: string; readonly file: Blob }

export interface EvalRequest {
  readonly kind: 'eval';
  /** the checkpoint to open: a folder, a .gguf or a llama2.c .bin among `files` */
  readonly model: string;
  readonly files: readonly PickedFile[];
  /** named sets (wikitext2, ptb, c4, tinystories, ...) and/or `file:PATH` of a picked text file */
  readonly sets: readonly string[];
  /** tasks by their CLI names (piqa, arc_easy, arc_challenge, hellaswag, winogrande, mmlu), as `lowbit eval --tasks` */
  readonly tasks: readonly string[];
  /** URL of the served assets/data/ folder (the named sets' and the tasks' files are fetched from it) */
  readonly dataUrl: string;
  /** windows per set */
  readonly limit?: number;
  /** examples per task (MMLU: test questions per subject), as `--limit` with `--tasks` */
  readonly taskLimit?: number;
  /** wasm threads (the eval worker and threads − 1 Web Workers over one shared memory); default 1 */
  readonly threads?: number;
  /** window length; default min(2048, the model's context), as `lowbit eval` */
  readonly seqlen?: number;
  readonly backend: BackendChoice;
}

export interface PplRow {
  readonly set: string;
  readonly ppl: number;
  readonly windows: number;
  readonly windowsTotal: number;
  readonly seqlen: number;
  readonly tokens: number;
  readonly backend: string;
  readonly seconds: number;
  readonly notes: readonly string[];
}

/** One task's accuracy, as `lowbit eval --tasks` reports it (acc_norm where the task has it). */
export interface TaskRow {
  readonly task: string;
  readonly acc: number;
  readonly acc_norm?: number;
  /** examples scored (MMLU: questions over all subjects) */
  readonly n: number;
  readonly protocol: string;
  readonly shots: number;
  readonly bos: boolean;
  readonly backend: string;
  readonly seconds: number;
}

export type EvalMessage =
  | { kind: 'status'; text: string }
  | { kind: 'backend'; name: 'webgpu' | 'wasm' | 'js'; text: string }
  | { kind: 'progress'; set: string; windowsDone: number; windows: number; block: number; blocks: number; tokensPerSecond: number }
  | { kind: 'result'; row: PplRow }
  | { kind: 'taskProgress'; task: string; done: number; total: number; examplesPerSecond: number }
  | { kind: 'taskResult'; row: TaskRow }
  | { kind: 'done'; seconds: number }
  /** `text` is the one line lowbit's CLI prints (a LowbitError's message after "lowbit: ") */
  | { kind: 'error'; text: string };
