/**
 * LDM-Morph's 2-D denoising U-Net on autoencoder latents (LDM's UNetModel without conditioning):
 * ε-prediction from a noisy latent x_t and its timestep t.
 *
 * Shapes, for a latent (B, C, h, w) and level widths c_l = baseChannels·channelMultipliers[l]
 * (default 32, 64, 96, 128 for a 32² latent: levels at 32², 16², 8², 4²):
 *   timestep embedding: sinusoidal (B, baseChannels) → Linear, SiLU, Linear → (B, timeEmbeddingDim),
 *     added (through each block's own projection) in every residual block;
 *   encoder: 3×3 convolution to c_0; level l runs `resBlocks` residual blocks (each followed by
 *     self-attention at attention levels) at h/2^l, then a stride-2 convolution (not after the last);
 *   middle block at the last level: residual, attention, residual;
 *   decoder: level l runs resBlocks + 1 residual blocks, each on the hidden state concatenated with
 *     the newest unused encoder output (the skip), then nearest ×2 and a convolution (not at level 0);
 *   output: GroupNorm, SiLU, 3×3 convolution to C channels: ε̂ (B, C, h, w).
 *
 * `encoderFeatures` returns what LDM-Morph taps: per level, the level's input (the first
 * convolution's output at level 0, the downsampled previous level after) and its last block's
 * output, concatenated along channels (with the authors' two residual blocks per level, their
 * input_blocks outputs 0+2, 3+5, 6+8 and 9+11).
 */
import { cat, nn, noGrad, ones, tidy, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { number } from '../../util/is.ts';
import { timestepEmbedding } from '../blocks/embedding.ts';
import {
  AttentionBlock,
  conv3x3,
  Downsample,
  MiddleBlock,
  outputHead,
  ResBlock,
  Upsample,
} from './blocks.ts';
import { ldm2dConfig, type Ldm2dConfig, type Ldm2dConfigOverrides } from './config.ts';

/** A level's residual blocks, each followed by self-attention at attention levels. */
abstract class UNetLevel extends nn.Module {
  readonly resnets: nn.ModuleList<ResBlock>;
  readonly attentions: nn.ModuleList<AttentionBlock> | null;

  constructor(resnets: ResBlock[], attentions: AttentionBlock[] | null) {
    super();
    this.resnets = this.register('resnets', new nn.ModuleList(resnets));
    this.attentions = this.register('attentions', attentions && new nn.ModuleList(attentions));
  }

  /** Block i on h: its residual block, then its attention when the level has it. */
  protected block(i: number, h: Tensor, emb: Tensor): Tensor {
    const out = this.resnets.at(i).forward(h, emb);
    return this.attentions ? this.attentions.at(i).forward(out) : out;
  }
}

/** One encoder level: its blocks, then the downsampler. */
class EncoderLevel extends UNetLevel {
  readonly downsample: Downsample | null;

  constructor(resnets: ResBlock[], attentions: AttentionBlock[] | null, downsample: Downsample | null) {
    super(resnets, attentions);
    this.downsample = this.register('downsample', downsample);
  }

  /** Runs the blocks on x; each block's output (and the downsampled one) is pushed onto `skips`. */
  forward(x: Tensor, emb: Tensor, skips: Tensor[]): { output: Tensor; next: Tensor } {
    let h = x;
    for (let i = 0; i < this.resnets.length; i++) {
      h = this.block(i, h, emb);
      skips.push(h);
    }
    const next = this.downsample ? this.downsample.forward(h) : h;
    if (next !== h) skips.push(next);
    return { output: h, next };
  }
}

/** One decoder level: its blocks on [hidden, skip], then the upsampler. */
class DecoderLevel extends UNetLevel {
  readonly upsample: Upsample | null;

  constructor(resnets: ResBlock[], attentions: AttentionBlock[] | null, upsample: Upsample | null) {
    super(resnets, attentions);
    this.upsample = this.register('upsample', upsample);
  }

  /** Consumes one skip per block from the end of `skips`. */
  forward(x: Tensor, emb: Tensor, skips: Tensor[]): Tensor {
    let h = x;
    for (let i = 0; i < this.resnets.length; i++) h = this.block(i, cat([h, skips.pop() as Tensor], 1), emb);
    return this.upsample ? this.upsample.forward(h) : h;
  }
}

const levelWidths = ({ unet: u }: Ldm2dConfig) => u.channelMultipliers.map((m) => u.baseChannels * m);

/** `count` attention blocks for level l, or null when the level has none. */
function attentionBlocks(c: Ldm2dConfig, l: number, count: number): AttentionBlock[] | null {
  const width = levelWidths(c)[l];
  if (!c.unet.attentionLevels[l]) return null;
  return Array.from({ length: count }, () => new AttentionBlock(width, c.unet.headChannels, c.normGroups));
}

/** The encoder levels, and the channels of the skip tensors they push in order (conv_in's first). */
function encoderLevels(c: Ldm2dConfig): { levels: EncoderLevel[]; skipChannels: number[] } {
  const { resBlocks, timeEmbeddingDim: emb } = c.unet;
  const widths = levelWidths(c);
  const last = widths.length - 1;
  const skipChannels = [widths[0]];
  let ch = widths[0];
  const levels = widths.map((w, l) => {
    const resnets = Array.from({ length: resBlocks }, () => {
      const block = new ResBlock(ch, w, c.normGroups, emb);
      ch = w;
      skipChannels.push(w);
      return block;
    });
    if (l < last) skipChannels.push(w);
    return new EncoderLevel(resnets, attentionBlocks(c, l, resBlocks), l < last ? new Downsample(w) : null);
  });
  return { levels, skipChannels };
}

/** The decoder levels, coarsest first; each block's input is widened by the skip it pops. */
function decoderLevels(c: Ldm2dConfig, skipChannels: number[]): DecoderLevel[] {
  const { resBlocks, timeEmbeddingDim: emb } = c.unet;
  const widths = levelWidths(c);
  let ch = widths[widths.length - 1];
  return [...widths.keys()].reverse().map((l) => {
    const resnets = Array.from({ length: resBlocks + 1 }, () => {
      const block = new ResBlock(ch + (skipChannels.pop() as number), widths[l], c.normGroups, emb);
      ch = widths[l];
      return block;
    });
    return new DecoderLevel(resnets, attentionBlocks(c, l, resBlocks + 1), l > 0 ? new Upsample(ch) : null);
  });
}

export class Ldm2dUNet extends nn.Module {
  /** The whole LDM configuration (latent channels come from its autoencoder part). */
  readonly config: Ldm2dConfig;
  /** (1): the factor latent means were multiplied by for training (1 / their std), saved with the weights. */
  readonly latentScaleBuffer: Tensor;
  readonly convIn: nn.Conv2d;
  readonly timeEmbed: nn.Sequential;
  readonly encoder: nn.ModuleList<EncoderLevel>;
  readonly middle: MiddleBlock;
  readonly decoder: nn.ModuleList<DecoderLevel>;
  readonly out: nn.Sequential;

  constructor(config: Ldm2dConfigOverrides = {}) {
    super();
    const c = ldm2dConfig(config);
    this.config = c;
    const { baseChannels: base, timeEmbeddingDim: emb } = c.unet;
    const widths = levelWidths(c);
    this.latentScaleBuffer = this.registerBuffer('latent_scale', ones([1]));
    this.convIn = this.register('conv_in', conv3x3(c.autoencoder.latentChannels, widths[0]));
    this.timeEmbed = this.register(
      'time_embed',
      new nn.Sequential(new nn.Linear(base, emb), new nn.SiLU(), new nn.Linear(emb, emb)),
    );
    const { levels, skipChannels } = encoderLevels(c);
    this.encoder = this.register('encoder', new nn.ModuleList(levels));
    this.middle = this.register(
      'middle',
      new MiddleBlock(widths[widths.length - 1], c.unet.headChannels, c.normGroups, emb),
    );
    this.decoder = this.register('decoder', new nn.ModuleList(decoderLevels(c, skipChannels)));
    this.out = this.register('out', outputHead(widths[0], c.autoencoder.latentChannels, c.normGroups));
    // As LDM: the untrained network predicts ε̂ = 0, so training starts from a loss of 1.
    const head = this.out.at(2) as nn.Conv2d;
    noGrad(() => [head.weight, head.bias].forEach((p) => p?.zero_()));
  }

  /** The factor latent means are multiplied by before noising (1 until the U-Net is trained). */
  get latentScale(): number {
    return this.latentScaleBuffer.item();
  }

  set latentScale(s: number) {
    number('latent scale', s, { min: 0, exclusiveMin: true });
    noGrad(() => this.latentScaleBuffer.fill_(s));
  }

  /** Channels of `encoderFeatures`' four maps: level input plus level output widths. */
  get featureChannels(): number[] {
    const { baseChannels: b, channelMultipliers: m } = this.config.unet;
    return m.map((x, l) => b * (l === 0 ? 1 : m[l - 1]) + b * x);
  }

  private checkInputs(zt: Tensor, t: Tensor): void {
    const c = this.config.autoencoder.latentChannels;
    const f = 2 ** (this.config.unet.channelMultipliers.length - 1);
    if (zt.ndim !== 4 || zt.shape[1] !== c)
      fail('U-Net input', `expected shape (B, ${c}, h, w), got (${zt.shape.join(', ')})`);
    if (zt.shape[2] % f !== 0 || zt.shape[3] % f !== 0)
      fail('U-Net input', `h and w must be multiples of ${f}, got ${zt.shape[2]}x${zt.shape[3]}`);
    if (t.ndim !== 1 || (t.shape[0] !== 1 && t.shape[0] !== zt.shape[0]))
      fail('timesteps', `expected shape (${zt.shape[0]}) or (1), got (${t.shape.join(', ')})`);
  }

  /** The encoder half: the embedding, the skips, each level's [input, output] and the deepest state. */
  private encode(zt: Tensor, t: Tensor) {
    this.checkInputs(zt, t);
    const emb = this.timeEmbed.forward(timestepEmbedding(t, this.config.unet.baseChannels));
    let h = this.convIn.forward(zt);
    const skips = [h];
    const levels: [Tensor, Tensor][] = [];
    for (const level of this.encoder) {
      const { output, next } = level.forward(h, emb, skips);
      levels.push([h, output]);
      h = next;
    }
    return { emb, skips, levels, deepest: h };
  }

  /** ε̂ (B, C, h, w) for noisy latents zt (B, C, h, w) at timesteps t (B) or (1), int64. */
  forward(zt: Tensor, t: Tensor): Tensor {
    return tidy(() => {
      const { emb, skips, deepest } = this.encode(zt, t);
      let h = this.middle.forward(deepest, emb);
      for (const level of this.decoder) h = level.forward(h, emb, skips);
      return this.out.forward(h);
    });
  }

  /**
   * LDM-Morph's features: per level l, (B, featureChannels[l], h/2^l, w/2^l) — for a 32² latent
   * 32², 16², 8², 4². Runs the encoder half only.
   */
  encoderFeatures(zt: Tensor, t: Tensor): Tensor[] {
    return tidy(() => this.encode(zt, t).levels.map((pair) => cat(pair, 1)));
  }
}
