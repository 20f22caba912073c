/**
 * Module: PyTorch's nn.Module for TypeScript. Children, parameters and buffers are registered by name
 * (their PyTorch names, so that checkpoints load unchanged) and keep registration order, which is also
 * the state-dict order: own parameters, own persistent buffers, then each child under "<name>.".
 */
import { DiffregError } from '../../util/errors.ts';
import { bool, invalid } from '../../util/is.ts';
import { noGrad } from '../autograd.ts';
import { isFloating, type DType } from '../dtype.ts';
import { Tensor, type Device } from '../tensor.ts';

/** A tensor as the checkpoint readers produce it: raw little-endian bytes, contiguous. */
export interface RawTensorLike {
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}
export type StateDictInput = Map<string, Tensor | RawTensorLike> | Record<string, Tensor | RawTensorLike>;

export interface LoadResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

const NAME = /^[^.]+$/;

export abstract class Module {
  training = true;
  readonly #parameters = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, Tensor | null>();
  readonly #transient = new Set<string>();
  readonly #children = new Map<string, Module | null>();

  #checkName(name: string, kind: 'module' | 'parameter' | 'buffer'): void {
    if (typeof name !== 'string' || !NAME.test(name))
      throw invalid(`${kind} name`, 'a non-empty name without "."', name);
    const taken =
      (kind !== 'parameter' && this.#parameters.has(name)) ||
      (kind !== 'buffer' && this.#buffers.has(name)) ||
      (kind !== 'module' && this.#children.has(name));
    if (taken)
      throw new DiffregError(`${this.constructor.name}: "${name}" is already registered as another kind`);
  }

  /** Registers a child module under `name` (re-registering replaces it in place) and returns it. */
  register<M extends Module | null>(name: string, module: M): M {
    this.#checkName(name, 'module');
    if (module !== null && !(module instanceof Module))
      throw invalid(`module ${name}`, 'a Module or null', module);
    this.#children.set(name, module);
    return module;
  }

  /**
   * Registers a parameter (null for an absent optional one, e.g. bias=False) and returns it. The tensor
   * is set to require gradients and taken out of tidy scopes: the module owns it.
   */
  registerParameter<T extends Tensor | null>(name: string, t: T): T {
    this.#checkName(name, 'parameter');
    if (t !== null) {
      if (!(t instanceof Tensor)) throw invalid(`parameter ${name}`, 'a Tensor or null', t);
      t.keep();
      if (!t.requiresGrad) t.requiresGrad_(true);
    }
    this.#parameters.set(name, t);
    return t;
  }

  /** Registers a buffer (running statistics, fixed tables); non-persistent ones stay out of the state dict. */
  registerBuffer<T extends Tensor | null>(name: string, t: T, opts: { persistent?: boolean } = {}): T {
    this.#checkName(name, 'buffer');
    if (t !== null) {
      if (!(t instanceof Tensor)) throw invalid(`buffer ${name}`, 'a Tensor or null', t);
      t.keep();
    }
    this.#buffers.set(name, t);
    if (bool('persistent', opts.persistent ?? true)) this.#transient.delete(name);
    else this.#transient.add(name);
    return t;
  }

  /** The registered parameter or buffer of that name (null when registered as absent). */
  getTensor(name: string): Tensor | null | undefined {
    return this.#parameters.has(name) ? this.#parameters.get(name) : this.#buffers.get(name);
  }

  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [n, m] of this.#children) if (m !== null) out.push([n, m]);
    return out;
  }
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }
  /** This module and all below it, depth first, each once. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const walk = (m: Module, p: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([p, m]);
      for (const [n, c] of m.namedChildren()) walk(c, p === '' ? n : `${p}.${n}`);
    };
    walk(this, prefix);
    return out;
  }
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  #named(which: 'parameters' | 'buffers', recurse: boolean, persistentOnly: boolean): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    const mods: [string, Module][] = recurse ? this.namedModules() : [['', this]];
    for (const [p, m] of mods) {
      const own = which === 'parameters' ? m.#parameters : m.#buffers;
      for (const [n, t] of own) {
        if (t === null || seen.has(t) || (persistentOnly && m.#transient.has(n))) continue;
        seen.add(t);
        out.push([p === '' ? n : `${p}.${n}`, t]);
      }
    }
    return out;
  }
  /** Parameters with dotted names, each once (a shared parameter under its first name). */
  namedParameters(recurse = true): [string, Tensor][] {
    return this.#named('parameters', recurse, false);
  }
  parameters(recurse = true): Tensor[] {
    return this.namedParameters(recurse).map(([, t]) => t);
  }
  namedBuffers(recurse = true): [string, Tensor][] {
    return this.#named('buffers', recurse, false);
  }
  buffers(recurse = true): Tensor[] {
    return this.namedBuffers(recurse).map(([, t]) => t);
  }
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.numel, 0);
  }

  /** Sets training mode here and below (dropout, batch-norm statistics). */
  train(mode = true): this {
    for (const m of this.modules()) m.training = bool('mode', mode);
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /**
   * Parameters and persistent buffers by dotted key in PyTorch's order. The values are the module's own
   * tensors (not copies): read or save them, do not dispose them.
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const visit = (m: Module, prefix: string): void => {
      for (const [n, t] of m.#parameters) if (t !== null) out.set(prefix + n, t);
      for (const [n, t] of m.#buffers) if (t !== null && !m.#transient.has(n)) out.set(prefix + n, t);
      for (const [n, c] of m.#children) if (c !== null) visit(c, `${prefix}${n}.`);
    };
    visit(this, '');
    return out;
  }

  /**
   * Copies values from `dict` into this module's tensors (dtype converted, shapes must match). Missing,
   * unexpected (with strict, the default) and shape-mismatched keys are all reported by name in one
   * DiffregError, and nothing is copied then. Accepts tensors or raw checkpoint records.
   */
  loadStateDict(dict: StateDictInput, opts: { strict?: boolean } = {}): LoadResult {
    const strict = bool('strict', opts.strict ?? true);
    const given = dict instanceof Map ? dict : new Map(Object.entries(dict));
    const own = this.stateDict();
    const missingKeys = [...own.keys()].filter((k) => !given.has(k));
    const unexpectedKeys = [...given.keys()].filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [k, t] of own) {
      const v = given.get(k);
      if (v === undefined) continue;
      const shape = v instanceof Tensor ? v.shape : v.shape;
      if (shape.length !== t.shape.length || shape.some((s, i) => s !== t.shape[i])) {
        mismatched.push(`${k} (checkpoint [${shape.join(', ')}], model [${t.shape.join(', ')}])`);
      }
    }
    const problems: string[] = [];
    if (strict && missingKeys.length > 0) problems.push(listing('missing key', missingKeys));
    if (strict && unexpectedKeys.length > 0) problems.push(listing('unexpected key', unexpectedKeys));
    if (mismatched.length > 0) problems.push(listing('shape mismatch', mismatched));
    if (problems.length > 0)
      throw new DiffregError(`${this.constructor.name}.loadStateDict: ${problems.join('; ')}`);
    noGrad(() => {
      for (const [k, t] of own) {
        const v = given.get(k);
        if (v === undefined) continue;
        if (v instanceof Tensor) {
          t.copy_(v);
        } else {
          const src = Tensor.fromBytes(v.data, v.dtype, v.shape);
          t.copy_(src);
          src.dispose();
        }
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  /**
   * Converts floating-point parameters and buffers to `dtype` and/or moves everything to `device`, in
   * place: the parameter objects stay the same (as PyTorch keeps Parameter identity).
   */
  to(target: DType | Device | { dtype?: DType; device?: Device }): this {
    const spec =
      typeof target === 'object'
        ? target
        : target.startsWith('cuda') || target === 'cpu'
          ? { device: target as Device }
          : { dtype: target as DType };
    noGrad(() => {
      for (const t of [...this.parameters(), ...this.buffers()]) {
        const want = {
          device: spec.device,
          dtype: spec.dtype !== undefined && isFloating(t.dtype) ? spec.dtype : undefined,
        };
        if (want.device === undefined && want.dtype === undefined) continue;
        const needGrad = t.requiresGrad;
        const converted = t.to(want);
        t.assign(converted);
        converted.dispose();
        if (needGrad) t.requiresGrad_(true);
      }
    });
    return this;
  }

  /** Frees every parameter and buffer here and below. */
  dispose(): void {
    for (const t of [...this.parameters(), ...this.buffers()]) t.dispose();
  }
}

function listing(what: string, keys: string[]): string {
  return `${keys.length} ${what}${keys.length === 1 ? '' : 's'}: ${keys.join(', ')}`;
}

/** A module with the usual one-tensor forward (what Sequential chains). */
export interface Layer extends Module {
  forward(x: Tensor): Tensor;
}

/** Children in a list, registered as "0", "1", ... (torch.nn.ModuleList). */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  readonly #items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }
  append(m: M): this {
    this.register(String(this.#items.length), m);
    this.#items.push(m);
    return this;
  }
  get length(): number {
    return this.#items.length;
  }
  /** The i-th module (negative counts from the end). */
  at(i: number): M {
    const m = this.#items.at(i);
    if (m === undefined) throw invalid('ModuleList index', `an index below ${this.#items.length}`, i);
    return m;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }
}

/** Named children in insertion order (torch.nn.ModuleDict). */
export class ModuleDict<M extends Module = Module> extends Module {
  readonly #items = new Map<string, M>();

  constructor(modules: Iterable<[string, M]> | Record<string, M> = []) {
    super();
    const entries = Symbol.iterator in modules ? (modules as Iterable<[string, M]>) : Object.entries(modules);
    for (const [k, m] of entries) this.set(k, m);
  }
  set(key: string, m: M): this {
    this.register(key, m);
    this.#items.set(key, m);
    return this;
  }
  get(key: string): M {
    const m = this.#items.get(key);
    if (m === undefined) throw invalid('ModuleDict key', `one of ${[...this.#items.keys()].join(', ')}`, key);
    return m;
  }
  has(key: string): boolean {
    return this.#items.has(key);
  }
  keys(): string[] {
    return [...this.#items.keys()];
  }
  entries(): [string, M][] {
    return [...this.#items.entries()];
  }
}

/** Layers applied in order (torch.nn.Sequential); children are "0", "1", ... or the names given. */
export class Sequential extends Module implements Layer {
  readonly #layers: Layer[] = [];

  constructor(...layers: Layer[] | [[string, Layer][]]) {
    super();
    const named: [string, Layer][] =
      layers.length === 1 && Array.isArray(layers[0])
        ? layers[0]
        : (layers as Layer[]).map((l, i) => [String(i), l]);
    for (const [n, l] of named) {
      this.register(n, l);
      this.#layers.push(l);
    }
  }
  get length(): number {
    return this.#layers.length;
  }
  at(i: number): Layer {
    const l = this.#layers.at(i);
    if (l === undefined) throw invalid('Sequential index', `an index below ${this.#layers.length}`, i);
    return l;
  }
  /** Runs the layers in order, freeing the intermediate results. */
  forward(x: Tensor): Tensor {
    let y = x;
    for (const l of this.#layers) {
      const next = l.forward(y);
      if (y !== x && next !== y) y.dispose();
      y = next;
    }
    return y === x ? x.alias() : y;
  }
}
