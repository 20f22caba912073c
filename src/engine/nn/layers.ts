/**
 * Standard layers with PyTorch's parameter names, shapes and default initialisation, so that PyTorch and
 * MONAI state dicts load unchanged. Random initialisation uses the default generator (manualSeed) or
 * the `generator` option.
 */
import { bool, integer, invalid, number as num, oneOf } from '../../util/is.ts';
import { intList, ntuple } from '../check.ts';
import type { DType } from '../dtype.ts';
import * as F from '../functional.ts';
import { noGrad } from '../autograd.ts';
import { Tensor, empty, ones, tensor, zeros, type Generator } from '../tensor.ts';
import { fanInAndOut, kaimingUniform_, uniform_ } from './init.ts';
import { Module, type Layer } from './module.ts';

export interface ParamOptions {
  dtype?: DType;
  generator?: Generator;
}

/** PyTorch's default for Linear and conv layers: kaiming_uniform_(a=√5) weights, U(±1/√fan_in) biases. */
function resetLinearLike(weight: Tensor, bias: Tensor | null, generator?: Generator): void {
  kaimingUniform_(weight, { a: Math.sqrt(5), generator });
  if (bias !== null) {
    const [fanIn] = fanInAndOut(weight);
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniform_(bias, -bound, bound, generator);
  }
}

export class Linear extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, opts: ParamOptions & { bias?: boolean } = {}) {
    super();
    const i = integer('Linear inFeatures', inFeatures, { min: 0 });
    const o = integer('Linear outFeatures', outFeatures, { min: 0 });
    const dtype = opts.dtype ?? 'float32';
    this.weight = this.registerParameter('weight', empty([o, i], { dtype }));
    this.bias = this.registerParameter(
      'bias',
      bool('bias', opts.bias ?? true) ? empty([o], { dtype }) : null,
    );
    resetLinearLike(this.weight, this.bias, opts.generator);
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export type PaddingMode = 'zeros' | 'reflect' | 'replicate' | 'circular';

export interface ConvLayerOptions extends ParamOptions {
  stride?: number | number[];
  padding?: number | number[] | 'same' | 'valid';
  dilation?: number | number[];
  groups?: number;
  bias?: boolean;
  paddingMode?: PaddingMode;
}

/** Validated channel/kernel options and freshly initialised weight and bias of a (transposed) convolution. */
function convParameters(
  m: Module,
  name: string,
  nd: number,
  inChannels: number,
  outChannels: number,
  kernelSize: number | number[],
  opts: ParamOptions & {
    stride?: number | number[];
    dilation?: number | number[];
    groups?: number;
    bias?: boolean;
  },
  transposed: boolean,
): { weight: Tensor; bias: Tensor | null; groups: number; stride: number[]; dilation: number[] } {
  const cin = integer(`${name} inChannels`, inChannels, { min: 1 });
  const cout = integer(`${name} outChannels`, outChannels, { min: 1 });
  const k = ntuple(`${name} kernelSize`, kernelSize, nd, 1);
  const groups = integer(`${name} groups`, opts.groups ?? 1, { min: 1 });
  if (cin % groups !== 0 || cout % groups !== 0) {
    throw invalid(`${name} groups`, `a divisor of inChannels ${cin} and outChannels ${cout}`, groups);
  }
  const dtype = opts.dtype ?? 'float32';
  // PyTorch's layouts: (out, in/groups, k...) and, transposed, (in, out/groups, k...).
  const shape = transposed ? [cin, cout / groups, ...k] : [cout, cin / groups, ...k];
  const weight = m.registerParameter('weight', empty(shape, { dtype }));
  const bias = m.registerParameter('bias', bool('bias', opts.bias ?? true) ? empty([cout], { dtype }) : null);
  resetLinearLike(weight, bias, opts.generator);
  return {
    weight,
    bias,
    groups,
    stride: ntuple(`${name} stride`, opts.stride ?? 1, nd, 1),
    dilation: ntuple(`${name} dilation`, opts.dilation ?? 1, nd, 1),
  };
}

abstract class ConvNd extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: number[];
  readonly padding: number[] | 'same' | 'valid';
  readonly dilation: number[];
  readonly groups: number;
  readonly paddingMode: PaddingMode;
  readonly #nd: number;
  readonly #conv: ConvFn<F.ConvOptions>;

  constructor(
    nd: number,
    conv: ConvFn<F.ConvOptions>,
    name: string,
    inChannels: number,
    outChannels: number,
    kernelSize: number | number[],
    opts: ConvLayerOptions,
  ) {
    super();
    this.#nd = nd;
    this.#conv = conv;
    ({
      weight: this.weight,
      bias: this.bias,
      groups: this.groups,
      stride: this.stride,
      dilation: this.dilation,
    } = convParameters(this, name, nd, inChannels, outChannels, kernelSize, opts, false));
    const p = opts.padding ?? 0;
    this.padding = p === 'same' || p === 'valid' ? p : ntuple(`${name} padding`, p, nd);
    this.paddingMode = oneOf(`${name} paddingMode`, opts.paddingMode ?? 'zeros', [
      'zeros',
      'reflect',
      'replicate',
      'circular',
    ] as const);
    if (this.paddingMode !== 'zeros' && typeof this.padding === 'string') {
      throw invalid(`${name} padding`, `numbers with paddingMode ${this.paddingMode}`, this.padding);
    }
  }

  forward(x: Tensor): Tensor {
    const o = { stride: this.stride, dilation: this.dilation, groups: this.groups };
    if (this.paddingMode === 'zeros')
      return this.#conv(x, this.weight, this.bias, { ...o, padding: this.padding });
    // Non-zero padding modes pad explicitly first, as PyTorch does.
    const per = this.padding as number[];
    const pads: number[] = [];
    for (let i = this.#nd - 1; i >= 0; i--) pads.push(per[i], per[i]);
    const padded = F.pad(x, pads, { mode: this.paddingMode });
    try {
      return this.#conv(padded, this.weight, this.bias, { ...o, padding: 0 });
    } finally {
      padded.dispose();
    }
  }
}

type ConvFn<O> = (x: Tensor, w: Tensor, b: Tensor | null, o: O) => Tensor;

/** A concrete layer class per dimension, named like PyTorch's (error messages use the name). */
function named<C extends abstract new (...args: never[]) => unknown>(cls: C, name: string): C {
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

const convLayer = (nd: number, conv: ConvFn<F.ConvOptions>, name: string) =>
  named(
    class extends ConvNd {
      constructor(
        inChannels: number,
        outChannels: number,
        kernelSize: number | number[],
        opts: ConvLayerOptions = {},
      ) {
        super(nd, conv, name, inChannels, outChannels, kernelSize, opts);
      }
    },
    name,
  );

/** Conv1d/2d/3d(inChannels, outChannels, kernelSize, { stride, padding, dilation, groups, bias, paddingMode }). */
export const Conv1d = convLayer(1, F.conv1d, 'Conv1d');
export type Conv1d = InstanceType<typeof Conv1d>;
export const Conv2d = convLayer(2, F.conv2d, 'Conv2d');
export type Conv2d = InstanceType<typeof Conv2d>;
export const Conv3d = convLayer(3, F.conv3d, 'Conv3d');
export type Conv3d = InstanceType<typeof Conv3d>;

export interface ConvTransposeLayerOptions extends ParamOptions {
  stride?: number | number[];
  padding?: number | number[];
  outputPadding?: number | number[];
  dilation?: number | number[];
  groups?: number;
  bias?: boolean;
}

abstract class ConvTransposeNd extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly options: Required<Omit<ConvTransposeLayerOptions, keyof ParamOptions | 'bias'>>;
  readonly #conv: ConvFn<F.ConvTransposeOptions>;

  constructor(
    nd: number,
    conv: ConvFn<F.ConvTransposeOptions>,
    name: string,
    inChannels: number,
    outChannels: number,
    kernelSize: number | number[],
    opts: ConvTransposeLayerOptions,
  ) {
    super();
    this.#conv = conv;
    const c = convParameters(this, name, nd, inChannels, outChannels, kernelSize, opts, true);
    this.weight = c.weight;
    this.bias = c.bias;
    this.options = {
      stride: c.stride,
      padding: ntuple(`${name} padding`, opts.padding ?? 0, nd),
      outputPadding: ntuple(`${name} outputPadding`, opts.outputPadding ?? 0, nd),
      dilation: c.dilation,
      groups: c.groups,
    };
  }

  forward(x: Tensor): Tensor {
    return this.#conv(x, this.weight, this.bias, this.options);
  }
}

const convTransposeLayer = (nd: number, conv: ConvFn<F.ConvTransposeOptions>, name: string) =>
  named(
    class extends ConvTransposeNd {
      constructor(
        inChannels: number,
        outChannels: number,
        kernelSize: number | number[],
        opts: ConvTransposeLayerOptions = {},
      ) {
        super(nd, conv, name, inChannels, outChannels, kernelSize, opts);
      }
    },
    name,
  );

/** ConvTranspose1d/2d/3d(inChannels, outChannels, kernelSize, { stride, padding, outputPadding, ... }). */
export const ConvTranspose1d = convTransposeLayer(1, F.convTranspose1d, 'ConvTranspose1d');
export type ConvTranspose1d = InstanceType<typeof ConvTranspose1d>;
export const ConvTranspose2d = convTransposeLayer(2, F.convTranspose2d, 'ConvTranspose2d');
export type ConvTranspose2d = InstanceType<typeof ConvTranspose2d>;
export const ConvTranspose3d = convTransposeLayer(3, F.convTranspose3d, 'ConvTranspose3d');
export type ConvTranspose3d = InstanceType<typeof ConvTranspose3d>;

/** Affine parameters of the norm layers: weight ones, bias zeros (or null when not affine). */
function affine(
  m: Module,
  shape: number[],
  on: boolean,
  dtype: DType = 'float32',
  withBias = true,
): [Tensor | null, Tensor | null] {
  if (!on) return [m.registerParameter('weight', null), m.registerParameter('bias', null)];
  return [
    m.registerParameter('weight', ones(shape, { dtype })),
    m.registerParameter('bias', withBias ? zeros(shape, { dtype }) : null),
  ];
}

export class GroupNorm extends Module implements Layer {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly numGroups: number;
  readonly eps: number;

  constructor(
    numGroups: number,
    numChannels: number,
    opts: { eps?: number; affine?: boolean; dtype?: DType } = {},
  ) {
    super();
    this.numGroups = integer('GroupNorm numGroups', numGroups, { min: 1 });
    const c = integer('GroupNorm numChannels', numChannels, { min: 1 });
    if (c % this.numGroups !== 0)
      throw invalid('GroupNorm numGroups', `a divisor of numChannels ${c}`, numGroups);
    this.eps = num('GroupNorm eps', opts.eps ?? 1e-5, { min: 0 });
    [this.weight, this.bias] = affine(this, [c], bool('affine', opts.affine ?? true), opts.dtype);
  }

  forward(x: Tensor): Tensor {
    return F.groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

export class LayerNorm extends Module implements Layer {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly normalizedShape: number[];
  readonly eps: number;

  constructor(
    normalizedShape: number | number[],
    opts: { eps?: number; elementwiseAffine?: boolean; bias?: boolean; dtype?: DType } = {},
  ) {
    super();
    const s = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
    this.normalizedShape = intList('LayerNorm normalizedShape', s, 1);
    this.eps = num('LayerNorm eps', opts.eps ?? 1e-5, { min: 0 });
    const on = bool('elementwiseAffine', opts.elementwiseAffine ?? true);
    [this.weight, this.bias] = affine(
      this,
      this.normalizedShape,
      on,
      opts.dtype,
      bool('bias', opts.bias ?? true),
    );
  }

  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

export interface RunningStatsOptions {
  eps?: number;
  momentum?: number;
  affine?: boolean;
  trackRunningStats?: boolean;
  dtype?: DType;
}

/** Shared by instance and batch norm: affine parameters, then running_mean, running_var, num_batches_tracked. */
abstract class RunningStatsNorm extends Module implements Layer {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor | null;
  readonly runningVar: Tensor | null;
  readonly numBatchesTracked: Tensor | null;
  readonly eps: number;
  readonly momentum: number;
  readonly #nd: number;
  readonly #name: string;

  constructor(
    name: string,
    nd: number,
    numFeatures: number,
    opts: RunningStatsOptions,
    defaults: [boolean, boolean],
  ) {
    super();
    this.#nd = nd;
    this.#name = name;
    const c = integer(`${name} numFeatures`, numFeatures, { min: 1 });
    this.eps = num(`${name} eps`, opts.eps ?? 1e-5, { min: 0 });
    this.momentum = num(`${name} momentum`, opts.momentum ?? 0.1, { min: 0, max: 1 });
    const dtype = opts.dtype ?? 'float32';
    [this.weight, this.bias] = affine(this, [c], bool('affine', opts.affine ?? defaults[0]), dtype);
    const track = bool('trackRunningStats', opts.trackRunningStats ?? defaults[1]);
    this.runningMean = this.registerBuffer('running_mean', track ? zeros([c], { dtype }) : null);
    this.runningVar = this.registerBuffer('running_var', track ? ones([c], { dtype }) : null);
    this.numBatchesTracked = this.registerBuffer(
      'num_batches_tracked',
      track ? tensor(0, { dtype: 'int64' }) : null,
    );
  }

  protected checkInput(x: Tensor): void {
    const want = this.#nd + 2;
    if (x.ndim !== want && x.ndim !== want - 1) {
      throw invalid(`${this.#name} input`, `a ${want}-D or ${want - 1}-D tensor`, x.toString());
    }
  }

  protected countBatch(): void {
    if (this.training && this.numBatchesTracked !== null) noGrad(() => this.numBatchesTracked!.add_(1));
  }

  abstract forward(x: Tensor): Tensor;
}

/** Instance normalisation; PyTorch's defaults: affine false, trackRunningStats false. */
class InstanceNormNd extends RunningStatsNorm {
  forward(x: Tensor): Tensor {
    this.checkInput(x);
    this.countBatch();
    return F.instanceNorm(x, {
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      weight: this.weight,
      bias: this.bias,
      useInputStats: this.training || this.runningMean === null,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}
const instanceNorm = (nd: number, name: string) =>
  named(
    class extends InstanceNormNd {
      constructor(numFeatures: number, opts: RunningStatsOptions = {}) {
        super(name, nd, numFeatures, opts, [false, false]);
      }
    },
    name,
  );
export const InstanceNorm1d = instanceNorm(1, 'InstanceNorm1d');
export type InstanceNorm1d = InstanceType<typeof InstanceNorm1d>;
export const InstanceNorm2d = instanceNorm(2, 'InstanceNorm2d');
export type InstanceNorm2d = InstanceType<typeof InstanceNorm2d>;
export const InstanceNorm3d = instanceNorm(3, 'InstanceNorm3d');
export type InstanceNorm3d = InstanceType<typeof InstanceNorm3d>;

/** Batch normalisation; PyTorch's defaults: affine true, trackRunningStats true. */
class BatchNormNd extends RunningStatsNorm {
  forward(x: Tensor): Tensor {
    this.checkInput(x);
    this.countBatch();
    return F.batchNorm(x, this.runningMean, this.runningVar, {
      weight: this.weight,
      bias: this.bias,
      training: this.training || this.runningMean === null,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}
const batchNorm = (nd: number, name: string) =>
  named(
    class extends BatchNormNd {
      constructor(numFeatures: number, opts: RunningStatsOptions = {}) {
        super(name, nd, numFeatures, opts, [true, true]);
      }
    },
    name,
  );
export const BatchNorm1d = batchNorm(1, 'BatchNorm1d');
export type BatchNorm1d = InstanceType<typeof BatchNorm1d>;
export const BatchNorm2d = batchNorm(2, 'BatchNorm2d');
export type BatchNorm2d = InstanceType<typeof BatchNorm2d>;
export const BatchNorm3d = batchNorm(3, 'BatchNorm3d');
export type BatchNorm3d = InstanceType<typeof BatchNorm3d>;

// ------------------------------------------------------------------ parameter-free layers
export class Identity extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return x.alias();
  }
}
export class ReLU extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}
export class SiLU extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return x.silu();
  }
}
export class Tanh extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}
export class Sigmoid extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}
export class Softsign extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return F.softsign(x);
  }
}
export class Mish extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return F.mish(x);
  }
}
export class GELU extends Module implements Layer {
  readonly approximate: 'none' | 'tanh';
  constructor(opts: { approximate?: 'none' | 'tanh' } = {}) {
    super();
    this.approximate = oneOf('GELU approximate', opts.approximate ?? 'none', ['none', 'tanh'] as const);
  }
  forward(x: Tensor): Tensor {
    return F.gelu(x, { approximate: this.approximate });
  }
}
export class LeakyReLU extends Module implements Layer {
  readonly negativeSlope: number;
  constructor(negativeSlope = 0.01) {
    super();
    this.negativeSlope = num('LeakyReLU negativeSlope', negativeSlope);
  }
  forward(x: Tensor): Tensor {
    return F.leakyRelu(x, this.negativeSlope);
  }
}
export class ELU extends Module implements Layer {
  readonly alpha: number;
  constructor(alpha = 1) {
    super();
    this.alpha = num('ELU alpha', alpha);
  }
  forward(x: Tensor): Tensor {
    return F.elu(x, this.alpha);
  }
}
/** PReLU with `numParameters` learnable slopes (1, or one per channel), initialised to `init`. */
export class PReLU extends Module implements Layer {
  readonly weight: Tensor;
  constructor(numParameters = 1, init = 0.25, opts: { dtype?: DType } = {}) {
    super();
    const n = integer('PReLU numParameters', numParameters, { min: 1 });
    this.weight = this.registerParameter('weight', ones([n], opts).mul_(num('PReLU init', init)));
  }
  forward(x: Tensor): Tensor {
    return F.prelu(x, this.weight);
  }
}
export class Softmax extends Module implements Layer {
  readonly dim: number;
  constructor(dim: number) {
    super();
    this.dim = integer('Softmax dim', dim);
  }
  forward(x: Tensor): Tensor {
    return x.softmax(this.dim);
  }
}
/** Inverted dropout while training; the identity in eval mode. */
export class Dropout extends Module implements Layer {
  readonly p: number;
  readonly generator: Generator | undefined;
  constructor(p = 0.5, opts: { generator?: Generator } = {}) {
    super();
    this.p = num('Dropout p', p, { min: 0, max: 1 });
    this.generator = opts.generator;
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, { training: this.training, generator: this.generator });
  }
}
export class Flatten extends Module implements Layer {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}
export class Upsample extends Module implements Layer {
  readonly options: F.InterpolateOptions;
  constructor(opts: F.InterpolateOptions) {
    super();
    this.options = { ...opts };
  }
  forward(x: Tensor): Tensor {
    return F.interpolate(x, this.options);
  }
}
