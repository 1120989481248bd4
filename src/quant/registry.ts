import { UsageError } from '../errors.js';
import { gptq } from './methods/gptq.js';
import { rtn } from './methods/rtn.js';
import type { QuantMethod } from './method.js';

const RTN: QuantMethod = {
  name: 'rtn',
  description: 'round-to-nearest on the min-max grid (per channel or per group)',
  needsHessian: false,
  quantizeLayer: (l, o) => ({ ...rtn(l.W, l.rows, l.cols, o.spec, l.name), notes: [] }),
};

const GPTQ: QuantMethod = {
  name: 'gptq',
  description: 'GPTQ: second-order error compensation with the inverse Hessian (Frantar et al., 2022)',
  needsHessian: true,
  quantizeLayer: (l, o) => {
    if (!l.H) throw new UsageError(`gptq needs calibration statistics for ${l.name}`);
    const r = gptq(l.W, l.rows, l.cols, l.H, {
      spec: o.spec, blocksize: o.blocksize, percdamp: o.percdamp, actOrder: o.actOrder, staticGroups: o.staticGroups,
      consumeH: false, where: l.name, ...(o.linalg ? { linalg: o.linalg } : {}),
    });
    return { codes: r.codes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx, Q: r.Q, dampUsed: r.dampUsed, notes: r.notes };
  },
};

/** Method name → implementation. */
export const METHODS: Readonly<Record<string, QuantMethod>> = Object.freeze({ rtn: RTN, gptq: GPTQ });

export function getMethod(name: string): QuantMethod {
  const m = METHODS[name];
  if (!m) throw new UsageError(`unknown method '${name}' (known: ${Object.keys(METHODS).join(', ')})`);
  return m;
}
