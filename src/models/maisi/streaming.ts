/**
 * Encoding large volumes with MAISI's autoencoder in bounded memory. At full resolution one activation
 * of the full-size encoder (64 channels × 512×512×128 voxels) is 8.6 GB in float32, so the plain
 * layer-by-layer forward cannot run on a 24 GB machine. Here every full-resolution layer is evaluated
 * slab by slab along the first spatial axis (convolutions read a halo of neighbouring rows, so the
 * result is the same as the whole-volume convolution), GroupNorm statistics are accumulated over the
 * slabs in float64 before the layer that needs them, residual blocks write their output in place, and
 * activations between layers are stored in float16 when float32 would not fit — the precision MAISI
 * itself runs its autoencoder at on GPUs (norm_float16 with autocast).
 */
import { F, empty, nn, noGrad, tensor, tidy, type DType, type Tensor } from '../../engine/index.ts';
import { integer, oneOf } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { AutoencoderKlMaisi, MaisiConvolution, MaisiDownsample, MaisiResBlock, type LatentDistribution } from './autoencoder.ts';

export interface StreamingOptions {
  /** Output rows (first spatial axis) computed per step (default 8). */
  slab?: number;
  /** Storage of full-resolution activations between layers (default: float32 when it fits `budgetBytes`). */
  storage?: 'float32' | 'float16' | 'auto';
  /** Memory the activations may use (default 6 GB); decides the automatic storage type. */
  budgetBytes?: number;
  progress?: ProgressFn;
}

interface Stats {
  mean: Tensor;
  invStd: Tensor;
}

/** GroupNorm statistics of a stored (1, C, W, H, D) tensor, accumulated over slabs in float64. */
function groupStats(x: Tensor, groups: number, eps: number, slab: number): Stats {
  return tidy(() => {
    const [, c, w] = x.shape;
    let sum = tensor(new Array<number>(groups).fill(0), { dtype: 'float64' });
    let squares = tensor(new Array<number>(groups).fill(0), { dtype: 'float64' });
    for (let start = 0; start < w; start += slab) {
      // One scope per slab: the float64 copies of all slabs together would be twice the activation.
      const next = tidy(() => {
        const rows = x.narrow(2, start, Math.min(slab, w - start)).double().reshape(groups, -1);
        return [sum.add(rows.sum(1)), squares.add(rows.square().sum(1))];
      });
      sum.dispose();
      squares.dispose();
      [sum, squares] = next;
    }
    const count = x.numel / groups;
    const mean = sum.div(count);
    const variance = squares.div(count).sub(mean.square()).clamp(0);
    const perChannel = (t: Tensor) => t.reshape(groups, 1).expand(groups, c / groups).reshape(1, c, 1, 1, 1).float();
    return { mean: perChannel(mean), invStd: perChannel(variance.add(eps).rsqrt()) };
  });
}

/** Normalisation (with the layer's affine) and SiLU on a float32 slab, with precomputed statistics. */
function normSilu(rows: Tensor, norm: nn.GroupNorm, stats: Stats): Tensor {
  return tidy(() => {
    const c = rows.shape[1];
    let y = rows.sub(stats.mean).mul(stats.invStd);
    if (norm.weight && norm.bias) y = y.mul(norm.weight.reshape(1, c, 1, 1, 1)).add(norm.bias.reshape(1, c, 1, 1, 1));
    return y.silu();
  });
}

interface ConvSpec {
  conv: nn.Conv3d;
  /** Zero padding before and after the first axis, and symmetric (or end-only) padding of the others. */
  padBefore: number;
  padAfter: number;
  /** F.pad list for the two other axes (last axis first), applied to each slab. */
  otherPads: number[];
}

function specOf(layer: MaisiConvolution | MaisiDownsample): ConvSpec {
  if (layer instanceof MaisiDownsample) {
    // MAISI's downsampler: one zero at the end of each axis, stride-2 convolution without padding.
    return { conv: layer.conv.conv.conv, padBefore: 0, padAfter: 1, otherPads: [0, 1, 0, 1] };
  }
  const conv = layer.conv.conv;
  const p = (conv.padding as number[])[0];
  return { conv, padBefore: p, padAfter: p, otherPads: [p, p, p, p] };
}

/**
 * out[rows] = conv(prologue(input[needed rows])) (+ residual(rows)), slab by slab. `input` and `out`
 * are (1, C, W, H, D) stored tensors; `out` may be `input` only for 1×1×1 convolutions.
 */
function streamConv(
  input: Tensor,
  spec: ConvSpec,
  out: Tensor,
  slab: number,
  prologue: (rows: Tensor) => Tensor,
  residual?: (start: number, length: number) => Tensor,
): void {
  const w = input.shape[2];
  const outW = out.shape[2];
  const k = spec.conv.weight.shape[2];
  const s = spec.conv.stride[0];
  for (let o0 = 0; o0 < outW; o0 += slab) {
    const n = Math.min(slab, outW - o0);
    tidy(() => {
      const first = o0 * s - spec.padBefore;
      const last = (o0 + n - 1) * s - spec.padBefore + k; // exclusive
      const lo = Math.max(0, first);
      const hi = Math.min(w, last);
      let rows = prologue(input.narrow(2, lo, hi - lo).float());
      rows = F.pad(rows, [...spec.otherPads, lo - first, last - hi]);
      let y = F.conv3d(rows, spec.conv.weight, spec.conv.bias, { stride: spec.conv.stride, padding: 0 });
      if (residual) y = y.add(residual(o0, n));
      out.narrow(2, o0, n).copy_(y);
    });
  }
}

const identity = (x: Tensor) => x;

/** Spatial output size of a streamed convolution. */
function outputSize(size: readonly number[], spec: ConvSpec): number[] {
  const k = spec.conv.weight.shape[2];
  // otherPads lists the last axis first: [axis 2 before, after, axis 1 before, after].
  const pads = [spec.padBefore + spec.padAfter, spec.otherPads[2] + spec.otherPads[3], spec.otherPads[0] + spec.otherPads[1]];
  return size.map((n, a) => Math.floor((n + pads[a] - k) / spec.conv.stride[a]) + 1);
}

/** Activation elements above which `encodeImage` streams (400 MB of float32 at the widest level; a whole-volume encode of 256×256×128 with 64 channels exceeded 24 GB here). */
const STREAM_ABOVE = 1e8;

/** `vae.encode`, or the streaming encoder when the full-resolution activations would be large. */
export function encodeImage(vae: AutoencoderKlMaisi, x: Tensor, options: StreamingOptions = {}): LatentDistribution {
  return vae.config.numChannels[0] * x.numel > STREAM_ABOVE ? encodeStreaming(vae, x, options) : vae.encode(x);
}

/** A residual block on a stored input; returns the stored output (the input itself when widths agree). */
function streamResBlock(block: MaisiResBlock, h: Tensor, slab: number, storage: DType): Tensor {
  const [, , w, hh, d] = h.shape;
  const cOut = block.conv1.conv.conv.weight.shape[0];
  const stats1 = groupStats(h, block.norm1.numGroups, block.norm1.eps, slab);
  const a = empty([1, cOut, w, hh, d], { dtype: storage });
  streamConv(h, specOf(block.conv1), a, slab, (rows) => normSilu(rows, block.norm1, stats1));
  const stats2 = groupStats(a, block.norm2.numGroups, block.norm2.eps, slab);
  const shortcut = block.ninShortcut;
  const out = shortcut ? empty([1, cOut, w, hh, d], { dtype: storage }) : h;
  streamConv(a, specOf(block.conv2), out, slab, (rows) => normSilu(rows, block.norm2, stats2), (start, n) => {
    const rows = h.narrow(2, start, n).float();
    return shortcut ? F.conv3d(rows, shortcut.conv.conv.weight, shortcut.conv.conv.bias) : rows;
  });
  a.dispose();
  for (const t of [stats1.mean, stats1.invStd, stats2.mean, stats2.invStd]) t.dispose();
  return out;
}

/**
 * The latent distribution of a large image, evaluated in slabs (the same result as
 * `AutoencoderKlMaisi.encode` up to float rounding, or float16 storage when chosen).
 */
export function encodeStreaming(vae: AutoencoderKlMaisi, x: Tensor, options: StreamingOptions = {}): LatentDistribution {
  const slab = integer('slab', options.slab ?? 8, { min: 1 });
  const mode = oneOf('storage', options.storage ?? 'auto', ['float32', 'float16', 'auto'] as const);
  const budget = options.budgetBytes ?? 6e9;
  const widest = vae.config.numChannels[0] * x.numel;
  // Two full-resolution activations live at once inside a residual block.
  const storage: DType = mode === 'auto' ? (2 * 4 * widest <= budget ? 'float32' : 'float16') : mode;
  const blocks = [...vae.encoder.blocks];
  return noGrad(() => {
    let h = x.to(storage);
    blocks.forEach((block, i) => {
      options.progress?.({ stage: 'autoencoder encode (streaming)', done: i, total: blocks.length });
      if (block instanceof MaisiConvolution || block instanceof MaisiDownsample) {
        const spec = specOf(block);
        const out = empty([1, spec.conv.weight.shape[0], ...outputSize(h.shape.slice(2), spec)], { dtype: storage });
        streamConv(h, spec, out, slab, identity);
        h.dispose();
        h = out;
      } else if (block instanceof MaisiResBlock) {
        const out = streamResBlock(block, h, slab, storage);
        if (out !== h) h.dispose();
        h = out;
      } else {
        // The final GroupNorm (no activation): at the latent resolution, small enough to run whole.
        const norm = block as nn.GroupNorm;
        const next = tidy(() => norm.forward(h.float()).to(storage));
        h.dispose();
        h = next;
      }
    });
    options.progress?.({ stage: 'autoencoder encode (streaming)', done: blocks.length, total: blocks.length });
    const result = tidy(() => {
      const z = h.float();
      return {
        mu: vae.quantConvMu.forward(z),
        sigma: vae.quantConvLogSigma.forward(z).clamp(-30, 20).div(2).exp(),
      };
    });
    h.dispose();
    return result;
  });
}
