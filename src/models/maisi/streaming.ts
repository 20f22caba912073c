/**
 * Encoding large volumes with MAISI's autoencoder in bounded memory. At full resolution one activation
 * of the full-size encoder (64 channels × 512×512×128 voxels) is 8.6 GB in float32, so the plain
 * layer-by-layer forward cannot run on a 24 GB machine. Here every full-resolution layer is evaluated
 * slab by slab along the first spatial axis (convolutions read a halo of neighbouring rows, so the
 * result is the same as the whole-volume convolution), the GroupNorm statistics of each activation are
 * gathered in float64 while its producing layer stores it (so normalisation costs no extra pass),
 * normalisation and SiLU are one fused pass per slab, residual blocks write their output in place, and
 * activations between layers are stored in float16 when float32 would not fit — the precision MAISI
 * itself runs its autoencoder at on GPUs (norm_float16 with autocast).
 */
import { F, Tensor, empty, nn, noGrad, tidy, type DType } from '../../engine/index.ts';
import { integer, oneOf } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';
import {
  AutoencoderKlMaisi,
  MaisiConvolution,
  MaisiDownsample,
  MaisiResBlock,
  type LatentDistribution,
} from './autoencoder.ts';

export interface StreamingOptions {
  /** Output rows (first spatial axis) computed per step (default 8). */
  slab?: number;
  /** Storage of full-resolution activations between layers (default: float32 when it fits `budgetBytes`). */
  storage?: 'float32' | 'float16' | 'auto';
  /** Memory the activations may use (default 6 GB); decides the automatic storage type. */
  budgetBytes?: number;
  progress?: ProgressFn;
}

/** A GroupNorm with its statistics folded in: y = x·scale + shift per channel, C values each. */
interface FoldedNorm {
  scale: Tensor;
  shift: Tensor;
}

/**
 * GroupNorm of a stored (1, C, W, H, D) activation as a per-channel affine map, from the per-channel
 * sums and sums of squares (float64, 2C values) its producing layer gathered while storing it.
 */
function foldedGroupNorm(sums: Float64Array, shape: readonly number[], norm: nn.GroupNorm): FoldedNorm {
  const [, c, w, h, d] = shape;
  const groups = norm.numGroups;
  const perGroup = c / groups;
  const count = perGroup * w * h * d;
  const [weight, bias] = tidy(() =>
    [norm.weight, norm.bias].map((t) => (t ? (t.float().toTypedArray() as Float32Array) : undefined)),
  );
  const scale = new Float32Array(c);
  const shift = new Float32Array(c);
  for (let g = 0; g < groups; g++) {
    let sum = 0;
    let squares = 0;
    for (let ch = g * perGroup; ch < (g + 1) * perGroup; ch++) {
      sum += sums[2 * ch];
      squares += sums[2 * ch + 1];
    }
    const mean = sum / count;
    const variance = Math.max(0, squares / count - mean * mean);
    for (let ch = g * perGroup; ch < (g + 1) * perGroup; ch++) {
      const s = (weight ? weight[ch] : 1) / Math.sqrt(variance + norm.eps);
      scale[ch] = s;
      shift[ch] = (bias ? bias[ch] : 0) - mean * s;
    }
  }
  return { scale: Tensor.fromArray(scale, [c]), shift: Tensor.fromArray(shift, [c]) };
}

/** Normalisation (statistics and affine folded) and SiLU on a stored slab, as float32. */
function normSilu(rows: Tensor, norm: FoldedNorm): Tensor {
  return F.channelAffineSilu(rows, norm.scale, norm.shift);
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
 * are (1, C, W, H, D) stored tensors; `out` may be `input` only for 1×1×1 convolutions. `prologue`
 * receives the stored rows (a view, float32 or float16) and returns float32. Returns the per-channel
 * sums and sums of squares of what was stored (for the next GroupNorm).
 */
function streamConv(
  input: Tensor,
  spec: ConvSpec,
  out: Tensor,
  slab: number,
  prologue: (rows: Tensor) => Tensor,
  residual?: (start: number, length: number) => Tensor,
): Float64Array {
  const w = input.shape[2];
  const sums = new Float64Array(2 * out.shape[1]);
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
      let rows = prologue(input.narrow(2, lo, hi - lo));
      if (spec.otherPads || lo > first || last > hi)
        rows = F.pad(rows, [...(spec.otherPads ?? [0, 0, 0, 0]), lo - first, last - hi]);
      const p = spec.convPadding;
      const y = F.conv3d(rows, spec.conv.weight, spec.conv.bias, {
        stride: spec.conv.stride,
        padding: [0, p, p],
      });
      const part = F.storeRows(out.narrow(2, o0, n), y, residual?.(o0, n)).toTypedArray() as Float64Array;
      part.forEach((v, i) => (sums[i] += v));
    });
  }
  return sums;
}

/** The stored rows as float32, for a convolution without a preceding normalisation. */
const asFloat = (x: Tensor) => x.float();

/** Spatial output size of a streamed convolution. */
function outputSize(size: readonly number[], spec: ConvSpec): number[] {
  const k = spec.conv.weight.shape[2];
  // otherPads lists the last axis first: [axis 2 before, after, axis 1 before, after].
  const other = spec.otherPads ?? [0, 0, 0, 0];
  const pads = [
    spec.padBefore + spec.padAfter,
    2 * spec.convPadding + other[2] + other[3],
    2 * spec.convPadding + other[0] + other[1],
  ];
  return size.map((n, a) => Math.floor((n + pads[a] - k) / spec.conv.stride[a]) + 1);
}

/** Activation elements above which `encodeImage` streams (400 MB of float32 at the widest level; a whole-volume encode of 256×256×128 with 64 channels exceeded 24 GB here). */
const STREAM_ABOVE = 1e8;

/** `vae.encode`, or the streaming encoder when the full-resolution activations would be large. */
export function encodeImage(
  vae: AutoencoderKlMaisi,
  x: Tensor,
  options: StreamingOptions = {},
): LatentDistribution {
  return vae.config.numChannels[0] * x.numel > STREAM_ABOVE
    ? encodeStreaming(vae, x, options)
    : vae.encode(x);
}

/** A stored activation and its per-channel sums and sums of squares (see `streamConv`). */
interface Stored {
  h: Tensor;
  sums: Float64Array;
}

/**
 * The intermediate activation of residual blocks, kept from one block to the next of the same level: a
 * fresh gigabyte costs ~0.3 s to fault in here, and nothing else is allocated between the two uses.
 */
class Scratch {
  private held: Tensor | undefined;
  constructor(private readonly storage: DType) {}

  take(shape: number[]): Tensor {
    if (this.held && this.held.shape.every((n, i) => n === shape[i])) return this.held;
    this.release();
    this.held = empty(shape, { dtype: this.storage });
    return this.held;
  }

  release(): void {
    this.held?.dispose();
    this.held = undefined;
  }
}

/** A residual block on a stored input; the output is stored in place of the input when widths agree. */
function streamResBlock(
  block: MaisiResBlock,
  input: Stored,
  slab: number,
  storage: DType,
  scratch: Scratch,
): Stored {
  const { h } = input;
  const [, , w, hh, d] = h.shape;
  const cOut = block.conv1.conv.conv.weight.shape[0];
  const norm1 = foldedGroupNorm(input.sums, h.shape, block.norm1);
  const a = scratch.take([1, cOut, w, hh, d]);
  const aSums = streamConv(h, specOf(block.conv1), a, slab, (rows) => normSilu(rows, norm1));
  const norm2 = foldedGroupNorm(aSums, a.shape, block.norm2);
  const shortcut = block.ninShortcut;
  const out = shortcut ? empty([1, cOut, w, hh, d], { dtype: storage }) : h;
  const sums = streamConv(
    a,
    specOf(block.conv2),
    out,
    slab,
    (rows) => normSilu(rows, norm2),
    (start, n) => {
      // storeRows reads a float16 residual as it is (and h itself when the output replaces it).
      const rows = h.narrow(2, start, n);
      return shortcut ? F.conv3d(rows.float(), shortcut.conv.conv.weight, shortcut.conv.conv.bias) : rows;
    },
  );
  for (const t of [norm1.scale, norm1.shift, norm2.scale, norm2.shift]) t.dispose();
  return { h: out, sums };
}

/**
 * The latent distribution of a large image, evaluated in slabs (the same result as
 * `AutoencoderKlMaisi.encode` up to float rounding, or float16 storage when chosen).
 */
export function encodeStreaming(
  vae: AutoencoderKlMaisi,
  x: Tensor,
  options: StreamingOptions = {},
): LatentDistribution {
  const slab = integer('slab', options.slab ?? 8, { min: 1 });
  const mode = oneOf('storage', options.storage ?? 'auto', ['float32', 'float16', 'auto'] as const);
  const budget = options.budgetBytes ?? 6e9;
  const widest = vae.config.numChannels[0] * x.numel;
  // Two full-resolution activations live at once inside a residual block.
  const storage: DType = mode === 'auto' ? (2 * 4 * widest <= budget ? 'float32' : 'float16') : mode;
  const blocks = [...vae.encoder.blocks];
  const scratch = new Scratch(storage);
  return noGrad(() => {
    let current: Stored = { h: x.to(storage), sums: new Float64Array(0) };
    try {
      blocks.forEach((block, i) => {
        options.progress?.({ stage: 'autoencoder encode (streaming)', done: i, total: blocks.length });
        const h = current.h;
        if (!(block instanceof MaisiResBlock)) scratch.release();
        if (block instanceof MaisiConvolution || block instanceof MaisiDownsample) {
          const spec = specOf(block);
          const out = empty([1, spec.conv.weight.shape[0], ...outputSize(h.shape.slice(2), spec)], {
            dtype: storage,
          });
          const sums = streamConv(h, spec, out, slab, asFloat);
          h.dispose();
          current = { h: out, sums };
        } else if (block instanceof MaisiResBlock) {
          const next = streamResBlock(block, current, slab, storage, scratch);
          if (next.h !== h) h.dispose();
          current = next;
        } else {
          // The final GroupNorm (no activation): at the latent resolution, small enough to run whole.
          const norm = block as nn.GroupNorm;
          const next = tidy(() => norm.forward(h.float()).to(storage));
          h.dispose();
          current = { h: next, sums: new Float64Array(0) };
        }
      });
    } finally {
      scratch.release();
    }
    options.progress?.({
      stage: 'autoencoder encode (streaming)',
      done: blocks.length,
      total: blocks.length,
    });
    const h = current.h;
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
