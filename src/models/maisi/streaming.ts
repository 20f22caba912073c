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
import { F, Tensor, empty, nn, noGrad, tidy, type DType } from '../../engine/index.ts';
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

/** A GroupNorm with its statistics folded in: y = x·scale + shift per channel, (1, C, 1, 1, 1) each. */
interface FoldedNorm {
  scale: Tensor;
  shift: Tensor;
}

/**
 * GroupNorm of a stored (1, C, W, H, D) tensor as a per-channel affine map. Each slab contributes its
 * group means and variances (single-pass float32 reductions); they are merged in float64 with the
 * pairwise update of Chan et al., so no float64 copy of the activation is ever made.
 */
function foldedGroupNorm(x: Tensor, norm: nn.GroupNorm, slab: number): FoldedNorm {
  const [, c, w, h, d] = x.shape;
  const groups = norm.numGroups;
  const mean = new Float64Array(groups);
  const m2 = new Float64Array(groups);
  let count = 0;
  for (let start = 0; start < w; start += slab) {
    const rows = Math.min(slab, w - start);
    const [slabMean, slabVariance] = tidy(() => {
      const r = x.narrow(2, start, rows).float().reshape(groups, -1);
      return [r.mean(1).toTypedArray() as Float32Array, r.var(1, { unbiased: false }).toTypedArray() as Float32Array];
    });
    const n = (c / groups) * rows * h * d;
    const total = count + n;
    for (let g = 0; g < groups; g++) {
      const delta = slabMean[g] - mean[g];
      mean[g] += (delta * n) / total;
      m2[g] += slabVariance[g] * n + (delta * delta * count * n) / total;
    }
    count = total;
  }
  const [weight, bias] = tidy(() =>
    [norm.weight, norm.bias].map((t) => (t ? (t.float().toTypedArray() as Float32Array) : undefined)),
  );
  const scale = new Float32Array(c);
  const shift = new Float32Array(c);
  for (let ch = 0; ch < c; ch++) {
    const g = Math.floor(ch / (c / groups));
    const s = (weight ? weight[ch] : 1) / Math.sqrt(m2[g] / count + norm.eps);
    scale[ch] = s;
    shift[ch] = (bias ? bias[ch] : 0) - mean[g] * s;
  }
  return { scale: Tensor.fromArray(scale, [1, c, 1, 1, 1]), shift: Tensor.fromArray(shift, [1, c, 1, 1, 1]) };
}

/** Normalisation (statistics and affine folded) and SiLU on a float32 slab. */
function normSilu(rows: Tensor, norm: FoldedNorm): Tensor {
  return tidy(() => rows.mul(norm.scale).add(norm.shift).silu());
}

interface ConvSpec {
  conv: nn.Conv3d;
  /** Zero padding before and after the first axis (the slab axis). */
  padBefore: number;
  padAfter: number;
  /**
   * Padding of the two other axes: symmetric ones go to the convolution itself (no copy of the slab);
   * MAISI's end-only padding of the downsampler needs an explicit F.pad (last axis first).
   */
  convPadding: number;
  otherPads: number[] | null;
}

function specOf(layer: MaisiConvolution | MaisiDownsample): ConvSpec {
  if (layer instanceof MaisiDownsample) {
    // MAISI's downsampler: one zero at the end of each axis, stride-2 convolution without padding.
    return { conv: layer.conv.conv.conv, padBefore: 0, padAfter: 1, convPadding: 0, otherPads: [0, 1, 0, 1] };
  }
  const conv = layer.conv.conv;
  const p = (conv.padding as number[])[0];
  return { conv, padBefore: p, padAfter: p, convPadding: p, otherPads: null };
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
      if (spec.otherPads || lo > first || last > hi) rows = F.pad(rows, [...(spec.otherPads ?? [0, 0, 0, 0]), lo - first, last - hi]);
      const p = spec.convPadding;
      let y = F.conv3d(rows, spec.conv.weight, spec.conv.bias, { stride: spec.conv.stride, padding: [0, p, p] });
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
  const other = spec.otherPads ?? [0, 0, 0, 0];
  const pads = [spec.padBefore + spec.padAfter, 2 * spec.convPadding + other[2] + other[3], 2 * spec.convPadding + other[0] + other[1]];
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
  const norm1 = foldedGroupNorm(h, block.norm1, slab);
  const a = empty([1, cOut, w, hh, d], { dtype: storage });
  streamConv(h, specOf(block.conv1), a, slab, (rows) => normSilu(rows, norm1));
  const norm2 = foldedGroupNorm(a, block.norm2, slab);
  const shortcut = block.ninShortcut;
  const out = shortcut ? empty([1, cOut, w, hh, d], { dtype: storage }) : h;
  streamConv(a, specOf(block.conv2), out, slab, (rows) => normSilu(rows, norm2), (start, n) => {
    const rows = h.narrow(2, start, n).float();
    return shortcut ? F.conv3d(rows, shortcut.conv.conv.weight, shortcut.conv.conv.bias) : rows;
  });
  a.dispose();
  for (const t of [norm1.scale, norm1.shift, norm2.scale, norm2.shift]) t.dispose();
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
