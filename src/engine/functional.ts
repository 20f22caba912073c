/**
 * The torch.nn.functional subset diffreg needs, exported from index.ts as `F`:
 * `F.conv3d(x, w, b, { stride: 2, padding: 1 })`, `F.interpolate(x, { scaleFactor: 2, mode: 'trilinear' })`.
 * Options are validated here (one uniform message) before they reach libtorch; shape mismatches are left
 * to libtorch, whose message the Error carries. Heavy ops also have an `...Async` twin that runs on
 * libuv's thread pool and returns a Promise (see native/common.h).
 */
import { bool, integer, invalid, number as num, oneOf } from '../util/is.ts';
import { intList, ntuple } from './check.ts';
import { N, type Handle } from './native.ts';
import { Tensor, genOf, type Generator } from './tensor.ts';

const wrap = (h: Handle): Tensor => new Tensor(h);
const wrapAsync = (p: Promise<Handle>): Promise<Tensor> => p.then(wrap);
const opt = (t: Tensor | null | undefined): Handle | null =>
  t === undefined || t === null ? null : t.handle;

// ------------------------------------------------------------------ convolution
export interface ConvOptions {
  stride?: number | number[];
  /** Zero padding per side, or 'same' / 'valid' (stride 1). */
  padding?: number | number[] | 'same' | 'valid';
  dilation?: number | number[];
  groups?: number;
}
export interface ConvTransposeOptions {
  stride?: number | number[];
  padding?: number | number[];
  outputPadding?: number | number[];
  dilation?: number | number[];
  groups?: number;
}
type ConvArgs = Parameters<typeof N.convolution>;

function weightOf(name: string, w: Tensor, nd: number): void {
  if (w.ndim !== nd + 2)
    throw invalid(`${name} weight`, `a ${nd + 2}-D tensor`, `shape [${w.shape.join(', ')}]`);
}

/** Arguments of the native convolution; `transposed` selects convTranspose's options. */
function convArgs(
  name: string,
  nd: number,
  x: Tensor,
  w: Tensor,
  b: Tensor | null | undefined,
  o: ConvOptions | ConvTransposeOptions,
  transposed = false,
): ConvArgs {
  weightOf(name, w, nd);
  const p = o.padding ?? 0;
  const padding = !transposed && (p === 'same' || p === 'valid') ? p : ntuple(`${name} padding`, p, nd);
  const outputPadding = transposed ? ((o as ConvTransposeOptions).outputPadding ?? 0) : 0;
  return [
    x.handle,
    w.handle,
    opt(b),
    ntuple(`${name} stride`, o.stride ?? 1, nd, 1),
    padding,
    ntuple(`${name} dilation`, o.dilation ?? 1, nd, 1),
    transposed,
    ntuple(`${name} outputPadding`, outputPadding, nd),
    integer(`${name} groups`, o.groups ?? 1, { min: 1 }),
  ];
}

type Conv<O> = (x: Tensor, w: Tensor, b?: Tensor | null, o?: O) => Tensor;
type ConvAsync<O> = (x: Tensor, w: Tensor, b?: Tensor | null, o?: O) => Promise<Tensor>;
const conv =
  (name: string, nd: number): Conv<ConvOptions> =>
  (x, w, b, o = {}) =>
    wrap(N.convolution(...convArgs(name, nd, x, w, b, o)));
const convTranspose =
  (name: string, nd: number): Conv<ConvTransposeOptions> =>
  (x, w, b, o = {}) =>
    wrap(N.convolution(...convArgs(name, nd, x, w, b, o, true)));

/** Convolution (cross-correlation) of x (N, C, spatial...) with w (out, in/groups, k...), as F.convNd. */
export const conv1d = conv('conv1d', 1);
export const conv2d = conv('conv2d', 2);
export const conv3d = conv('conv3d', 3);
/** Transposed convolution with w (in, out/groups, k...), as F.conv_transposeNd. */
export const convTranspose1d = convTranspose('convTranspose1d', 1);
export const convTranspose2d = convTranspose('convTranspose2d', 2);
export const convTranspose3d = convTranspose('convTranspose3d', 3);
export const conv2dAsync: ConvAsync<ConvOptions> = (x, w, b, o = {}) =>
  wrapAsync(N.convolution_async(...convArgs('conv2d', 2, x, w, b, o)));
export const conv3dAsync: ConvAsync<ConvOptions> = (x, w, b, o = {}) =>
  wrapAsync(N.convolution_async(...convArgs('conv3d', 3, x, w, b, o)));
export const convTranspose3dAsync: ConvAsync<ConvTransposeOptions> = (x, w, b, o = {}) =>
  wrapAsync(N.convolution_async(...convArgs('convTranspose3d', 3, x, w, b, o, true)));

// ------------------------------------------------------------------ linear algebra
/** x · wᵀ + b */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  return wrap(N.linear(x.handle, w.handle, opt(b)));
}
export function linearAsync(x: Tensor, w: Tensor, b?: Tensor | null): Promise<Tensor> {
  return wrapAsync(N.linear_async(x.handle, w.handle, opt(b)));
}
export function matmul(a: Tensor, b: Tensor): Tensor {
  return wrap(N.matmul(a.handle, b.handle));
}
export function matmulAsync(a: Tensor, b: Tensor): Promise<Tensor> {
  return wrapAsync(N.matmul_async(a.handle, b.handle));
}
export function bmm(a: Tensor, b: Tensor): Tensor {
  return wrap(N.bmm(a.handle, b.handle));
}
export function bmmAsync(a: Tensor, b: Tensor): Promise<Tensor> {
  return wrapAsync(N.bmm_async(a.handle, b.handle));
}

export interface AttentionOptions {
  /** Boolean (true = may attend) or additive float mask/bias, broadcastable to (..., L, S). */
  attnMask?: Tensor | null;
  /** Defaults to 1/√(head dim). */
  scale?: number;
  isCausal?: boolean;
}
type SdpaArgs = Parameters<typeof N.sdpa>;
function sdpaArgs(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): SdpaArgs {
  const scale = o.scale === undefined ? null : num('scale', o.scale);
  return [q.handle, k.handle, v.handle, opt(o.attnMask), scale, bool('isCausal', o.isCausal ?? false)];
}
/** softmax(q·kᵀ·scale + mask)·v over the last two dims (q: ..., L, E; k: ..., S, E; v: ..., S, Ev). */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): Tensor {
  return wrap(N.sdpa(...sdpaArgs(q, k, v, o)));
}
export function scaledDotProductAttentionAsync(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: AttentionOptions = {},
): Promise<Tensor> {
  return wrapAsync(N.sdpa_async(...sdpaArgs(q, k, v, o)));
}

// ------------------------------------------------------------------ resampling
export type InterpolateMode =
  'nearest' | 'nearest-exact' | 'linear' | 'bilinear' | 'trilinear' | 'bicubic' | 'area';
const INTERPOLATE_MODES: readonly InterpolateMode[] = [
  'nearest',
  'nearest-exact',
  'linear',
  'bilinear',
  'trilinear',
  'bicubic',
  'area',
];
/** Input rank each mode needs (N, C, spatial...). */
const MODE_RANK: Partial<Record<InterpolateMode, number>> = {
  linear: 3,
  bilinear: 4,
  trilinear: 5,
  bicubic: 4,
};
const MODE_CODE: Record<InterpolateMode, number> = {
  nearest: 0,
  linear: 1,
  bilinear: 1,
  trilinear: 1,
  bicubic: 2,
  'nearest-exact': 3,
  area: 4,
};

export interface InterpolateOptions {
  size?: number | number[];
  scaleFactor?: number | number[];
  mode?: InterpolateMode;
  alignCorners?: boolean;
}
type InterpArgs = Parameters<typeof N.interpolate>;
function interpolateArgs(x: Tensor, o: InterpolateOptions): InterpArgs {
  const mode = oneOf('interpolate mode', o.mode ?? 'nearest', INTERPOLATE_MODES);
  const nd = x.ndim - 2;
  if (nd < 1 || nd > 3)
    throw invalid('interpolate input', 'a 3-D to 5-D tensor (N, C, spatial...)', x.toString());
  const rank = MODE_RANK[mode];
  if (rank !== undefined && x.ndim !== rank) {
    throw invalid(`interpolate input for mode ${mode}`, `a ${rank}-D tensor`, x.toString());
  }
  if ((o.size === undefined) === (o.scaleFactor === undefined)) {
    throw invalid(
      'interpolate',
      'exactly one of size and scaleFactor',
      `size ${o.size}, scaleFactor ${o.scaleFactor}`,
    );
  }
  const linearish = MODE_CODE[mode] === 1 || mode === 'bicubic';
  if (o.alignCorners !== undefined && !linearish) {
    throw invalid('interpolate alignCorners', `no value with mode ${mode}`, o.alignCorners);
  }
  const size = o.size === undefined ? null : ntuple('interpolate size', o.size, nd, 1);
  let scale: number[] | null = null;
  if (o.scaleFactor !== undefined) {
    const s = typeof o.scaleFactor === 'number' ? new Array<number>(nd).fill(o.scaleFactor) : o.scaleFactor;
    if (!Array.isArray(s) || s.length !== nd || !s.every((v) => Number.isFinite(v) && v > 0)) {
      throw invalid('interpolate scaleFactor', `a positive number or ${nd} of them`, o.scaleFactor);
    }
    scale = s;
  }
  return [x.handle, size, scale, MODE_CODE[mode], bool('alignCorners', o.alignCorners ?? false)];
}
/** Resizes (N, C, spatial...) by `size` or `scaleFactor` (F.interpolate, recompute_scale_factor off). */
export function interpolate(x: Tensor, o: InterpolateOptions): Tensor {
  return wrap(N.interpolate(...interpolateArgs(x, o)));
}
export function interpolateAsync(x: Tensor, o: InterpolateOptions): Promise<Tensor> {
  return wrapAsync(N.interpolate_async(...interpolateArgs(x, o)));
}

export interface GridSampleOptions {
  mode?: 'bilinear' | 'nearest' | 'bicubic';
  paddingMode?: 'zeros' | 'border' | 'reflection';
  alignCorners?: boolean;
}
type GridArgs = Parameters<typeof N.grid_sample>;
function gridSampleArgs(x: Tensor, grid: Tensor, o: GridSampleOptions): GridArgs {
  const mode = oneOf('gridSample mode', o.mode ?? 'bilinear', ['bilinear', 'nearest', 'bicubic'] as const);
  const pad = oneOf('gridSample paddingMode', o.paddingMode ?? 'zeros', [
    'zeros',
    'border',
    'reflection',
  ] as const);
  return [
    x.handle,
    grid.handle,
    ['bilinear', 'nearest', 'bicubic'].indexOf(mode),
    ['zeros', 'border', 'reflection'].indexOf(pad),
    bool('alignCorners', o.alignCorners ?? false),
  ];
}
/**
 * Samples x (N, C, [D,] H, W) at grid (N, [D',] H', W', 2|3) in normalised coordinates [-1, 1], the last
 * grid axis ordered (x, y[, z]) = (W, H[, D]) as in PyTorch. Differentiable in x and grid.
 */
export function gridSample(x: Tensor, grid: Tensor, o: GridSampleOptions = {}): Tensor {
  return wrap(N.grid_sample(...gridSampleArgs(x, grid, o)));
}
export function gridSampleAsync(x: Tensor, grid: Tensor, o: GridSampleOptions = {}): Promise<Tensor> {
  return wrapAsync(N.grid_sample_async(...gridSampleArgs(x, grid, o)));
}
/** Sampling grid of the affine maps theta (N, 2, 3) or (N, 3, 4) for an output of `size` (N, C, ...). */
export function affineGrid(theta: Tensor, size: number[], o: { alignCorners?: boolean } = {}): Tensor {
  return wrap(
    N.affine_grid(
      theta.handle,
      intList('affineGrid size', size, 1),
      bool('alignCorners', o.alignCorners ?? false),
    ),
  );
}

export type PadMode = 'constant' | 'reflect' | 'replicate' | 'circular';
const PAD_MODES: readonly PadMode[] = ['constant', 'reflect', 'replicate', 'circular'];
/** Pads the last dims: `pad` = [lastLeft, lastRight, secondLastLeft, ...] as F.pad. */
export function pad(x: Tensor, pads: number[], o: { mode?: PadMode; value?: number } = {}): Tensor {
  const mode = oneOf('pad mode', o.mode ?? 'constant', PAD_MODES);
  if (pads.length % 2 !== 0) throw invalid('pad', 'an even number of integers', pads);
  return wrap(N.pad(x.handle, intList('pad', pads), PAD_MODES.indexOf(mode), num('pad value', o.value ?? 0)));
}

// ------------------------------------------------------------------ pooling
export interface MaxPoolOptions {
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
  ceilMode?: boolean;
}
export interface AvgPoolOptions {
  stride?: number | number[];
  padding?: number | number[];
  ceilMode?: boolean;
  countIncludePad?: boolean;
}
function maxPool(name: string, nd: number, x: Tensor, k: number | number[], o: MaxPoolOptions): Tensor {
  const kernel = ntuple(`${name} kernelSize`, k, nd, 1);
  return wrap(
    N.max_pool(
      x.handle,
      kernel,
      o.stride === undefined ? kernel : ntuple(`${name} stride`, o.stride, nd, 1),
      ntuple(`${name} padding`, o.padding ?? 0, nd),
      ntuple(`${name} dilation`, o.dilation ?? 1, nd, 1),
      bool('ceilMode', o.ceilMode ?? false),
    ),
  );
}
function avgPool(name: string, nd: number, x: Tensor, k: number | number[], o: AvgPoolOptions): Tensor {
  const kernel = ntuple(`${name} kernelSize`, k, nd, 1);
  return wrap(
    N.avg_pool(
      x.handle,
      kernel,
      o.stride === undefined ? kernel : ntuple(`${name} stride`, o.stride, nd, 1),
      ntuple(`${name} padding`, o.padding ?? 0, nd),
      bool('ceilMode', o.ceilMode ?? false),
      bool('countIncludePad', o.countIncludePad ?? true),
    ),
  );
}
export const maxPool1d = (x: Tensor, k: number | number[], o: MaxPoolOptions = {}): Tensor =>
  maxPool('maxPool1d', 1, x, k, o);
export const maxPool2d = (x: Tensor, k: number | number[], o: MaxPoolOptions = {}): Tensor =>
  maxPool('maxPool2d', 2, x, k, o);
export const maxPool3d = (x: Tensor, k: number | number[], o: MaxPoolOptions = {}): Tensor =>
  maxPool('maxPool3d', 3, x, k, o);
export const avgPool1d = (x: Tensor, k: number | number[], o: AvgPoolOptions = {}): Tensor =>
  avgPool('avgPool1d', 1, x, k, o);
export const avgPool2d = (x: Tensor, k: number | number[], o: AvgPoolOptions = {}): Tensor =>
  avgPool('avgPool2d', 2, x, k, o);
export const avgPool3d = (x: Tensor, k: number | number[], o: AvgPoolOptions = {}): Tensor =>
  avgPool('avgPool3d', 3, x, k, o);
export const adaptiveAvgPool1d = (x: Tensor, size: number | number[]): Tensor =>
  wrap(N.adaptive_avg_pool(x.handle, ntuple('adaptiveAvgPool1d outputSize', size, 1, 1)));
export const adaptiveAvgPool2d = (x: Tensor, size: number | number[]): Tensor =>
  wrap(N.adaptive_avg_pool(x.handle, ntuple('adaptiveAvgPool2d outputSize', size, 2, 1)));
export const adaptiveAvgPool3d = (x: Tensor, size: number | number[]): Tensor =>
  wrap(N.adaptive_avg_pool(x.handle, ntuple('adaptiveAvgPool3d outputSize', size, 3, 1)));

// ------------------------------------------------------------------ normalisation
export function groupNorm(
  x: Tensor,
  numGroups: number,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const g = integer('groupNorm numGroups', numGroups, { min: 1 });
  return wrap(N.group_norm(x.handle, g, opt(weight), opt(bias), num('eps', eps, { min: 0 })));
}
export function layerNorm(
  x: Tensor,
  normalizedShape: number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const shape = intList('layerNorm normalizedShape', normalizedShape, 1);
  return wrap(N.layer_norm(x.handle, shape, opt(weight), opt(bias), num('eps', eps, { min: 0 })));
}
export interface InstanceNormOptions {
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  weight?: Tensor | null;
  bias?: Tensor | null;
  useInputStats?: boolean;
  momentum?: number;
  eps?: number;
}
export function instanceNorm(x: Tensor, o: InstanceNormOptions = {}): Tensor {
  return wrap(
    N.instance_norm(
      x.handle,
      opt(o.weight),
      opt(o.bias),
      opt(o.runningMean),
      opt(o.runningVar),
      bool('useInputStats', o.useInputStats ?? true),
      num('momentum', o.momentum ?? 0.1, { min: 0, max: 1 }),
      num('eps', o.eps ?? 1e-5, { min: 0 }),
    ),
  );
}
export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  o: BatchNormOptions = {},
): Tensor {
  return wrap(
    N.batch_norm(
      x.handle,
      opt(o.weight),
      opt(o.bias),
      opt(runningMean),
      opt(runningVar),
      bool('training', o.training ?? false),
      num('momentum', o.momentum ?? 0.1, { min: 0, max: 1 }),
      num('eps', o.eps ?? 1e-5, { min: 0 }),
    ),
  );
}

// ------------------------------------------------------------------ activations
export const relu = (x: Tensor): Tensor => x.relu();
export const silu = (x: Tensor): Tensor => x.silu();
export const tanh = (x: Tensor): Tensor => x.tanh();
export const sigmoid = (x: Tensor): Tensor => x.sigmoid();
export const softsign = (x: Tensor): Tensor => wrap(N.softsign(x.handle));
export const softplus = (x: Tensor): Tensor => wrap(N.softplus(x.handle));
export const mish = (x: Tensor): Tensor => wrap(N.mish(x.handle));
export const softmax = (x: Tensor, dim: number): Tensor => x.softmax(dim);
export const logSoftmax = (x: Tensor, dim: number): Tensor => x.logSoftmax(dim);
export function gelu(x: Tensor, o: { approximate?: 'none' | 'tanh' } = {}): Tensor {
  return wrap(
    N.gelu(
      x.handle,
      oneOf('gelu approximate', o.approximate ?? 'none', ['none', 'tanh'] as const) === 'tanh',
    ),
  );
}
export function leakyRelu(x: Tensor, negativeSlope = 0.01): Tensor {
  return wrap(N.leaky_relu(x.handle, num('negativeSlope', negativeSlope)));
}
export function elu(x: Tensor, alpha = 1): Tensor {
  return wrap(N.elu(x.handle, num('alpha', alpha)));
}
export function prelu(x: Tensor, weight: Tensor): Tensor {
  return wrap(N.prelu(x.handle, weight.handle));
}

/** Inverted dropout: zeroes elements with probability p and scales the rest by 1/(1−p) while training. */
export function dropout(x: Tensor, p = 0.5, o: { training?: boolean; generator?: Generator } = {}): Tensor {
  const prob = num('dropout p', p, { min: 0, max: 1 });
  if (!bool('training', o.training ?? true) || prob === 0) return x.alias();
  return wrap(N.dropout(x.handle, prob, genOf(o.generator)));
}

// ------------------------------------------------------------------ losses
export type Reduction = 'none' | 'mean' | 'sum';
const REDUCTIONS: readonly Reduction[] = ['none', 'mean', 'sum'];
const reduction = (r: Reduction | undefined): number =>
  REDUCTIONS.indexOf(oneOf('reduction', r ?? 'mean', REDUCTIONS));

export function mseLoss(a: Tensor, b: Tensor, o: { reduction?: Reduction } = {}): Tensor {
  return wrap(N.mse_loss(a.handle, b.handle, reduction(o.reduction)));
}
export function l1Loss(a: Tensor, b: Tensor, o: { reduction?: Reduction } = {}): Tensor {
  return wrap(N.l1_loss(a.handle, b.handle, reduction(o.reduction)));
}
export function smoothL1Loss(a: Tensor, b: Tensor, o: { reduction?: Reduction; beta?: number } = {}): Tensor {
  return wrap(
    N.smooth_l1_loss(a.handle, b.handle, reduction(o.reduction), num('beta', o.beta ?? 1, { min: 0 })),
  );
}
/** Cross-entropy of logits (N, C, ...) against class indices (N, ...) or class probabilities. */
export function crossEntropy(
  logits: Tensor,
  target: Tensor,
  o: { weight?: Tensor; reduction?: Reduction; ignoreIndex?: number; labelSmoothing?: number } = {},
): Tensor {
  return wrap(
    N.cross_entropy(
      logits.handle,
      target.handle,
      opt(o.weight),
      reduction(o.reduction),
      integer('ignoreIndex', o.ignoreIndex ?? -100),
      num('labelSmoothing', o.labelSmoothing ?? 0, { min: 0, max: 1 }),
    ),
  );
}
export function binaryCrossEntropyWithLogits(
  logits: Tensor,
  target: Tensor,
  o: { weight?: Tensor; posWeight?: Tensor; reduction?: Reduction } = {},
): Tensor {
  return wrap(
    N.bce_with_logits(logits.handle, target.handle, opt(o.weight), opt(o.posWeight), reduction(o.reduction)),
  );
}

export function oneHot(x: Tensor, numClasses = -1): Tensor {
  return wrap(N.one_hot(x.handle, integer('numClasses', numClasses, { min: -1 })));
}

// ------------------------------------------------------------------ streaming normalisation
/** silu(x·scale + shift) with per-channel scale and shift (C values each), as a new float32 tensor. */
export function channelAffineSilu(x: Tensor, scale: Tensor, shift: Tensor): Tensor {
  if (x.ndim !== 5 || x.shape[0] !== 1)
    throw invalid('channelAffineSilu input', 'a (1, C, n, H, D) tensor', x.toString());
  return wrap(N.channel_affine_silu(x.handle, scale.handle, shift.handle));
}

/**
 * Writes y (+ residual) into `out` (a float32/float16 view of a stored activation) and returns the
 * per-channel sum and sum of squares of the stored values, (C, 2) float64 — a layer's output and the
 * next GroupNorm's statistics in one pass. `residual` (float32 or float16) may be a view of `out` itself.
 */
export function storeRows(out: Tensor, y: Tensor, residual?: Tensor): Tensor {
  if (out.ndim !== 5 || out.shape[0] !== 1)
    throw invalid('storeRows output', 'a (1, C, n, H, D) tensor', out.toString());
  return wrap(N.store_rows(out.handle, y.handle, residual ? residual.handle : null));
}
