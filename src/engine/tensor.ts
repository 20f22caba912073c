/**
 * Tensor: a handle on a libtorch tensor with PyTorch's method names in camelCase (`x.add(y)`,
 * `x.logSoftmax(-1)`, in-place ops end in `_`). Memory: see scope.ts (`tidy`, `dispose`, `keep`).
 * Every method returns a new handle, even when libtorch returns a view of the same storage; disposing a
 * handle drops one reference and frees the storage only when nothing else (views, autograd) uses it.
 */
import { DiffregError } from '../util/errors.ts';
import { bool, integer, invalid, number as num } from '../util/is.ts';
import { dimsOf, intList, shapeOf } from './check.ts';
import { DTYPES, dtypeCode, dtypeOfArray, typedArrayOver, type DType, type TypedArray } from './dtype.ts';
import { N, type GeneratorHandle, type Handle } from './native.ts';
import { Scoped } from './scope.ts';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
/** A tensor or a JS number/boolean (broadcast as a scalar). */
export type TensorLike = Tensor | number | boolean;
/** A shape given as separate numbers or one list: `x.reshape(2, 3)` or `x.reshape([2, 3])`. */
export type ShapeArgs = number[] | [readonly number[]];

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}
export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

const DEFAULT_SEED = 67280421310721; // PyTorch's default seed

/** A seeded random-number generator (libtorch's CPU generator, mt19937); its state can be saved. */
export class Generator {
  readonly handle: GeneratorHandle;

  constructor(seed: number = DEFAULT_SEED, handle?: GeneratorHandle) {
    this.handle = handle ?? N.generator_new(seedOf(seed));
  }

  manualSeed(seed: number): this {
    N.generator_seed(this.handle, seedOf(seed));
    return this;
  }

  /** The full generator state (bytes), for resuming a run exactly. */
  getState(): Uint8Array {
    const s = new Tensor(N.generator_get_state(this.handle));
    try {
      return s.toBytes();
    } finally {
      s.dispose();
    }
  }

  setState(state: Uint8Array): void {
    const s = Tensor.fromBytes(state, 'uint8', [state.length]);
    try {
      N.generator_set_state(this.handle, s.handle);
    } finally {
      s.dispose();
    }
  }
}

function seedOf(seed: unknown): number {
  return integer('seed', seed, { min: 0, max: Number.MAX_SAFE_INTEGER });
}

/** libtorch's default CPU generator, used when no `generator` option is given. */
export const defaultGenerator = new Generator(DEFAULT_SEED, N.generator_default());

/** Seeds the default generator (torch.manual_seed). */
export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}

function shapeArgs(name: string, args: ShapeArgs): number[] {
  return intList(name, args.length === 1 && Array.isArray(args[0]) ? args[0] : args);
}

function other(v: TensorLike): Handle | number | boolean {
  return v instanceof Tensor ? v.handle : v;
}

const DEVICE = /^(cpu|cuda(:\d+)?)$/;
export function deviceOf(name: string, v: unknown): Device {
  if (typeof v !== 'string' || !DEVICE.test(v)) throw invalid(name, 'cpu, cuda or cuda:<index>', v);
  return v as Device;
}

export class Tensor extends Scoped {
  readonly handle: Handle;
  #shape: readonly number[] | undefined;
  #dtype: DType | undefined;
  #disposed = false;

  /** Wraps a native handle; use the creation functions (zeros, fromArray, ...) instead. */
  constructor(handle: Handle) {
    super();
    this.handle = handle;
  }

  // ------------------------------------------------------------------ lifetime
  /** Frees this handle's reference to the native tensor now (idempotent). */
  override dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    N.release(this.handle);
  }

  get isDisposed(): boolean {
    return this.#disposed;
  }

  /** Makes this handle refer to `src`'s tensor (same object, new contents; Module.to uses it). */
  assign(src: Tensor): this {
    N.assign(this.handle, src.handle);
    this.#shape = undefined;
    this.#dtype = undefined;
    return this;
  }

  // ------------------------------------------------------------------ metadata
  get shape(): readonly number[] {
    return (this.#shape ??= Object.freeze(N.shape(this.handle)));
  }
  get dtype(): DType {
    return (this.#dtype ??= DTYPES[N.dtype(this.handle)]);
  }
  get device(): Device {
    return N.device(this.handle) as Device;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    let n = 1;
    for (const s of this.shape) n *= s;
    return n;
  }
  /** Size of one dimension (negative counts from the end). */
  size(dim: number): number {
    const d = integer('dim', dim, { min: -this.ndim, max: this.ndim - 1 });
    return this.shape[d < 0 ? d + this.ndim : d];
  }
  get isContiguous(): boolean {
    return N.is_contiguous(this.handle);
  }
  override toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ------------------------------------------------------------------ data in and out
  /** Copies raw little-endian bytes (contiguous, row-major) into a new tensor (checkpoint records). */
  static fromBytes(bytes: Uint8Array, dtype: DType, shape: readonly number[]): Tensor {
    return new Tensor(N.from_bytes(bytes, dtypeCode('dtype', dtype), shapeOf('shape', shape)));
  }

  /**
   * A tensor from a typed array or a flat number list. `shape` defaults to 1-D. By default the data is
   * copied. With `copy: false` the tensor is a zero-copy view of the array: writes on either side are
   * visible to the other, and the tensor (and every view or autograd node that uses its storage) keeps
   * the array's buffer alive; the buffer must not be transferred or detached while the tensor lives.
   */
  static fromArray(
    data: TypedArray | readonly number[],
    shape?: readonly number[],
    opts: TensorOptions & { copy?: boolean } = {},
  ): Tensor {
    const arr = Array.isArray(data) ? Float64Array.from(data) : (data as TypedArray);
    const own = dtypeOfArray(arr);
    if (own === undefined) throw invalid('data', 'a typed array or a number list', data);
    const dims = shape === undefined ? [arr.length] : shapeOf('shape', shape);
    const want = opts.dtype ?? (Array.isArray(data) ? 'float32' : own);
    const copy = opts.copy === undefined ? true : bool('copy', opts.copy);
    // A Uint8Array is bool data when asked for; otherwise the values are converted after loading.
    const load = want === 'bool' && own === 'uint8' ? 'bool' : own;
    if (!copy && load !== want)
      throw invalid('copy', `true (a ${own} array cannot be viewed as ${want})`, false);
    const h = (copy ? N.from_bytes : N.from_view)(arr, dtypeCode('dtype', load), dims);
    let t = new Tensor(h);
    if (load !== want) {
      const converted = t.to(want);
      t.dispose();
      t = converted;
    }
    return finish(t, opts);
  }

  /** A copy of the data as raw bytes (contiguous, row-major, little-endian). */
  toBytes(): Uint8Array {
    return new Uint8Array(N.to_bytes(this.handle));
  }

  /** A copy of the data as a typed array; float16/bfloat16 come back as Float32Array. */
  toTypedArray(): TypedArray {
    const d = this.dtype;
    if (d === 'float16' || d === 'bfloat16') {
      const f = this.to('float32');
      try {
        return f.toTypedArray();
      } finally {
        f.dispose();
      }
    }
    return typedArrayOver(N.to_bytes(this.handle), d)!;
  }

  /** A copy of the data as a flat list of numbers (int64 converted, bool as 0/1). */
  toArray(): number[] {
    const a = this.toTypedArray();
    return a instanceof BigInt64Array ? Array.from(a, Number) : Array.from(a);
  }

  /** The value of a one-element tensor. */
  item(): number {
    return Number(N.item(this.handle));
  }

  // ------------------------------------------------------------------ conversion
  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    if (typeof target === 'object') {
      let t: Tensor | null = null;
      if (target.device !== undefined)
        t = new Tensor(N.to_device(this.handle, deviceOf('device', target.device)));
      if (target.dtype !== undefined) {
        const next = new Tensor(N.to_dtype((t ?? this).handle, dtypeCode('dtype', target.dtype)));
        t?.dispose();
        t = next;
      }
      return t ?? this.alias();
    }
    if ((DTYPES as readonly string[]).includes(target)) {
      return new Tensor(N.to_dtype(this.handle, dtypeCode('dtype', target)));
    }
    return new Tensor(N.to_device(this.handle, deviceOf('device', target)));
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  half(): Tensor {
    return this.to('float16');
  }
  long(): Tensor {
    return this.to('int64');
  }
  int(): Tensor {
    return this.to('int32');
  }
  bool(): Tensor {
    return this.to('bool');
  }
  /** A new handle on the same tensor (same storage and autograd identity). */
  alias(): Tensor {
    return new Tensor(N.view(this.handle, [...this.shape]));
  }

  // ------------------------------------------------------------------ autograd
  get requiresGrad(): boolean {
    return N.requires_grad(this.handle);
  }
  requiresGrad_(on = true): this {
    N.requires_grad_(this.handle, bool('requiresGrad', on));
    return this;
  }
  get isLeaf(): boolean {
    return N.is_leaf(this.handle);
  }
  /** The accumulated gradient (a new handle on it), or null. */
  get grad(): Tensor | null {
    const g = N.grad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    N.set_grad(this.handle, g === null ? null : g.handle);
  }
  /** Drops the gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    N.set_grad(this.handle, null);
  }
  retainGrad(): this {
    N.retain_grad(this.handle);
    return this;
  }
  detach(): Tensor {
    return new Tensor(N.detach(this.handle));
  }
  /** Backpropagates from this tensor (a scalar unless `gradient` is given). */
  backward(gradient?: Tensor, opts: BackwardOptions = {}): void {
    const [g, retain, create] = backwardArgs(gradient, opts);
    N.backward(this.handle, g, retain, create);
  }
  /** backward() on libuv's thread pool: the event loop keeps running meanwhile. */
  backwardAsync(gradient?: Tensor, opts: BackwardOptions = {}): Promise<void> {
    const [g, retain, create] = backwardArgs(gradient, opts);
    return N.backward_async(this.handle, g, retain, create);
  }

  // ------------------------------------------------------------------ elementwise
  add(o: TensorLike, alpha = 1): Tensor {
    return new Tensor(N.add(this.handle, other(o), alpha));
  }
  sub(o: TensorLike, alpha = 1): Tensor {
    return new Tensor(N.sub(this.handle, other(o), alpha));
  }
  /** o - this */
  rsub(o: TensorLike): Tensor {
    return new Tensor(N.rsub(this.handle, other(o)));
  }
  mul(o: TensorLike): Tensor {
    return new Tensor(N.mul(this.handle, other(o)));
  }
  div(o: TensorLike): Tensor {
    return new Tensor(N.div(this.handle, other(o)));
  }
  /** o / this */
  rdiv(o: TensorLike): Tensor {
    return new Tensor(N.rdiv(this.handle, other(o)));
  }
  floorDivide(o: TensorLike): Tensor {
    return new Tensor(N.floor_div(this.handle, other(o)));
  }
  remainder(o: TensorLike): Tensor {
    return new Tensor(N.remainder(this.handle, other(o)));
  }
  pow(o: TensorLike): Tensor {
    return new Tensor(N.pow(this.handle, other(o)));
  }
  /** o ** this */
  rpow(o: TensorLike): Tensor {
    return new Tensor(N.rpow(this.handle, other(o)));
  }
  maximum(o: TensorLike): Tensor {
    return new Tensor(N.maximum(this.handle, other(o)));
  }
  minimum(o: TensorLike): Tensor {
    return new Tensor(N.minimum(this.handle, other(o)));
  }
  eq(o: TensorLike): Tensor {
    return new Tensor(N.eq(this.handle, other(o)));
  }
  ne(o: TensorLike): Tensor {
    return new Tensor(N.ne(this.handle, other(o)));
  }
  lt(o: TensorLike): Tensor {
    return new Tensor(N.lt(this.handle, other(o)));
  }
  le(o: TensorLike): Tensor {
    return new Tensor(N.le(this.handle, other(o)));
  }
  gt(o: TensorLike): Tensor {
    return new Tensor(N.gt(this.handle, other(o)));
  }
  ge(o: TensorLike): Tensor {
    return new Tensor(N.ge(this.handle, other(o)));
  }
  logicalAnd(o: TensorLike): Tensor {
    return new Tensor(N.logical_and(this.handle, other(o)));
  }
  logicalOr(o: TensorLike): Tensor {
    return new Tensor(N.logical_or(this.handle, other(o)));
  }
  logicalXor(o: TensorLike): Tensor {
    return new Tensor(N.logical_xor(this.handle, other(o)));
  }
  logicalNot(): Tensor {
    return new Tensor(N.logical_not(this.handle));
  }
  neg(): Tensor {
    return new Tensor(N.neg(this.handle));
  }
  exp(): Tensor {
    return new Tensor(N.exp(this.handle));
  }
  log(): Tensor {
    return new Tensor(N.log(this.handle));
  }
  log1p(): Tensor {
    return new Tensor(N.log1p(this.handle));
  }
  sqrt(): Tensor {
    return new Tensor(N.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return new Tensor(N.rsqrt(this.handle));
  }
  abs(): Tensor {
    return new Tensor(N.abs(this.handle));
  }
  sign(): Tensor {
    return new Tensor(N.sign(this.handle));
  }
  floor(): Tensor {
    return new Tensor(N.floor(this.handle));
  }
  ceil(): Tensor {
    return new Tensor(N.ceil(this.handle));
  }
  /** Rounds half to even, as torch.round. */
  round(): Tensor {
    return new Tensor(N.round(this.handle));
  }
  trunc(): Tensor {
    return new Tensor(N.trunc(this.handle));
  }
  sin(): Tensor {
    return new Tensor(N.sin(this.handle));
  }
  cos(): Tensor {
    return new Tensor(N.cos(this.handle));
  }
  tanh(): Tensor {
    return new Tensor(N.tanh(this.handle));
  }
  sigmoid(): Tensor {
    return new Tensor(N.sigmoid(this.handle));
  }
  relu(): Tensor {
    return new Tensor(N.relu(this.handle));
  }
  silu(): Tensor {
    return new Tensor(N.silu(this.handle));
  }
  erf(): Tensor {
    return new Tensor(N.erf(this.handle));
  }
  erfinv(): Tensor {
    return new Tensor(N.erfinv(this.handle));
  }
  reciprocal(): Tensor {
    return new Tensor(N.reciprocal(this.handle));
  }
  square(): Tensor {
    return new Tensor(N.square(this.handle));
  }
  isnan(): Tensor {
    return new Tensor(N.isnan(this.handle));
  }
  isfinite(): Tensor {
    return new Tensor(N.isfinite(this.handle));
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return new Tensor(N.clamp(this.handle, bound('min', min), bound('max', max)));
  }
  /** Elements of this where `cond` holds, else `o` (torch.Tensor.where). */
  where(cond: Tensor, o: TensorLike): Tensor {
    return new Tensor(N.where(cond.handle, this.handle, other(o)));
  }
  maskedFill(mask: Tensor, value: TensorLike): Tensor {
    return new Tensor(N.masked_fill(this.handle, mask.handle, other(value)));
  }
  softmax(dim: number): Tensor {
    return new Tensor(N.softmax(this.handle, integer('dim', dim)));
  }
  logSoftmax(dim: number): Tensor {
    return new Tensor(N.log_softmax(this.handle, integer('dim', dim)));
  }
  matmul(o: Tensor): Tensor {
    return new Tensor(N.matmul(this.handle, o.handle));
  }

  // ------------------------------------------------------------------ in place (return this)
  add_(o: Tensor | number, alpha = 1): this {
    N.add_(this.handle, o instanceof Tensor ? o.handle : o, alpha);
    return this;
  }
  sub_(o: Tensor | number, alpha = 1): this {
    N.add_(this.handle, o instanceof Tensor ? o.handle : o, -alpha);
    return this;
  }
  mul_(o: Tensor | number): this {
    N.mul_(this.handle, o instanceof Tensor ? o.handle : o);
    return this;
  }
  div_(o: Tensor | number): this {
    N.div_(this.handle, o instanceof Tensor ? o.handle : o);
    return this;
  }
  copy_(src: Tensor): this {
    N.copy_(this.handle, src.handle);
    return this;
  }
  fill_(value: number | boolean): this {
    N.fill_(this.handle, value);
    return this;
  }
  zero_(): this {
    N.zero_(this.handle);
    return this;
  }
  sqrt_(): this {
    N.sqrt_(this.handle);
    return this;
  }
  /** this += value · a · b */
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    N.addcmul_(this.handle, a.handle, b.handle, value);
    return this;
  }
  /** this += value · a / b */
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    N.addcdiv_(this.handle, a.handle, b.handle, value);
    return this;
  }
  /** this += weight · (end − this) */
  lerp_(end: Tensor, weight: Tensor | number): this {
    N.lerp_(this.handle, end.handle, weight instanceof Tensor ? weight.handle : weight);
    return this;
  }
  clamp_(min?: number | null, max?: number | null): this {
    N.clamp_(this.handle, bound('min', min), bound('max', max));
    return this;
  }
  maximum_(o: Tensor): this {
    N.maximum_(this.handle, o.handle);
    return this;
  }
  uniform_(low = 0, high = 1, generator?: Generator): this {
    N.uniform_(this.handle, num('low', low), num('high', high), genOf(generator));
    return this;
  }
  normal_(mean = 0, std = 1, generator?: Generator): this {
    N.normal_(this.handle, num('mean', mean), num('std', std, { min: 0 }), genOf(generator));
    return this;
  }
  bernoulli_(p: number, generator?: Generator): this {
    N.bernoulli_(this.handle, num('p', p, { min: 0, max: 1 }), genOf(generator));
    return this;
  }
  /** this[indices] = values (or += with accumulate); null entries select a whole dimension. */
  indexPut_(indices: (Tensor | null)[], values: Tensor, accumulate = false): this {
    N.index_put_(this.handle, indexHandles(indices), values.handle, bool('accumulate', accumulate));
    return this;
  }

  // ------------------------------------------------------------------ reductions
  sum(dim?: number | number[], keepdim = false): Tensor {
    return new Tensor(N.sum(this.handle, dimsOf('dim', dim), keepdim));
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return new Tensor(N.mean(this.handle, dimsOf('dim', dim), keepdim));
  }
  prod(dim?: number, keepdim = false): Tensor {
    return new Tensor(N.prod(this.handle, dim === undefined ? null : integer('dim', dim), keepdim));
  }
  /** Maximum over all elements, or `{ values, indices }` along `dim`. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return new Tensor(N.amax(this.handle, null, false));
    return pair(N.max_dim(this.handle, integer('dim', dim), keepdim));
  }
  /** Minimum over all elements, or `{ values, indices }` along `dim`. */
  min(): Tensor;
  min(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  min(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return new Tensor(N.amin(this.handle, null, false));
    return pair(N.min_dim(this.handle, integer('dim', dim), keepdim));
  }
  amax(dim?: number | number[], keepdim = false): Tensor {
    return new Tensor(N.amax(this.handle, dimsOf('dim', dim), keepdim));
  }
  amin(dim?: number | number[], keepdim = false): Tensor {
    return new Tensor(N.amin(this.handle, dimsOf('dim', dim), keepdim));
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return new Tensor(N.argmax(this.handle, dim === undefined ? null : integer('dim', dim), keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return new Tensor(N.argmin(this.handle, dim === undefined ? null : integer('dim', dim), keepdim));
  }
  /** Variance; `unbiased` (default true) divides by n − 1. */
  var(dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    const { unbiased = true, keepdim = false } = opts;
    return new Tensor(
      N.var(this.handle, dimsOf('dim', dim), bool('unbiased', unbiased), bool('keepdim', keepdim)),
    );
  }
  std(dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    const { unbiased = true, keepdim = false } = opts;
    return new Tensor(
      N.std(this.handle, dimsOf('dim', dim), bool('unbiased', unbiased), bool('keepdim', keepdim)),
    );
  }
  /** Vector p-norm over all elements or `dim` (torch.linalg.vector_norm). */
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor {
    return new Tensor(N.norm(this.handle, num('p', p), dimsOf('dim', dim), keepdim));
  }
  logsumexp(dim: number | number[], keepdim = false): Tensor {
    return new Tensor(N.logsumexp(this.handle, dimsOf('dim', dim)!, keepdim));
  }
  all(dim?: number, keepdim = false): Tensor {
    return new Tensor(N.all(this.handle, dim === undefined ? null : integer('dim', dim), keepdim));
  }
  any(dim?: number, keepdim = false): Tensor {
    return new Tensor(N.any(this.handle, dim === undefined ? null : integer('dim', dim), keepdim));
  }
  cumsum(dim: number): Tensor {
    return new Tensor(N.cumsum(this.handle, integer('dim', dim)));
  }
  cumprod(dim: number): Tensor {
    return new Tensor(N.cumprod(this.handle, integer('dim', dim)));
  }
  topk(
    k: number,
    opts: { dim?: number; largest?: boolean; sorted?: boolean } = {},
  ): {
    values: Tensor;
    indices: Tensor;
  } {
    const { dim = -1, largest = true, sorted = true } = opts;
    const kk = integer('k', k, { min: 0 });
    return pair(
      N.topk(this.handle, kk, integer('dim', dim), bool('largest', largest), bool('sorted', sorted)),
    );
  }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    return pair(N.sort(this.handle, integer('dim', dim), bool('descending', descending)));
  }
  argsort(dim = -1, descending = false): Tensor {
    const { values, indices } = this.sort(dim, descending);
    values.dispose();
    return indices;
  }

  // ------------------------------------------------------------------ shape
  reshape(...shape: ShapeArgs): Tensor {
    return new Tensor(N.reshape(this.handle, shapeArgs('shape', shape)));
  }
  /** Like reshape but never copies (fails on incompatible strides). */
  view(...shape: ShapeArgs): Tensor {
    return new Tensor(N.view(this.handle, shapeArgs('shape', shape)));
  }
  permute(...dims: ShapeArgs): Tensor {
    return new Tensor(N.permute(this.handle, shapeArgs('dims', dims)));
  }
  expand(...shape: ShapeArgs): Tensor {
    return new Tensor(N.expand(this.handle, shapeArgs('shape', shape)));
  }
  repeat(...repeats: ShapeArgs): Tensor {
    return new Tensor(N.repeat(this.handle, shapeArgs('repeats', repeats)));
  }
  repeatInterleave(repeats: number, dim: number): Tensor {
    return new Tensor(
      N.repeat_interleave(this.handle, integer('repeats', repeats, { min: 0 }), integer('dim', dim)),
    );
  }
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(N.transpose(this.handle, integer('dim0', dim0), integer('dim1', dim1)));
  }
  /** Transpose of a ≤ 2-D tensor. */
  t(): Tensor {
    return new Tensor(N.t(this.handle));
  }
  movedim(source: number | number[], destination: number | number[]): Tensor {
    return new Tensor(N.movedim(this.handle, dimsOf('source', source)!, dimsOf('destination', destination)!));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return new Tensor(N.flatten(this.handle, integer('startDim', startDim), integer('endDim', endDim)));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(N.squeeze(this.handle, dim === undefined ? null : integer('dim', dim)));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(N.unsqueeze(this.handle, integer('dim', dim)));
  }
  roll(shifts: number | number[], dims: number | number[]): Tensor {
    return new Tensor(N.roll(this.handle, dimsOf('shifts', shifts)!, dimsOf('dims', dims)!));
  }
  flip(dims: number | number[]): Tensor {
    return new Tensor(N.flip(this.handle, dimsOf('dims', dims)!));
  }
  contiguous(): Tensor {
    return new Tensor(N.contiguous(this.handle));
  }
  clone(): Tensor {
    return new Tensor(N.clone(this.handle));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(
      N.narrow(this.handle, integer('dim', dim), integer('start', start), integer('length', length)),
    );
  }
  /** x[..., start:end:step, ...] along `dim` (a view); omitted bounds mean the whole range. */
  slice(dim: number, start?: number | null, end?: number | null, step = 1): Tensor {
    const s = start === undefined || start === null ? null : integer('start', start);
    const e = end === undefined || end === null ? null : integer('end', end);
    return new Tensor(N.slice(this.handle, integer('dim', dim), s, e, integer('step', step, { min: 1 })));
  }
  /** x[..., index, ...] along `dim`, removing that dimension. */
  select(dim: number, index: number): Tensor {
    return new Tensor(N.select(this.handle, integer('dim', dim), integer('index', index)));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(N.index_select(this.handle, integer('dim', dim), index.handle));
  }
  /** Advanced indexing x[i0, i1, ...] with index tensors; null selects a whole dimension. */
  index(indices: (Tensor | null)[]): Tensor {
    return new Tensor(N.index(this.handle, indexHandles(indices)));
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(N.gather(this.handle, integer('dim', dim), index.handle));
  }
  scatter(dim: number, index: Tensor, src: Tensor | number): Tensor {
    return new Tensor(
      N.scatter(this.handle, integer('dim', dim), index.handle, src instanceof Tensor ? src.handle : src),
    );
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return new Tensor(N.scatter_add(this.handle, integer('dim', dim), index.handle, src.handle));
  }
  /** Pieces of `size` along `dim` (the last may be smaller), or pieces of the given sizes. */
  split(size: number | number[], dim = 0): Tensor[] {
    const s = Array.isArray(size) ? intList('size', size, 0) : integer('size', size, { min: 1 });
    return N.split(this.handle, s, integer('dim', dim)).map((h) => new Tensor(h));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return N.chunk(this.handle, integer('chunks', chunks, { min: 1 }), integer('dim', dim)).map(
      (h) => new Tensor(h),
    );
  }
  unbind(dim = 0): Tensor[] {
    return N.unbind(this.handle, integer('dim', dim)).map((h) => new Tensor(h));
  }
  /** Sliding windows of `size` with `step` along `dim`, as a new last dimension. */
  unfold(dim: number, size: number, step: number): Tensor {
    return new Tensor(
      N.unfold(
        this.handle,
        integer('dim', dim),
        integer('size', size, { min: 0 }),
        integer('step', step, { min: 1 }),
      ),
    );
  }
  tril(diagonal = 0): Tensor {
    return new Tensor(N.tril(this.handle, integer('diagonal', diagonal)));
  }
  triu(diagonal = 0): Tensor {
    return new Tensor(N.triu(this.handle, integer('diagonal', diagonal)));
  }
  nonzero(): Tensor {
    return new Tensor(N.nonzero(this.handle));
  }
}

export interface BackwardOptions {
  retainGraph?: boolean;
  createGraph?: boolean;
}

function backwardArgs(
  gradient: Tensor | undefined,
  opts: BackwardOptions,
): [Handle | null, boolean, boolean] {
  const create = bool('createGraph', opts.createGraph ?? false);
  return [
    gradient === undefined ? null : gradient.handle,
    bool('retainGraph', opts.retainGraph ?? create),
    create,
  ];
}

function pair([v, i]: [Handle, Handle]): { values: Tensor; indices: Tensor } {
  return { values: new Tensor(v), indices: new Tensor(i) };
}

function bound(name: string, v: number | null | undefined): number | null {
  return v === undefined || v === null ? null : num(name, v);
}

function indexHandles(indices: (Tensor | null)[]): (Handle | null)[] {
  return indices.map((t) => (t === null ? null : t.handle));
}

export function genOf(g: Generator | undefined): GeneratorHandle | null {
  if (g === undefined) return null;
  if (!(g instanceof Generator)) throw invalid('generator', 'a Generator', g);
  return g.handle;
}

/** Applies the `requiresGrad` creation option. */
function finish(t: Tensor, opts: TensorOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

function optsOf(opts: TensorOptions, fallback: DType = 'float32'): [number, string | null] {
  const dtype = dtypeCode('dtype', opts.dtype ?? fallback);
  return [dtype, opts.device === undefined ? null : deviceOf('device', opts.device)];
}

// ------------------------------------------------------------------ creation
export function zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(N.zeros(shapeOf('shape', shape), ...optsOf(opts))), opts);
}
export function ones(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(N.ones(shapeOf('shape', shape), ...optsOf(opts))), opts);
}
/** Uninitialised memory (fast; every element must be written before it is read). */
export function empty(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(N.empty(shapeOf('shape', shape), ...optsOf(opts))), opts);
}
export function full(shape: readonly number[], value: number | boolean, opts: TensorOptions = {}): Tensor {
  const v = typeof value === 'boolean' ? value : num('value', value);
  return finish(new Tensor(N.full(shapeOf('shape', shape), v, ...optsOf(opts))), opts);
}
/** Values start, start+step, ... below end; with one number, 0 ... end−1. Integer arguments give int64. */
export function arange(end: number): Tensor;
export function arange(start: number, end: number, step?: number, opts?: TensorOptions): Tensor;
export function arange(a: number, b?: number, step = 1, opts: TensorOptions = {}): Tensor {
  const [start, end] = b === undefined ? [0, a] : [a, b];
  num('start', start);
  num('end', end);
  if (num('step', step) === 0) throw invalid('step', 'a non-zero number', step);
  const ints = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  const [dtype, device] = optsOf(opts, ints ? 'int64' : 'float32');
  return finish(new Tensor(N.arange(start, end, step, dtype, device)), opts);
}
export function linspace(start: number, end: number, steps: number, opts: TensorOptions = {}): Tensor {
  const n = integer('steps', steps, { min: 0 });
  return finish(new Tensor(N.linspace(num('start', start), num('end', end), n, ...optsOf(opts))), opts);
}
export function eye(n: number, opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(N.eye(integer('n', n, { min: 0 }), ...optsOf(opts))), opts);
}
/** Standard normal samples. */
export function randn(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  return finish(new Tensor(N.randn(shapeOf('shape', shape), ...optsOf(opts), genOf(opts.generator))), opts);
}
/** Uniform samples in [0, 1). */
export function rand(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  return finish(new Tensor(N.rand(shapeOf('shape', shape), ...optsOf(opts), genOf(opts.generator))), opts);
}
/** Integers uniform in [low, high); int64 unless `dtype` says otherwise. */
export function randint(
  low: number,
  high: number,
  shape: readonly number[],
  opts: RandomOptions = {},
): Tensor {
  const lo = integer('low', low);
  const hi = integer('high', high, { min: lo + 1 });
  const [dtype, device] = optsOf(opts, 'int64');
  return new Tensor(N.randint(lo, hi, shapeOf('shape', shape), dtype, device, genOf(opts.generator)));
}
/** A random permutation of 0 ... n−1 (int64). */
export function randperm(n: number, opts: RandomOptions = {}): Tensor {
  const [dtype, device] = optsOf(opts, 'int64');
  return new Tensor(N.randperm(integer('n', n, { min: 0 }), dtype, device, genOf(opts.generator)));
}
export function zerosLike(x: Tensor, opts: TensorOptions = {}): Tensor {
  return zeros(x.shape, { dtype: x.dtype, ...opts });
}
export function onesLike(x: Tensor, opts: TensorOptions = {}): Tensor {
  return ones(x.shape, { dtype: x.dtype, ...opts });
}
export function fullLike(x: Tensor, value: number | boolean, opts: TensorOptions = {}): Tensor {
  return full(x.shape, value, { dtype: x.dtype, ...opts });
}
export function randnLike(x: Tensor, opts: RandomOptions = {}): Tensor {
  return randn(x.shape, { dtype: x.dtype, ...opts });
}

type Nested = number | boolean | readonly Nested[];

/** A tensor from a number, a boolean or nested lists (float32 unless `dtype` says otherwise). */
export function tensor(data: Nested, opts: TensorOptions = {}): Tensor {
  const shape: number[] = [];
  for (let d: Nested = data; Array.isArray(d); d = (d as readonly Nested[])[0]) shape.push(d.length);
  const flat: number[] = [];
  const walk = (d: Nested, depth: number): void => {
    if (depth === shape.length) {
      if (typeof d === 'boolean') flat.push(d ? 1 : 0);
      else if (typeof d === 'number') flat.push(d);
      else throw new DiffregError(`tensor: nested lists must be regular (shape [${shape.join(', ')}])`);
      return;
    }
    if (!Array.isArray(d) || d.length !== shape[depth]) {
      throw new DiffregError(`tensor: nested lists must be regular (shape [${shape.join(', ')}])`);
    }
    for (const x of d as readonly Nested[]) walk(x, depth + 1);
  };
  walk(data, 0);
  const dtype = opts.dtype ?? (typeof data === 'boolean' ? 'bool' : 'float32');
  return Tensor.fromArray(Float64Array.from(flat), shape, { ...opts, dtype });
}
