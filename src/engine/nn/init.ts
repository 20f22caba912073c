/** Weight initialisation (torch.nn.init): in place, without autograd, optionally from a Generator. */
import { invalid, number as num, oneOf } from '../../util/is.ts';
import { noGrad } from '../autograd.ts';
import { tidy } from '../scope.ts';
import { tensor, type Generator, type Tensor } from '../tensor.ts';

export type Nonlinearity =
  'linear' | 'conv1d' | 'conv2d' | 'conv3d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu';
const NONLINEARITIES: readonly Nonlinearity[] = [
  'linear',
  'conv1d',
  'conv2d',
  'conv3d',
  'sigmoid',
  'tanh',
  'relu',
  'leaky_relu',
  'selu',
];

/** torch.nn.init.calculate_gain */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (oneOf('nonlinearity', nonlinearity, NONLINEARITIES)) {
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param === undefined ? 0.01 : num('negative slope', param);
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu':
      return 3 / 4;
    default:
      return 1;
  }
}

/** (fan in, fan out) of a weight laid out as PyTorch's: (out, in, kernel...) or, transposed, (in, out, ...). */
export function fanInAndOut(t: Tensor): [number, number] {
  const s = t.shape;
  if (s.length < 2) throw invalid('weight', 'a tensor with at least 2 dimensions', `shape [${s.join(', ')}]`);
  const receptive = s.slice(2).reduce((a, b) => a * b, 1);
  return [s[1] * receptive, s[0] * receptive];
}

export interface KaimingOptions {
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
  generator?: Generator;
}

function kaimingStd(t: Tensor, o: KaimingOptions): number {
  const [fanIn, fanOut] = fanInAndOut(t);
  const mode = oneOf('mode', o.mode ?? 'fan_in', ['fan_in', 'fan_out'] as const);
  const gain = calculateGain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0);
  return gain / Math.sqrt(mode === 'fan_in' ? fanIn : fanOut);
}

export function uniform_(t: Tensor, low = 0, high = 1, generator?: Generator): Tensor {
  return noGrad(() => t.uniform_(low, high, generator));
}
export function normal_(t: Tensor, mean = 0, std = 1, generator?: Generator): Tensor {
  return noGrad(() => t.normal_(mean, std, generator));
}
export function constant_(t: Tensor, value: number): Tensor {
  return noGrad(() => t.fill_(num('value', value)));
}
export const zeros_ = (t: Tensor): Tensor => constant_(t, 0);
export const ones_ = (t: Tensor): Tensor => constant_(t, 1);

export function kaimingUniform_(t: Tensor, o: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, o);
  return uniform_(t, -bound, bound, o.generator);
}
export function kaimingNormal_(t: Tensor, o: KaimingOptions = {}): Tensor {
  return normal_(t, 0, kaimingStd(t, o), o.generator);
}
export function xavierUniform_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const [fanIn, fanOut] = fanInAndOut(t);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, generator);
}
export function xavierNormal_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const [fanIn, fanOut] = fanInAndOut(t);
  return normal_(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)), generator);
}

/** Φ(x), computed by libtorch's erf in double precision. */
function normCdf(x: number): number {
  return (
    0.5 +
    0.5 *
      tidy(() =>
        tensor(x / Math.SQRT2, { dtype: 'float64' })
          .erf()
          .item(),
      )
  );
}

/**
 * Normal(mean, std) truncated to [a, b] (torch.nn.init.trunc_normal_, used for Swin's relative-position
 * tables): uniform samples mapped through the inverse normal CDF.
 */
export function truncNormal_(
  t: Tensor,
  o: { mean?: number; std?: number; a?: number; b?: number; generator?: Generator } = {},
): Tensor {
  const mean = num('mean', o.mean ?? 0);
  const std = num('std', o.std ?? 1, { min: 0 });
  const a = o.a ?? -2;
  const b = o.b ?? 2;
  if (!(a < b)) throw invalid('truncNormal bounds', 'a < b', [a, b]);
  const l = normCdf((a - mean) / std);
  const u = normCdf((b - mean) / std);
  return noGrad(() => {
    t.uniform_(2 * l - 1, 2 * u - 1, o.generator);
    const z = t.erfinv();
    t.copy_(z);
    z.dispose();
    return t
      .mul_(std * Math.SQRT2)
      .add_(mean)
      .clamp_(a, b);
  });
}
