/**
 * Deterministic release of native memory. V8 does not see libtorch's allocations, so waiting for the
 * garbage collector lets a training loop grow to gigabytes. Every tensor created while a `tidy` scope
 * is open belongs to that scope; when the function returns, everything it created is disposed except
 * what it returns (found inside arrays, plain objects and Maps too), which moves to the enclosing scope.
 * Tensors created outside any scope are released by `dispose()` or, as a safety net, by the finalizer.
 */
import { DiffregError } from '../util/errors.ts';

/** Anything a scope can own; Tensor is the one implementation. */
export abstract class Scoped {
  /** The scope that will dispose this object, or null. */
  _scope: Scoped[] | null = null;

  constructor() {
    const s = stack.length === 0 ? null : stack[stack.length - 1];
    if (s !== null) {
      s.push(this);
      this._scope = s;
    }
  }

  abstract dispose(): void;

  /** Takes this object out of scope management: only `dispose()` (or the finalizer) frees it. */
  keep(): this {
    this._scope = null;
    return this;
  }
}

const stack: Scoped[][] = [];

/** Scoped objects reachable from `v` through arrays, plain objects and Maps. */
function collect(v: unknown, into: Set<Scoped>, seen: Set<object>): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (v instanceof Scoped) {
    into.add(v);
  } else if (Array.isArray(v)) {
    for (const x of v) collect(x, into, seen);
  } else if (v instanceof Map) {
    for (const x of v.values()) collect(x, into, seen);
  } else {
    const proto = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) {
      for (const x of Object.values(v)) collect(x, into, seen);
    }
  }
}

function isThenable(v: unknown): boolean {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Runs `fn` in a new scope and disposes every tensor it created except those in its result. `fn` must
 * be synchronous: await outside, tidy inside.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scoped[] = [];
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    release(scope, new Set());
    throw e;
  }
  stack.pop();
  if (isThenable(result)) {
    release(scope, new Set());
    throw new DiffregError('tidy: the function returned a Promise; tidy needs a synchronous function');
  }
  const keep = new Set<Scoped>();
  collect(result, keep, new Set());
  release(scope, keep);
  const parent = stack.length === 0 ? null : stack[stack.length - 1];
  for (const t of keep) {
    if (t._scope !== scope) continue;
    t._scope = parent;
    if (parent !== null) parent.push(t);
  }
  return result;
}

function release(scope: Scoped[], keep: Set<Scoped>): void {
  for (const t of scope) {
    if (t._scope === scope && !keep.has(t)) t.dispose();
  }
}

/** Disposes every tensor reachable from `v` (a tensor, or arrays/objects/Maps holding tensors). */
export function dispose(v: unknown): void {
  const all = new Set<Scoped>();
  collect(v, all, new Set());
  for (const t of all) t.dispose();
}
