/** A real lowbit quantized checkpoint (RTN, 4 bits, groups of 32) of the bundled TinyStories-656K, made once per process. */
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { openModel } from '../../src/io/open.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { TINY656K } from '../helpers/paths.js';
import { scratchDir } from './mutate.js';

let made: Promise<string> | undefined;

/** The folder of the checkpoint (under mutate.ts's scratch root: removeScratch() deletes it). */
export function quantizedTiny(): Promise<string> {
  made ??= (async () => {
    const out = `${scratchDir('q')}/rtn4`;
    await quantizeModel(openModel(TINY656K), new CpuBackend(), { method: 'rtn', bits: 4, group: 32, calib: 'none', out });
    return out;
  })();
  return made;
}
