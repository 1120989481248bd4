/**
 * Tensor scopes for Backend.scope (tfjs's `tidy`): every tensor a backend makes is recorded in the
 * innermost open scope; when the scope's function returns, the tensors it made are freed except
 * those found in its result (a tensor, or arrays and plain objects holding tensors, at any depth),
 * which move to the enclosing scope. When the function throws, everything it made is freed. A
 * backend owns one TensorScopes and says how to free one of its tensors (if not freed already).
 */
import type { BTensor } from './backend.js';

export class TensorScopes<T extends BTensor> {
  private readonly open: Set<T>[] = [];

  constructor(private readonly dispose: (t: T) => void) {}

  /** Records a tensor the backend just made in the innermost open scope, if any; returns it. */
  track(t: T): T {
    this.open[this.open.length - 1]?.add(t);
    return t;
  }

  run<R>(f: () => R): R {
    const made = new Set<T>();
    this.open.push(made);
    let result: R;
    try {
      result = f();
      if (result instanceof Promise) throw new TypeError('scope: the function must be synchronous (it returned a Promise; its tensors would be freed before it ran)');
    } catch (e) {
      this.open.pop();
      for (const t of made) this.dispose(t);
      throw e;
    }
    this.open.pop();
    const keep = new Set<unknown>();
    collect(result, keep);
    const parent = this.open[this.open.length - 1];
    for (const t of made) {
      if (!keep.has(t)) this.dispose(t);
      else parent?.add(t);
    }
    return result;
  }
}

/** Every value reachable through arrays and plain objects of `v` (tensors among them). */
function collect(v: unknown, into: Set<unknown>): void {
  if (v === null || typeof v !== 'object' || into.has(v)) return;
  into.add(v);
  if (Array.isArray(v)) { for (const x of v) collect(x, into); return; }
  const proto = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) for (const x of Object.values(v)) collect(x, into);
}
