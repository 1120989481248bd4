import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseHubId } from '../io/hub/hfCache.js';
import { resolveHubModel } from '../io/hub/hubDownload.js';
import { Progress } from './common.js';

/** Options that name a model: a local path, or a hub id `org/name[@revision]` when no such path exists. */
const MODEL_OPTIONS = ['model', 'kld'];

/**
 * Before any command runs: a --model (or --kld) that is not a local path but reads as `org/name[@revision]` is
 * downloaded into the Hugging Face cache (io/hub/) and replaced by its snapshot folder, with a progress bar per file.
 */
export async function resolveHubOptions(cmd: Command): Promise<void> {
  for (const name of MODEL_OPTIONS) {
    const v: unknown = cmd.getOptionValue(name);
    if (typeof v !== 'string' || existsSync(resolve(v))) continue;
    const id = parseHubId(v);
    if (!id) continue; // openModel says the path does not exist
    const progress = new Progress(!!cmd.getOptionValue('json'));
    let current = '';
    const dir = await resolveHubModel(id, {
      onProgress: (p) => {
        if (p.file !== current) { current = p.file; progress.start(p.total ?? 0, `${id.repo} ${p.file}`); }
        progress.update(p.done, '');
      },
    });
    progress.stop();
    cmd.setOptionValue(name, dir);
  }
}
