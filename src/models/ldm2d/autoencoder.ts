/**
 * LDM-Morph's 2-D autoencoder, as a KL autoencoder (LDM's AutoencoderKL; the authors use a VQ one):
 * images (B, 1, H, W) with intensities min–max normalised to [0, 1] map to a Gaussian over latents
 * (B, latentChannels, H/f, W/f), f = 2^(levels − 1) = 4 by default, and back.
 *
 * Encoder: 3×3 convolution; per level, residual blocks then a stride-2 convolution (not after the
 * last level); a middle block (residual, single-head attention, residual); GroupNorm, SiLU and a
 * convolution to 2·latentChannels: the mean and the log-variance. The decoder mirrors it with
 * nearest-neighbour upsampling and ends in one output channel (no activation: a linear output keeps
 * the gradient of an L1 loss alive at 0 and 1).
 */
import { nn, randn, tidy, type Generator, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { conv3x3, Downsample, MiddleBlock, outputHead, ResBlock, Upsample } from './blocks.ts';
import { ldm2dConfig, type Ldm2dConfig, type Ldm2dConfigOverrides } from './config.ts';

export interface LatentGaussian {
  /** (B, latentChannels, H/f, W/f). */
  mean: Tensor;
  /** Log-variance, clamped to [−30, 20] as LDM does, same shape. */
  logvar: Tensor;
}

function encoderLayers({ autoencoder: a, normGroups: g }: Ldm2dConfig): nn.Layer[] {
  const layers: nn.Layer[] = [conv3x3(1, a.channels[0])];
  let c = a.channels[0];
  a.channels.forEach((out, level) => {
    for (let r = 0; r < a.resBlocks; r++) {
      layers.push(new ResBlock(c, out, g));
      c = out;
    }
    if (level < a.channels.length - 1) layers.push(new Downsample(c));
  });
  // One attention head over the whole width, as LDM's autoencoder attends.
  layers.push(new MiddleBlock(c, c, g), outputHead(c, 2 * a.latentChannels, g));
  return layers;
}

function decoderLayers({ autoencoder: a, normGroups: g }: Ldm2dConfig): nn.Layer[] {
  const channels = [...a.channels].reverse();
  let c = channels[0];
  const layers: nn.Layer[] = [conv3x3(a.latentChannels, c), new MiddleBlock(c, c, g)];
  channels.forEach((out, level) => {
    for (let r = 0; r < a.resBlocks; r++) {
      layers.push(new ResBlock(c, out, g));
      c = out;
    }
    if (level < channels.length - 1) layers.push(new Upsample(c));
  });
  layers.push(outputHead(c, 1, g));
  return layers;
}

export class Ldm2dAutoencoder extends nn.Module {
  /** The whole LDM configuration (the U-Net's part travels with it). */
  readonly config: Ldm2dConfig;
  readonly encoder: nn.Sequential;
  readonly decoder: nn.Sequential;

  constructor(config: Ldm2dConfigOverrides = {}) {
    super();
    this.config = ldm2dConfig(config);
    this.encoder = this.register('encoder', new nn.Sequential(...encoderLayers(this.config)));
    this.decoder = this.register('decoder', new nn.Sequential(...decoderLayers(this.config)));
  }

  /** Size reduction per axis between image and latent. */
  get downsamplingFactor(): number {
    return 2 ** (this.config.autoencoder.channels.length - 1);
  }

  private checkImage(x: Tensor): void {
    const f = this.downsamplingFactor;
    if (x.ndim !== 4 || x.shape[1] !== 1)
      fail('autoencoder input', `expected shape (B, 1, H, W), got (${x.shape.join(', ')})`);
    if (x.shape[2] % f !== 0 || x.shape[3] % f !== 0)
      fail('autoencoder input', `H and W must be multiples of ${f}, got ${x.shape[2]}x${x.shape[3]}`);
  }

  /** The latent Gaussian of images (B, 1, H, W). */
  encode(x: Tensor): LatentGaussian {
    this.checkImage(x);
    return tidy(() => {
      const [mean, logvar] = this.encoder.forward(x).chunk(2, 1);
      return { mean, logvar: logvar.clamp(-30, 20) };
    });
  }

  /**
   * The latent mean alone: what the U-Net is trained on and what LDM-Morph's latent similarity
   * compares. Differentiable with respect to `x` (a warped image) unless run under noGrad.
   */
  encodeMean(x: Tensor): Tensor {
    this.checkImage(x);
    const c = this.config.autoencoder.latentChannels;
    return tidy(() => this.encoder.forward(x).narrow(1, 0, c));
  }

  /** A latent drawn from the Gaussian: mean + exp(logvar / 2)·ε, ε ~ N(0, I) from `generator`. */
  sample(mean: Tensor, logvar: Tensor, generator?: Generator): Tensor {
    return tidy(() => mean.add(randn(mean.shape, { generator }).mul(logvar.mul(0.5).exp())));
  }

  /** Images (B, 1, f·h, f·w) from latents (B, latentChannels, h, w). */
  decode(z: Tensor): Tensor {
    const c = this.config.autoencoder.latentChannels;
    if (z.ndim !== 4 || z.shape[1] !== c)
      fail('autoencoder latent', `expected shape (B, ${c}, h, w), got (${z.shape.join(', ')})`);
    return tidy(() => this.decoder.forward(z));
  }

  /** The training pass: the Gaussian and the reconstruction of a latent drawn from it. */
  forward(x: Tensor, generator?: Generator): LatentGaussian & { reconstruction: Tensor } {
    return tidy(() => {
      const { mean, logvar } = this.encode(x);
      return { mean, logvar, reconstruction: this.decode(this.sample(mean, logvar, generator)) };
    });
  }
}
