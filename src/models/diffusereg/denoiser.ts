/**
 * DiffuseReg's denoiser (Zhuo & Shen, MICCAI 2024): a Swin-UNETR that predicts the noise ε of a noisy
 * displacement field given the fixed and moving images and the timestep. The flow branch's Swin
 * encoder attends to the image encoder's tokens and a time token in every window (swin.ts); the
 * decoder is Swin-UNETR's (MONAI's UnetResBlock / UnetrUpBlock), with the time embedding added in
 * every residual block.
 *
 * Tensors are (B, C, w, h, d) on the network grid of the configuration.
 */
import { F, cat, nn, tidy, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { timestepEmbedding } from '../blocks/index.ts';
import { denoiserConfig, flowInputChannels, type DenoiserConfig } from './config.ts';
import { FlowEncoder, ImageEncoder } from './swin.ts';

/** Instance norm without affine parameters, then leaky ReLU (MONAI's "instance" and "leakyrelu" defaults). */
const norm = (x: Tensor) => F.instanceNorm(x);
const act = (x: Tensor) => F.leakyRelu(x, 0.01);

/**
 * MONAI's UnetResBlock (kernel 3, stride 1, bias-free convolutions), with the time embedding added
 * after the first normalisation and activation (the authors' change).
 */
export class UnetResBlock extends nn.Module {
  readonly conv1: nn.Conv3d;
  readonly conv2: nn.Conv3d;
  /** 1×1×1 projection of the residual when the width changes. */
  readonly conv3: nn.Conv3d | null;
  readonly time: nn.Linear;

  constructor(inChannels: number, outChannels: number, timeDim: number) {
    super();
    const conv = (i: number, k: number) => new nn.Conv3d(i, outChannels, k, { padding: k >> 1, bias: false });
    this.conv1 = this.register('conv1', conv(inChannels, 3));
    this.conv2 = this.register('conv2', conv(outChannels, 3));
    this.conv3 = this.register('conv3', inChannels === outChannels ? null : conv(inChannels, 1));
    this.time = this.register('time', new nn.Linear(timeDim, outChannels));
  }

  /** x (B, Cin, ...) and the activated time embedding (B, T) → (B, Cout, ...). */
  forward(x: Tensor, time: Tensor): Tensor {
    return tidy(() => {
      const t = this.time.forward(time);
      const h = act(norm(this.conv1.forward(x))).add(t.reshape(t.shape[0], -1, 1, 1, 1));
      const residual = this.conv3 ? norm(this.conv3.forward(x)) : x;
      return act(norm(this.conv2.forward(h)).add(residual));
    });
  }
}

/** MONAI's UnetrUpBlock: transposed-conv upsampling, the skip concatenated, a residual block. */
export class UnetrUpBlock extends nn.Module {
  readonly transpConv: nn.ConvTranspose3d;
  readonly convBlock: UnetResBlock;

  constructor(inChannels: number, outChannels: number, upsample: number, timeDim: number) {
    super();
    this.transpConv = this.register(
      'transp_conv',
      new nn.ConvTranspose3d(inChannels, outChannels, upsample, { stride: upsample, bias: false }),
    );
    this.convBlock = this.register('conv_block', new UnetResBlock(2 * outChannels, outChannels, timeDim));
  }

  forward(x: Tensor, skip: Tensor, time: Tensor): Tensor {
    return tidy(() => {
      let up = this.transpConv.forward(x);
      // Patch merging zero-padded odd token axes: cut the upsampled map back to the skip's size.
      for (let a = 2; a < 5; a++) if (up.shape[a] !== skip.shape[a]) up = up.narrow(a, 0, skip.shape[a]);
      return this.convBlock.forward(cat([up, skip], 1), time);
    });
  }
}

/** The image encoder's attention inputs per stage and block, (B, w, h, d, C) each, for each image. */
export interface ImageTokens {
  moving: Tensor[][];
  fixed: Tensor[][];
  /** The images themselves, (B, 2·imageChannels, w, h, d), moving first: the flow input's extra channels. */
  images: Tensor;
}

export class DiffuseRegDenoiser extends nn.Module {
  readonly config: DenoiserConfig;
  readonly timeEmbed: nn.Sequential;
  readonly imageEncoder: ImageEncoder;
  readonly flowEncoder: FlowEncoder;
  readonly encoder1: UnetResBlock;
  readonly encoder2: UnetResBlock;
  readonly encoder3: UnetResBlock;
  readonly encoder4: UnetResBlock;
  readonly encoder10: UnetResBlock;
  readonly decoder5: UnetrUpBlock;
  readonly decoder4: UnetrUpBlock;
  readonly decoder3: UnetrUpBlock;
  readonly decoder2: UnetrUpBlock;
  readonly decoder1: UnetrUpBlock;
  readonly out: nn.Conv3d;

  constructor(config: Partial<DenoiserConfig> = {}) {
    super();
    const c = denoiserConfig(config);
    this.config = c;
    const f = c.featureSize;
    // The authors' widths: sinusoid and embedding of featureSize, MLP hidden 4·featureSize.
    this.timeEmbed = this.register(
      'time_embed',
      new nn.Sequential(new nn.Linear(f, 4 * f), new nn.SiLU(), new nn.Linear(4 * f, f)),
    );
    this.imageEncoder = this.register('image_encoder', new ImageEncoder(c));
    this.flowEncoder = this.register('flow_encoder', new FlowEncoder(c));
    // Swin-UNETR's decoder and its names.
    const res = (name: string, i: number, o: number) => this.register(name, new UnetResBlock(i, o, f));
    const up = (name: string, i: number, o: number, k = 2) =>
      this.register(name, new UnetrUpBlock(i, o, k, f));
    this.encoder1 = res('encoder1', flowInputChannels(c), f);
    this.encoder2 = res('encoder2', f, f);
    this.encoder3 = res('encoder3', 2 * f, 2 * f);
    this.encoder4 = res('encoder4', 4 * f, 4 * f);
    this.encoder10 = res('encoder10', 16 * f, 16 * f);
    this.decoder5 = up('decoder5', 16 * f, 8 * f);
    this.decoder4 = up('decoder4', 8 * f, 4 * f);
    this.decoder3 = up('decoder3', 4 * f, 2 * f);
    this.decoder2 = up('decoder2', 2 * f, f);
    this.decoder1 = up('decoder1', f, f, c.patchSize);
    this.out = this.register('out', new nn.Conv3d(f, c.flowChannels, 1));
  }

  /**
   * ε̂ (B, 3, w, h, d) for the noisy flow (B, 3, w, h, d) at timesteps (B,) (integer or float), given
   * the fixed and moving images (B, 1, w, h, d).
   */
  forward(flow: Tensor, timesteps: Tensor, fixed: Tensor, moving: Tensor): Tensor {
    return tidy(() => this.denoise(flow, timesteps, this.encodeImages(fixed, moving)));
  }

  /**
   * The image encoder's tokens for a pair, per stage and block. They do not depend on the timestep:
   * a sampler computes them once and calls `denoise` at every step.
   */
  encodeImages(fixed: Tensor, moving: Tensor): ImageTokens {
    const b = fixed.shape[0];
    this.checkShape('fixed', fixed, [b, this.config.imageChannels]);
    this.checkShape('moving', moving, [b, this.config.imageChannels]);
    return tidy(() => {
      // One pass of the shared encoder over both images: moving first, fixed second in the batch.
      const records = this.imageEncoder.forward(cat([moving, fixed], 0));
      const half = (start: number) => records.map((stage) => stage.map((t) => t.narrow(0, start, b)));
      return { moving: half(0), fixed: half(b), images: cat([moving, fixed], 1) };
    });
  }

  /** ε̂ for the noisy flow at the timesteps, given the pair's image tokens (encodeImages). */
  denoise(flow: Tensor, timesteps: Tensor, images: ImageTokens): Tensor {
    const b = flow.shape[0];
    this.checkShape('flow', flow, [b, this.config.flowChannels]);
    this.checkShape('timesteps', timesteps, [b], []);
    if (images.fixed[0][0].shape[0] !== b)
      fail('denoiser images', `encoded for a batch of ${images.fixed[0][0].shape[0]}, the flow has ${b}`);
    return tidy(() => {
      // Every user of the embedding starts with SiLU (as in the authors' code): applied once here.
      const time = this.timeEmbed.forward(timestepEmbedding(timesteps, this.config.featureSize)).silu();
      const input = this.config.imagesInFlowInput ? cat([flow, images.images], 1) : flow;
      const hidden = this.flowEncoder.forward(input, images.moving, images.fixed, time);
      const enc0 = this.encoder1.forward(input, time);
      const enc1 = this.encoder2.forward(hidden[0], time);
      const enc2 = this.encoder3.forward(hidden[1], time);
      const enc3 = this.encoder4.forward(hidden[2], time);
      const dec4 = this.encoder10.forward(hidden[4], time);
      const dec3 = this.decoder5.forward(dec4, hidden[3], time);
      const dec2 = this.decoder4.forward(dec3, enc3, time);
      const dec1 = this.decoder3.forward(dec2, enc2, time);
      const dec0 = this.decoder2.forward(dec1, enc1, time);
      return this.out.forward(this.decoder1.forward(dec0, enc0, time));
    });
  }

  /** A one-line error unless t's shape is lead, then `spatial` (the grid by default). */
  private checkShape(
    name: string,
    t: Tensor,
    lead: number[],
    spatial: number[] = this.config.gridSize,
  ): void {
    const shape = [...lead, ...spatial];
    if (t.ndim !== shape.length || t.shape.some((s, i) => s !== shape[i]))
      fail(`denoiser ${name}`, `expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`);
  }
}
