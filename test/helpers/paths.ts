import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ASSETS, PACKAGE_ROOT } from '../../src/paths.js';

export { ASSETS, PACKAGE_ROOT };
export const MODELS = join(ASSETS, 'models');
export const TINY656K = join(MODELS, 'TinyStories-656K');
export const STORIES260K = join(MODELS, 'stories260K');
export const DATA = join(ASSETS, 'data');
/** ../shared beside the checkout (CI has it); tests that need it skip with a reason when absent. */
export const SHARED = resolve(PACKAGE_ROOT, '..', 'shared');
export const SHARED_DATA = join(SHARED, 'data');
export const HAS_SHARED = existsSync(SHARED_DATA);
export const NO_SHARED_REASON = `needs ${SHARED_DATA} (the shared data folder beside the checkout)`;
/** the task data (PIQA, ARC, HellaSwag, Winogrande, MMLU) is bundled in assets/data */
export const HAS_TASK_DATA = existsSync(join(DATA, 'piqa', 'valid.jsonl'));
export const NO_TASK_DATA_REASON = `needs the task data in ${DATA}`;
