/**
 * MAISI's 3D KL autoencoder (MONAI `AutoencoderKlMaisi`): 4 latent channels at 1/4 of the image size
 * per axis. Differences from generic LDM autoencoders, all kept here: the encoder and decoder end with a
 * GroupNorm straight into a convolution (no activation); the downsampler pads one zero at the end of
 * each axis then applies a stride-2 3×3×3 convolution without padding; the upsampler is trilinear ×2
 * (align_corners false) then a convolution. MAISI splits its convolutions into overlapping slabs to
 * save GPU memory; that is mathematically a no-op, and here the plain convolution is used.
 */
import { F, nn, randnLike, Tensor, tidy, type Generator } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { MonaiConvolution } from './blocks.ts';
import { pipe } from '../../engine/index.ts';
import { checkAutoencoderConfig, MAISI_V1_AUTOENCODER, type AutoencoderMaisiConfig } from './config.ts';

/** MAISI's convolution wrapper: a MONAI Convolution held under `conv` (keys `<name>.conv.conv.weight`). */
export class MaisiConvolution extends nn.Module implements nn.Layer {
  readonly conv: MonaiConvolution;
  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: number,
    opts: { stride?: number; padding?: number } = {},
  ) {
    super();
    this.conv = this.register('conv', new MonaiConvolution(inChannels, outChannels, kernelSize, opts));
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

export class MaisiResBlock extends nn.Module implements nn.Layer {
  readonly norm1: nn.GroupNorm;
  readonly conv1: MaisiConvolution;
  readonly norm2: nn.GroupNorm;
  readonly conv2: MaisiConvolution;
  readonly ninShortcut: MaisiConvolution | null;

  constructor(inChannels: number, outChannels: number, groups: number, eps: number) {
    super();
    this.norm1 = this.register('norm1', new nn.GroupNorm(groups, inChannels, { eps }));
    this.conv1 = this.register('conv1', new MaisiConvolution(inChannels, outChannels, 3, { padding: 1 }));
    this.norm2 = this.register('norm2', new nn.GroupNorm(groups, outChannels, { eps }));
    this.conv2 = this.register('conv2', new MaisiConvolution(outChannels, outChannels, 3, { padding: 1 }));
    this.ninShortcut =
      inChannels === outChannels
        ? null
        : this.register('nin_shortcut', new MaisiConvolution(inChannels, outChannels, 1));
  }
  forward(x: Tensor): Tensor {
    const h = pipe(
      x,
      (t) => this.norm1.forward(t),
      (t) => t.silu(),
      (t) => this.conv1.forward(t),
      (t) => this.norm2.forward(t),
      (t) => t.silu(),
      (t) => this.conv2.forward(t),
    );
    const skip = this.ninShortcut ? this.ninShortcut.forward(x) : x;
    const out = skip.add(h);
    h.dispose();
    if (skip !== x) skip.dispose();
    return out;
  }
}

export class MaisiDownsample extends nn.Module implements nn.Layer {
  readonly conv: MaisiConvolution;
  constructor(channels: number) {
    super();
    this.conv = this.register('conv', new MaisiConvolution(channels, channels, 3, { stride: 2, padding: 0 }));
  }
  forward(x: Tensor): Tensor {
    return pipe(
      x,
      (t) => F.pad(t, [0, 1, 0, 1, 0, 1]),
      (t) => this.conv.forward(t),
    );
  }
}

export class MaisiUpsample extends nn.Module implements nn.Layer {
  readonly conv: MaisiConvolution;
  constructor(channels: number) {
    super();
    this.conv = this.register('conv', new MaisiConvolution(channels, channels, 3, { padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    return pipe(
      x,
      (t) => F.interpolate(t, { scaleFactor: 2, mode: 'trilinear', alignCorners: false }),
      (t) => this.conv.forward(t),
    );
  }
}

/** A chain of layers under `blocks.<i>` (MaisiEncoder / MaisiDecoder). */
export class BlockChain extends nn.Module implements nn.Layer {
  readonly blocks: nn.ModuleList<nn.Layer>;
  constructor(layers: nn.Layer[]) {
    super();
    this.blocks = this.register('blocks', new nn.ModuleList(layers));
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const block of this.blocks) {
      const next = block.forward(h);
      if (h !== x) h.dispose();
      h = next;
    }
    return h;
  }
}

function encoderLayers(c: AutoencoderMaisiConfig): nn.Layer[] {
  const ch = c.numChannels;
  const layers: nn.Layer[] = [new MaisiConvolution(c.inChannels, ch[0], 3, { padding: 1 })];
  let current = ch[0];
  ch.forEach((out, level) => {
    for (let r = 0; r < c.numResBlocks[level]; r++) {
      layers.push(new MaisiResBlock(current, out, c.normNumGroups, c.normEps));
      current = out;
    }
    if (level < ch.length - 1) layers.push(new MaisiDownsample(current));
  });
  layers.push(new nn.GroupNorm(c.normNumGroups, current, { eps: c.normEps }));
  layers.push(new MaisiConvolution(current, c.latentChannels, 3, { padding: 1 }));
  return layers;
}

function decoderLayers(c: AutoencoderMaisiConfig): nn.Layer[] {
  const ch = [...c.numChannels].reverse();
  const resBlocks = [...c.numResBlocks].reverse();
  const layers: nn.Layer[] = [new MaisiConvolution(c.latentChannels, ch[0], 3, { padding: 1 })];
  let current = ch[0];
  ch.forEach((out, level) => {
    for (let r = 0; r < resBlocks[level]; r++) {
      layers.push(new MaisiResBlock(current, out, c.normNumGroups, c.normEps));
      current = out;
    }
    if (level < ch.length - 1) layers.push(new MaisiUpsample(current));
  });
  layers.push(new nn.GroupNorm(c.normNumGroups, current, { eps: c.normEps }));
  layers.push(new MaisiConvolution(current, c.outChannels, 3, { padding: 1 }));
  return layers;
}

export interface LatentDistribution {
  /** Mean of the latent Gaussian, (B, latent, X/4, Y/4, Z/4). */
  mu: Tensor;
  /** Standard deviation, exp(clamp(log σ², −30, 20) / 2). */
  sigma: Tensor;
}

export class AutoencoderKlMaisi extends nn.Module {
  readonly config: AutoencoderMaisiConfig;
  readonly encoder: BlockChain;
  readonly decoder: BlockChain;
  readonly quantConvMu: MonaiConvolution;
  readonly quantConvLogSigma: MonaiConvolution;
  readonly postQuantConv: MonaiConvolution;

  constructor(config: AutoencoderMaisiConfig = MAISI_V1_AUTOENCODER) {
    super();
    const c = checkAutoencoderConfig(config);
    this.config = c;
    this.encoder = this.register('encoder', new BlockChain(encoderLayers(c)));
    this.decoder = this.register('decoder', new BlockChain(decoderLayers(c)));
    this.quantConvMu = this.register(
      'quant_conv_mu',
      new MonaiConvolution(c.latentChannels, c.latentChannels, 1),
    );
    this.quantConvLogSigma = this.register(
      'quant_conv_log_sigma',
      new MonaiConvolution(c.latentChannels, c.latentChannels, 1),
    );
    this.postQuantConv = this.register(
      'post_quant_conv',
      new MonaiConvolution(c.latentChannels, c.latentChannels, 1),
    );
  }

  /** Size reduction per axis between image and latent. */
  get downsamplingFactor(): number {
    return 2 ** (this.config.numChannels.length - 1);
  }

  private checkImage(x: Tensor): void {
    const f = this.downsamplingFactor;
    if (x.ndim !== 5 || x.shape[1] !== this.config.inChannels) {
      fail(
        'autoencoder input',
        `expected shape (B, ${this.config.inChannels}, X, Y, Z), got (${x.shape.join(', ')})`,
      );
    }
    if (x.shape.slice(2).some((s) => s % f !== 0)) {
      fail('autoencoder input', `spatial size must be divisible by ${f}, got ${x.shape.slice(2).join('x')}`);
    }
  }

  /** The latent distribution of an image. */
  encode(x: Tensor): LatentDistribution {
    this.checkImage(x);
    return tidy(() => {
      const h = this.encoder.forward(x);
      const mu = this.quantConvMu.forward(h);
      const sigma = this.quantConvLogSigma.forward(h).clamp(-30, 20).div(2).exp();
      return { mu, sigma };
    });
  }

  /** A latent sample μ + ε·σ; ε is given (reproducibility against a reference) or drawn from `generator`. */
  sample(d: LatentDistribution, noise?: Tensor | Generator): Tensor {
    return tidy(() => {
      const eps = noise instanceof Tensor ? noise : randnLike(d.sigma, { generator: noise });
      return d.mu.add(eps.mul(d.sigma));
    });
  }

  /** The image decoded from a latent. */
  decode(z: Tensor): Tensor {
    return tidy(() => this.decoder.forward(this.postQuantConv.forward(z)));
  }

  /** decode(encode(x).mu), as MONAI's `reconstruct`. */
  reconstruct(x: Tensor): Tensor {
    return tidy(() => this.decode(this.encode(x).mu));
  }
}
