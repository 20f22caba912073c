/**
 * The 2-D blocks of LDM-Morph's autoencoder and U-Net, as the LDM code base builds them: residual
 * blocks of GroupNorm, SiLU and 3×3 convolutions (the U-Net adds its timestep embedding between the
 * two convolutions), self-attention over all pixels, stride-2 convolution down and nearest-neighbour
 * ×2 then a convolution up. Each forward runs in `tidy`, so intermediates are freed on return.
 */
import { F, nn, tidy, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { MultiHeadAttention } from '../blocks/attention.ts';

/** A 3×3 convolution keeping the size (stride 1) or halving it (stride 2). */
export const conv3x3 = (cin: number, cout: number, stride = 1) =>
  new nn.Conv2d(cin, cout, 3, { padding: 1, stride });

export class ResBlock extends nn.Module implements nn.Layer {
  readonly norm1: nn.GroupNorm;
  readonly conv1: nn.Conv2d;
  readonly embProj: nn.Linear | null;
  readonly norm2: nn.GroupNorm;
  readonly conv2: nn.Conv2d;
  readonly skip: nn.Conv2d | null;

  /** `embDim` > 0: the block takes a timestep embedding of that width. */
  constructor(cin: number, cout: number, groups: number, embDim = 0) {
    super();
    this.norm1 = this.register('norm1', new nn.GroupNorm(groups, cin));
    this.conv1 = this.register('conv1', conv3x3(cin, cout));
    this.embProj = this.register('emb_proj', embDim > 0 ? new nn.Linear(embDim, cout) : null);
    this.norm2 = this.register('norm2', new nn.GroupNorm(groups, cout));
    this.conv2 = this.register('conv2', conv3x3(cout, cout));
    this.skip = this.register('skip', cin === cout ? null : new nn.Conv2d(cin, cout, 1));
  }

  /** x (B, cin, H, W) and, for a conditioned block, emb (B, embDim) → (B, cout, H, W). */
  forward(x: Tensor, emb?: Tensor): Tensor {
    return tidy(() => {
      let h = this.conv1.forward(this.norm1.forward(x).silu());
      if (this.embProj) {
        if (!emb) fail('residual block', 'needs the timestep embedding');
        h = h.add(this.embProj.forward(emb.silu()).unsqueeze(-1).unsqueeze(-1));
      }
      h = this.conv2.forward(this.norm2.forward(h).silu());
      return (this.skip ? this.skip.forward(x) : x).add(h);
    });
  }
}

/** GroupNorm, multi-head self-attention with every pixel a token, plus the residual. */
export class AttentionBlock extends nn.Module implements nn.Layer {
  readonly norm: nn.GroupNorm;
  readonly attn: MultiHeadAttention;

  constructor(channels: number, headChannels: number, groups: number) {
    super();
    this.norm = this.register('norm', new nn.GroupNorm(groups, channels));
    this.attn = this.register('attn', new MultiHeadAttention(channels, channels / headChannels));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [b, c, h, w] = x.shape;
      // (B, C, H, W) → (B, H·W, C): pixels in row-major order.
      const tokens = this.norm
        .forward(x)
        .reshape(b, c, h * w)
        .transpose(1, 2);
      return this.attn.forward(tokens).transpose(1, 2).reshape(b, c, h, w).add(x);
    });
  }
}

/** Stride-2 3×3 convolution (halves even sizes exactly). */
export class Downsample extends nn.Module implements nn.Layer {
  readonly conv: nn.Conv2d;
  constructor(channels: number) {
    super();
    this.conv = this.register('conv', conv3x3(channels, channels, 2));
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

/** Nearest-neighbour ×2, then a 3×3 convolution (no checkerboard artefacts of transposed convolutions). */
export class Upsample extends nn.Module implements nn.Layer {
  readonly conv: nn.Conv2d;
  constructor(channels: number) {
    super();
    this.conv = this.register('conv', conv3x3(channels, channels));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.conv.forward(F.interpolate(x, { scaleFactor: 2, mode: 'nearest' })));
  }
}

/** GroupNorm, SiLU and a 3×3 convolution: the output head of the encoder, decoder and U-Net. */
export function outputHead(cin: number, cout: number, groups: number): nn.Sequential {
  return new nn.Sequential(new nn.GroupNorm(groups, cin), new nn.SiLU(), conv3x3(cin, cout));
}

/** Residual block, attention, residual block at the coarsest level (LDM's middle block). */
export class MiddleBlock extends nn.Module implements nn.Layer {
  readonly res1: ResBlock;
  readonly attn: AttentionBlock;
  readonly res2: ResBlock;

  constructor(channels: number, headChannels: number, groups: number, embDim = 0) {
    super();
    this.res1 = this.register('res1', new ResBlock(channels, channels, groups, embDim));
    this.attn = this.register('attn', new AttentionBlock(channels, headChannels, groups));
    this.res2 = this.register('res2', new ResBlock(channels, channels, groups, embDim));
  }

  forward(x: Tensor, emb?: Tensor): Tensor {
    return tidy(() => this.res2.forward(this.attn.forward(this.res1.forward(x, emb)), emb));
  }
}
