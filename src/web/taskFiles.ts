/**
 * The data files each task reads under the data folder (src/data/tasks/), so that the tab's worker can
 * fetch them into its file system (vfs.ts) before `evaluateTasks` runs: a server gives no folder
 * listings, so MMLU's subjects come from the standard list. An entry that is a list means "the first
 * of these the server has": HellaSwag's jsonl layout, which loadHellaswag prefers when it exists (as in
 * Node), else llama.cpp's text file (the bundled one).
 */
import { MMLU_SUBJECTS } from '../eval/tasks/mmluCategories.js';

export type TaskFile = string | readonly string[];

export const TASK_FILES: Readonly<Record<string, readonly TaskFile[]>> = Object.freeze({
  piqa: ['piqa/valid.jsonl', 'piqa/valid-labels.lst'],
  arc_easy: ['arc/ARC-Easy/ARC-Easy-Test.jsonl'],
  arc_challenge: ['arc/ARC-Challenge/ARC-Challenge-Test.jsonl'],
  hellaswag: [['hellaswag/hellaswag_val.jsonl', 'hellaswag/hellaswag_val_full.txt']],
  winogrande: ['winogrande/dev.jsonl', 'winogrande/dev-labels.lst'],
  mmlu: MMLU_SUBJECTS.flatMap((s) => [`mmlu/data/dev/${s}_dev.csv`, `mmlu/data/test/${s}_test.csv`]),
});
