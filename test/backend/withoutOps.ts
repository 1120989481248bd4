/**
 * A backend seen as one without some optional ops (Backend's `?` members): a method then takes its host
 * path, which the suites compare with the op's (columnAbsMax, the AWQ search ops).
 */
import type { Backend } from '../../src/backend/backend.js';

export function withoutOps(be: Backend, ops: readonly (keyof Backend)[]): Backend {
  const hidden = new Set<PropertyKey>(ops);
  return new Proxy(be, {
    get: (target, key) => {
      if (hidden.has(key)) return undefined;
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
