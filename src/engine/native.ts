/**
 * The native addon (native/*.cc → build/Release/diffreg_torch.node) and its typed surface. Only
 * src/engine talks to it: handles are opaque, arguments are validated in TypeScript first, and every
 * native failure arrives as an Error with code 'ERR_TORCH' carrying libtorch's message.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DiffregError } from '../util/errors.ts';

declare const handleBrand: unique symbol;
/** A native tensor reference (Napi::External). */
export type Handle = { readonly [handleBrand]: 'tensor' };
declare const generatorBrand: unique symbol;
export type GeneratorHandle = { readonly [generatorBrand]: 'generator' };

type H = Handle;
type G = GeneratorHandle | null;
type Num = number | boolean;
type Op1 = (x: H) => H;
type Op2 = (a: H, b: H | Num) => H;
type Arith = (a: H, b: H | Num, alpha: number) => H;
type InPlace1 = (x: H) => void;
type Dims = number[] | null;
type Make = (shape: number[], dtype: number, device: string | null) => H;
type Pair = [H, H];
type Work<A extends unknown[]> = (...args: A) => H;
type AsyncWork<A extends unknown[]> = (...args: A) => Promise<H>;
type ConvArgs = [H, H, H | null, number[], number[] | string, number[], boolean, number[], number];
type InterpArgs = [H, number[] | null, number[] | null, number, boolean];
type SdpaArgs = [H, H, H, H | null, number | null, boolean];
type GridArgs = [H, H, number, number, boolean];

export interface Native {
  info(): { version: string; cudaAvailable: boolean; cores: number };
  set_num_threads(n: number): void;
  get_num_threads(): number;
  release(x: H): void;
  assign(dst: H, src: H): void;
  memory(resetPeak?: boolean): { handles: number; bytes: number; peakBytes: number; cachedBytes: number };
  trim_memory(): boolean;
  flush_views(): void;

  generator_new(seed: number): GeneratorHandle;
  generator_default(): GeneratorHandle;
  generator_seed(g: GeneratorHandle, seed: number): void;
  generator_get_state(g: GeneratorHandle): H;
  generator_set_state(g: GeneratorHandle, state: H): void;

  set_grad_enabled(on: boolean): boolean;
  is_grad_enabled(): boolean;
  requires_grad_(x: H, on: boolean): void;
  requires_grad(x: H): boolean;
  is_leaf(x: H): boolean;
  retain_grad(x: H): void;
  grad(x: H): H | null;
  set_grad(x: H, g: H | null): void;
  backward(x: H, gradient: H | null, retainGraph: boolean, createGraph: boolean): void;
  backward_async(x: H, gradient: H | null, retainGraph: boolean, createGraph: boolean): Promise<void>;
  autograd_grad(
    outputs: H[],
    inputs: H[],
    gradOutputs: H[] | null,
    retainGraph: boolean,
    createGraph: boolean,
    allowUnused: boolean,
  ): (H | null)[];

  zeros: Make;
  ones: Make;
  empty: Make;
  full(shape: number[], value: Num, dtype: number, device: string | null): H;
  arange(start: number, end: number, step: number, dtype: number, device: string | null): H;
  linspace(start: number, end: number, steps: number, dtype: number, device: string | null): H;
  eye(n: number, dtype: number, device: string | null): H;
  randn(shape: number[], dtype: number, device: string | null, g: G): H;
  rand(shape: number[], dtype: number, device: string | null, g: G): H;
  randint(low: number, high: number, shape: number[], dtype: number, device: string | null, g: G): H;
  randperm(n: number, dtype: number, device: string | null, g: G): H;
  uniform_(x: H, lo: number, hi: number, g: G): void;
  normal_(x: H, mean: number, std: number, g: G): void;
  bernoulli_(x: H, p: number, g: G): void;
  from_bytes(data: ArrayBufferView, dtype: number, shape: number[]): H;
  from_view(data: ArrayBufferView, dtype: number, shape: number[]): H;
  to_bytes(x: H): ArrayBuffer;
  shape(x: H): number[];
  dtype(x: H): number;
  device(x: H): string;
  is_contiguous(x: H): boolean;
  item(x: H): number | boolean;

  neg: Op1;
  exp: Op1;
  log: Op1;
  log1p: Op1;
  sqrt: Op1;
  rsqrt: Op1;
  abs: Op1;
  sign: Op1;
  floor: Op1;
  ceil: Op1;
  round: Op1;
  trunc: Op1;
  sin: Op1;
  cos: Op1;
  tanh: Op1;
  sigmoid: Op1;
  relu: Op1;
  silu: Op1;
  softplus: Op1;
  mish: Op1;
  softsign: Op1;
  logical_not: Op1;
  erf: Op1;
  erfinv: Op1;
  reciprocal: Op1;
  square: Op1;
  isnan: Op1;
  isfinite: Op1;
  contiguous: Op1;
  clone: Op1;
  detach: Op1;
  nonzero: Op1;
  t: Op1;

  add: Arith;
  sub: Arith;
  mul: Op2;
  div: Op2;
  floor_div: Op2;
  remainder: Op2;
  pow: Op2;
  eq: Op2;
  ne: Op2;
  lt: Op2;
  le: Op2;
  gt: Op2;
  ge: Op2;
  maximum: Op2;
  minimum: Op2;
  logical_and: Op2;
  logical_or: Op2;
  logical_xor: Op2;
  rsub: Op2;
  rdiv: Op2;
  rpow: Op2;

  add_(x: H, other: H | number, alpha: number): void;
  mul_(x: H, other: H | number): void;
  div_(x: H, other: H | number): void;
  copy_(x: H, src: H): void;
  fill_(x: H, value: Num): void;
  zero_: InPlace1;
  sqrt_: InPlace1;
  addcmul_(x: H, a: H, b: H, value: number): void;
  addcdiv_(x: H, a: H, b: H, value: number): void;
  lerp_(x: H, end: H, weight: H | number): void;
  clamp_(x: H, min: number | null, max: number | null): void;
  maximum_(x: H, other: H): void;
  index_put_(x: H, indices: (H | null)[], values: H, accumulate: boolean): void;

  where(cond: H, a: H | Num, b: H | Num): H;
  clamp(x: H, min: number | null, max: number | null): H;
  masked_fill(x: H, mask: H, value: H | Num): H;
  to_dtype(x: H, dtype: number): H;
  to_device(x: H, device: string): H;

  sum(x: H, dims: Dims, keepdim: boolean): H;
  mean(x: H, dims: Dims, keepdim: boolean): H;
  prod(x: H, dim: number | null, keepdim: boolean): H;
  amax(x: H, dims: Dims, keepdim: boolean): H;
  amin(x: H, dims: Dims, keepdim: boolean): H;
  argmax(x: H, dim: number | null, keepdim: boolean): H;
  argmin(x: H, dim: number | null, keepdim: boolean): H;
  var(x: H, dims: Dims, unbiased: boolean, keepdim: boolean): H;
  std(x: H, dims: Dims, unbiased: boolean, keepdim: boolean): H;
  norm(x: H, p: number, dims: Dims, keepdim: boolean): H;
  logsumexp(x: H, dims: number[], keepdim: boolean): H;
  all(x: H, dim: number | null, keepdim: boolean): H;
  any(x: H, dim: number | null, keepdim: boolean): H;
  cumsum(x: H, dim: number): H;
  cumprod(x: H, dim: number): H;
  max_dim(x: H, dim: number, keepdim: boolean): Pair;
  min_dim(x: H, dim: number, keepdim: boolean): Pair;
  topk(x: H, k: number, dim: number, largest: boolean, sorted: boolean): Pair;
  sort(x: H, dim: number, descending: boolean): Pair;
  channel_affine_silu(x: H, scale: H, shift: H): H;
  store_rows(out: H, y: H, residual: H | null): H;
  corner_gram(level: H): H;
  nearest_rows(x: H, e: H): H;
  ssd_cost_volume(fixed: H, moving: H, radius: number): H;
  coupled_argmin(cost: H, radius: number, smoothed: H | null, theta: number): H;
  warped_ssd(moving: H, fixed: H, displacement: H, offset: number[] | null, stride: number[] | null): Pair;
  sample_trilinear(volume: H, positions: H): H;
  sample_trilinear_backward(volume: H, positions: H, gradient: H): Pair;
  self_compose(u: H): H;
  self_compose_backward(u: H, gradient: H): H;
  mind_ssc(image: H, dilation: number[]): H;
  local_ncc(a: H, b: H, window: number[], eps: number): H[];
  folding_hinge(u: H, margin: number, corners: number): H[];
  dilated_patches(image: H, dilation: number[]): H;
  interpolated_cosine_search(
    dots: H[],
    gram: H[],
    size: number[],
    lo: number[],
    hi: number[],
    first: number,
    count: number,
    k: number,
    window: number[] | null,
  ): Pair | H;

  reshape(x: H, shape: number[]): H;
  view(x: H, shape: number[]): H;
  permute(x: H, dims: number[]): H;
  transpose(x: H, d0: number, d1: number): H;
  movedim(x: H, from: number[], to: number[]): H;
  flatten(x: H, start: number, end: number): H;
  squeeze(x: H, dim: number | null): H;
  unsqueeze(x: H, dim: number): H;
  expand(x: H, shape: number[]): H;
  repeat(x: H, repeats: number[]): H;
  repeat_interleave(x: H, repeats: number, dim: number): H;
  roll(x: H, shifts: number[], dims: number[]): H;
  flip(x: H, dims: number[]): H;
  narrow(x: H, dim: number, start: number, length: number): H;
  slice(x: H, dim: number, start: number | null, end: number | null, step: number): H;
  select(x: H, dim: number, index: number): H;
  index_select(x: H, dim: number, index: H): H;
  gather(x: H, dim: number, index: H): H;
  scatter(x: H, dim: number, index: H, src: H | number): H;
  scatter_add(x: H, dim: number, index: H, src: H): H;
  cat(xs: H[], dim: number): H;
  stack(xs: H[], dim: number): H;
  unfold(x: H, dim: number, size: number, step: number): H;
  tril(x: H, k: number): H;
  triu(x: H, k: number): H;
  one_hot(x: H, n: number): H;
  einsum(equation: string, xs: H[]): H;
  index(x: H, indices: (H | null)[]): H;
  split(x: H, sizes: number | number[], dim: number): H[];
  chunk(x: H, n: number, dim: number): H[];
  unbind(x: H, dim: number): H[];
  meshgrid(xs: H[], indexing: string): H[];

  convolution: Work<ConvArgs>;
  convolution_async: AsyncWork<ConvArgs>;
  linear: Work<[H, H, H | null]>;
  linear_async: AsyncWork<[H, H, H | null]>;
  matmul: Work<[H, H]>;
  matmul_async: AsyncWork<[H, H]>;
  bmm: Work<[H, H]>;
  bmm_async: AsyncWork<[H, H]>;
  sdpa: Work<SdpaArgs>;
  sdpa_async: AsyncWork<SdpaArgs>;
  interpolate: Work<InterpArgs>;
  interpolate_async: AsyncWork<InterpArgs>;
  grid_sample: Work<GridArgs>;
  grid_sample_async: AsyncWork<GridArgs>;
  affine_grid(theta: H, size: number[], alignCorners: boolean): H;
  pad(x: H, pads: number[], mode: number, value: number): H;
  max_pool(x: H, k: number[], s: number[], p: number[], d: number[], ceil: boolean): H;
  avg_pool(x: H, k: number[], s: number[], p: number[], ceil: boolean, includePad: boolean): H;
  adaptive_avg_pool(x: H, size: number[]): H;
  group_norm(x: H, groups: number, w: H | null, b: H | null, eps: number): H;
  layer_norm(x: H, shape: number[], w: H | null, b: H | null, eps: number): H;
  instance_norm(
    x: H,
    w: H | null,
    b: H | null,
    rm: H | null,
    rv: H | null,
    useInputStats: boolean,
    momentum: number,
    eps: number,
  ): H;
  batch_norm(
    x: H,
    w: H | null,
    b: H | null,
    rm: H | null,
    rv: H | null,
    training: boolean,
    momentum: number,
    eps: number,
  ): H;
  softmax(x: H, dim: number): H;
  log_softmax(x: H, dim: number): H;
  leaky_relu(x: H, slope: number): H;
  elu(x: H, alpha: number): H;
  prelu(x: H, w: H): H;
  gelu(x: H, tanh: boolean): H;
  dropout(x: H, p: number, g: G): H;
  mse_loss(a: H, b: H, reduction: number): H;
  l1_loss(a: H, b: H, reduction: number): H;
  smooth_l1_loss(a: H, b: H, reduction: number, beta: number): H;
  cross_entropy(
    x: H,
    target: H,
    weight: H | null,
    reduction: number,
    ignoreIndex: number,
    smoothing: number,
  ): H;
  bce_with_logits(x: H, target: H, weight: H | null, posWeight: H | null, reduction: number): H;
}

function load(): Native {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const path = resolve(root, 'build', 'Release', 'diffreg_torch.node');
  if (!existsSync(path)) {
    throw new DiffregError(
      `tensor engine: ${path} is missing; run \`make setup\` (or \`npx node-gyp rebuild\`)`,
    );
  }
  return createRequire(import.meta.url)(path) as Native;
}

export const N: Native = load();
