/** Method name → implementation: a method is its file plus a row here. */
import { UsageError } from '../errors.js';
import type { QuantMethod } from './method.js';
import { AWQ } from './methods/awq.js';
import { BILLM } from './methods/billm.js';
import { GPTQ } from './methods/gptq.js';
import { ICQ } from './methods/icq.js';
import { NF4 } from './methods/nf4.js';
import { QUIP } from './methods/quip.js';
import { PBLLM } from './methods/pbllm.js';
import { RTN } from './methods/rtn.js';
import { SMOOTHQUANT } from './methods/smoothquant.js';
import { DBLLM } from './methods/dbllm.js';

export const METHODS: Readonly<Record<string, QuantMethod>> = Object.freeze({ rtn: RTN, gptq: GPTQ, awq: AWQ, smoothquant: SMOOTHQUANT, quip: QUIP, pbllm: PBLLM, billm: BILLM, nf4: NF4, icq: ICQ, dbllm: DBLLM });

export function getMethod(name: string): QuantMethod {
  const m = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
  if (!m) throw new UsageError(`unknown method '${name}' (known: ${Object.keys(METHODS).join(', ')})`);
  return m;
}
