/**
 * LDM-Morph's 2-D autoencoder: images (B, 1, H, W) with intensities min–max normalised to [0, 1] map
 * to latents (B, latentChannels, H/f, W/f), f = 2^(levels − 1) = 4 by default, and back. Two kinds,
 * as LDM builds them (config `quantizer`):
 *   - 'kl' (AutoencoderKL, the default here): the encoder gives a Gaussian (mean and log-variance),
 *     the decoder reads a draw from it, and the loss pulls it toward N(0, I);
 *   - 'vq' (VQModel, the authors'): the encoder's output h is replaced in the decoder's path by its
 *     nearest codebook entry e (gradient straight through to h), and the loss adds ‖sg(h) − e‖² (the
 *     codebook follows the encoder) and β‖h − sg(e)‖² (the encoder commits to the codebook).
 * The continuous latent (`encodeLatent`: the mean, or h before quantisation, as LDM's VQModelInterface
 * encodes) is what the U-Net is trained on and what LDM-Morph reads.
 *
 * Encoder: 3×3 convolution; per level, residual blocks then a stride-2 convolution (not after the
 * last level); a middle block (residual, single-head attention, residual); GroupNorm, SiLU and a
 * convolution to 2·latentChannels (mean and log-variance) or latentChannels (VQ). The decoder mirrors
 * it with nearest-neighbour upsampling and ends in one output channel (no activation: a linear output
 * keeps the gradient of an L1 loss alive at 0 and 1).
 */
import {
  nearestRows,
  nn,
  noGrad,
  randint,
  randn,
  tidy,
  zeros,
  type Generator,
  type Tensor,
} from '../../engine/index.ts';
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
  const out = a.quantizer === 'kl' ? 2 * a.latentChannels : a.latentChannels;
  layers.push(new MiddleBlock(c, c, g), outputHead(c, out, g));
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

/** One training pass of the autoencoder. */
export interface AutoencoderPass {
  /** The continuous latent (B, latentChannels, h, w): the Gaussian's mean, or h before quantisation. */
  latent: Tensor;
  reconstruction: Tensor;
  /** The latent's weighted loss term: klWeight·KL, or codebook + β·commitment. */
  regularization: Tensor;
}

/** KL(N(mean, e^logvar) ‖ N(0, I)), summed over latent elements, averaged over the batch (LDM's). */
export function klDivergence(mean: Tensor, logvar: Tensor): Tensor {
  return tidy(() => mean.square().add(logvar.exp()).sub(1).sub(logvar).sum([1, 2, 3]).mul(0.5).mean());
}

export class Ldm2dAutoencoder extends nn.Module {
  /** The whole LDM configuration (the U-Net's part travels with it). */
  readonly config: Ldm2dConfig;
  readonly encoder: nn.Sequential;
  readonly decoder: nn.Sequential;
  /** VQ only: the codebook (codebookSize, latentChannels); zeros until initCodebook or a checkpoint fills it. */
  readonly codebook: Tensor | null;

  constructor(config: Ldm2dConfigOverrides = {}) {
    super();
    this.config = ldm2dConfig(config);
    const a = this.config.autoencoder;
    this.encoder = this.register('encoder', new nn.Sequential(...encoderLayers(this.config)));
    this.decoder = this.register('decoder', new nn.Sequential(...decoderLayers(this.config)));
    this.codebook = this.registerParameter(
      'codebook',
      a.quantizer === 'vq' ? zeros([a.codebookSize, a.latentChannels]) : null,
    );
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

  /** The latent Gaussian of images (B, 1, H, W) (KL autoencoders). */
  encode(x: Tensor): LatentGaussian {
    this.checkImage(x);
    if (this.codebook) fail('autoencoder', 'a VQ autoencoder has no latent Gaussian: use encodeLatent');
    return tidy(() => {
      const [mean, logvar] = this.encoder.forward(x).chunk(2, 1);
      return { mean, logvar: logvar.clamp(-30, 20) };
    });
  }

  /**
   * The continuous latent: what the U-Net is trained on and what LDM-Morph's latent similarity
   * compares (the Gaussian's mean, or the output before quantisation). Differentiable with respect to
   * `x` (a warped image) unless run under noGrad.
   */
  encodeLatent(x: Tensor): Tensor {
    this.checkImage(x);
    const c = this.config.autoencoder.latentChannels;
    return tidy(() => this.encoder.forward(x).narrow(1, 0, c));
  }

  /** A latent drawn from the Gaussian: mean + exp(logvar / 2)·ε, ε ~ N(0, I) from `generator`. */
  sample(mean: Tensor, logvar: Tensor, generator?: Generator): Tensor {
    return tidy(() => mean.add(randn(mean.shape, { generator }).mul(logvar.mul(0.5).exp())));
  }

  /**
   * Sets the codebook to latent vectors of `images` (B, 1, H, W) drawn at random (with repetition when
   * there are fewer vectors than entries) — VQ only. The training calls it before its first step: from
   * VQGAN's ±1/codebookSize, with Adam moving each entry by about the learning rate per step, the
   * codebook could not follow the encoder and the loss rose (0.37 → 6.7 in 50 steps, 1 channel).
   */
  initCodebook(images: Tensor, generator?: Generator): void {
    const e = this.codebook;
    if (!e) fail('autoencoder', 'a KL autoencoder has no codebook');
    noGrad(() =>
      tidy(() => {
        const c = this.config.autoencoder.latentChannels;
        const vectors = this.encodeLatent(images).permute(0, 2, 3, 1).reshape(-1, c);
        const picks = randint(0, vectors.shape[0], [e.shape[0]], { generator });
        e.copy_(vectors.indexSelect(0, picks));
      }),
    );
  }

  /** Each latent vector (B, c, h, w) replaced by its nearest codebook entry (squared distance; VQ only). */
  quantize(h: Tensor): Tensor {
    const e = this.codebook;
    if (!e) fail('autoencoder', 'a KL autoencoder has no codebook');
    const [b, c, height, width] = h.shape;
    return tidy(() => {
      const nearest = nearestRows(h.permute(0, 2, 3, 1).reshape(-1, c), e);
      return e.indexSelect(0, nearest).reshape(b, height, width, c).permute(0, 3, 1, 2);
    });
  }

  /** Images (B, 1, f·h, f·w) from latents (B, latentChannels, h, w). */
  decode(z: Tensor): Tensor {
    const c = this.config.autoencoder.latentChannels;
    if (z.ndim !== 4 || z.shape[1] !== c)
      fail('autoencoder latent', `expected shape (B, ${c}, h, w), got (${z.shape.join(', ')})`);
    return tidy(() => this.decoder.forward(this.codebook ? this.quantize(z) : z));
  }

  /** The training pass: the latent, the reconstruction through a draw (KL) or the codebook (VQ), the latent's loss term. */
  forward(x: Tensor, generator?: Generator): AutoencoderPass {
    const a = this.config.autoencoder;
    return tidy(() => {
      if (!this.codebook) {
        const { mean, logvar } = this.encode(x);
        const reconstruction = this.decoder.forward(this.sample(mean, logvar, generator));
        return { latent: mean, reconstruction, regularization: klDivergence(mean, logvar).mul(a.klWeight) };
      }
      const h = this.encodeLatent(x);
      const e = this.quantize(h);
      // Straight through: the decoder reads e, its gradient reaches h as if it had read h.
      const reconstruction = this.decoder.forward(h.add(e.sub(h).detach()));
      const codebook = h.detach().sub(e).square().mean();
      const commitment = h.sub(e.detach()).square().mean();
      return { latent: h, reconstruction, regularization: codebook.add(commitment.mul(a.commitmentWeight)) };
    });
  }
}
