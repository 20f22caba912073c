/**
 * Building blocks of MONAI's diffusion U-Net as MAISI configures it, with MONAI's module names so that
 * state-dict keys match (`resnets.0.conv1.conv.weight`, `attentions.1.attn.to_q.bias`, ...).
 * Each forward runs inside `tidy`, so intermediates are freed as soon as a block returns.
 */
import { F, cat, nn, tidy, type Tensor } from '../../engine/index.ts';
import { pipe } from '../../engine/index.ts';

/** MONAI's `Convolution(conv_only=True)`: a plain convolution held under the name `conv`. */
export class MonaiConvolution extends nn.Module implements nn.Layer {
  readonly conv: nn.Conv3d;
  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: number,
    opts: { stride?: number; padding?: number } = {},
  ) {
    super();
    this.conv = this.register('conv', new nn.Conv3d(inChannels, outChannels, kernelSize, opts));
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

/** Residual block with timestep conditioning (MONAI's DiffusionUNetResnetBlock). */
export class ResnetBlock extends nn.Module {
  readonly norm1: nn.GroupNorm;
  readonly conv1: MonaiConvolution;
  readonly timeEmbProj: nn.Linear;
  readonly norm2: nn.GroupNorm;
  readonly conv2: MonaiConvolution;
  readonly skipConnection: MonaiConvolution | null;

  constructor(inChannels: number, outChannels: number, tembChannels: number, groups: number, eps: number) {
    super();
    this.norm1 = this.register('norm1', new nn.GroupNorm(groups, inChannels, { eps }));
    this.conv1 = this.register('conv1', new MonaiConvolution(inChannels, outChannels, 3, { padding: 1 }));
    this.timeEmbProj = this.register('time_emb_proj', new nn.Linear(tembChannels, outChannels));
    this.norm2 = this.register('norm2', new nn.GroupNorm(groups, outChannels, { eps }));
    this.conv2 = this.register('conv2', new MonaiConvolution(outChannels, outChannels, 3, { padding: 1 }));
    this.skipConnection =
      inChannels === outChannels
        ? null
        : this.register('skip_connection', new MonaiConvolution(inChannels, outChannels, 1));
  }

  forward(x: Tensor, emb: Tensor): Tensor {
    const temb = tidy(() => {
      const t = this.timeEmbProj.forward(emb.silu());
      return t.reshape(t.shape[0], t.shape[1], 1, 1, 1);
    });
    const h = pipe(
      x,
      (t) => this.norm1.forward(t),
      (t) => t.silu(),
      (t) => this.conv1.forward(t),
      (t) => t.add(temb),
      (t) => this.norm2.forward(t),
      (t) => t.silu(),
      (t) => this.conv2.forward(t),
    );
    temb.dispose();
    const skip = this.skipConnection ? this.skipConnection.forward(x) : x;
    const out = skip.add(h);
    h.dispose();
    if (skip !== x) skip.dispose();
    return out;
  }
}

/** q, k, v projections with bias and no output projection (MONAI SABlock, include_fc=False). */
export class SelfAttention extends nn.Module {
  readonly toQ: nn.Linear;
  readonly toK: nn.Linear;
  readonly toV: nn.Linear;
  constructor(
    channels: number,
    readonly numHeads: number,
  ) {
    super();
    this.toQ = this.register('to_q', new nn.Linear(channels, channels));
    this.toK = this.register('to_k', new nn.Linear(channels, channels));
    this.toV = this.register('to_v', new nn.Linear(channels, channels));
  }

  /** x: (B, N, C) tokens → (B, N, C). Heads split head-major along channels (channel = head·d + j). */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [b, n, c] = x.shape;
      const d = c / this.numHeads;
      const heads = (t: Tensor) => t.reshape(b, n, this.numHeads, d).permute(0, 2, 1, 3);
      const out = F.scaledDotProductAttention(
        heads(this.toQ.forward(x)),
        heads(this.toK.forward(x)),
        heads(this.toV.forward(x)),
      );
      return out.permute(0, 2, 1, 3).reshape(b, n, c);
    });
  }
}

/** GroupNorm then self-attention over all voxels, plus the residual (MONAI SpatialAttentionBlock). */
export class SpatialAttentionBlock extends nn.Module {
  readonly norm: nn.GroupNorm;
  readonly attn: SelfAttention;
  constructor(channels: number, headChannels: number, groups: number, eps: number) {
    super();
    this.norm = this.register('norm', new nn.GroupNorm(groups, channels, { eps }));
    this.attn = this.register('attn', new SelfAttention(channels, channels / headChannels));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [b, c, ...spatial] = x.shape;
      // Tokens are the voxels in C order: (B, C, S0, S1, S2) → (B, S0·S1·S2, C).
      const tokens = this.norm.forward(x).reshape(b, c, -1).transpose(1, 2);
      const y = this.attn
        .forward(tokens)
        .transpose(1, 2)
        .reshape(b, c, ...spatial);
      return y.add(x);
    });
  }
}

/** Stride-2 3×3×3 convolution with padding 1 (MONAI DiffusionUnetDownsample, use_conv=True). */
export class Downsample extends nn.Module implements nn.Layer {
  readonly op: MonaiConvolution;
  constructor(channels: number) {
    super();
    this.op = this.register('op', new MonaiConvolution(channels, channels, 3, { stride: 2, padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    return this.op.forward(x);
  }
}

/** Nearest-neighbour ×2 then a 3×3×3 convolution (MONAI Upsample "nontrainable" with post_conv). */
export class ConvUpsample extends nn.Module implements nn.Layer {
  readonly postconv: MonaiConvolution;
  constructor(channels: number) {
    super();
    this.postconv = this.register('postconv', new MonaiConvolution(channels, channels, 3, { padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    return pipe(
      x,
      (t) => F.interpolate(t, { scaleFactor: 2, mode: 'nearest' }),
      (t) => this.postconv.forward(t),
    );
  }
}

export interface BlockShape {
  groups: number;
  eps: number;
  tembChannels: number;
  /** Channels per attention head, or 0 for a level without attention. */
  headChannels: number;
}

/** Encoder level: resnets (each followed by attention at attention levels), then the downsampler. */
export class DownBlock extends nn.Module {
  readonly attentions: nn.ModuleList<SpatialAttentionBlock> | null;
  readonly resnets: nn.ModuleList<ResnetBlock>;
  readonly downsampler: Downsample | null;

  constructor(
    inChannels: number,
    outChannels: number,
    numResBlocks: number,
    addDownsample: boolean,
    s: BlockShape,
  ) {
    super();
    const resnets = Array.from(
      { length: numResBlocks },
      (_, i) =>
        new ResnetBlock(i === 0 ? inChannels : outChannels, outChannels, s.tembChannels, s.groups, s.eps),
    );
    // MONAI registers `attentions` before `resnets` in attention blocks: that is the checkpoint order.
    this.attentions =
      s.headChannels > 0
        ? this.register(
            'attentions',
            new nn.ModuleList(
              resnets.map(() => new SpatialAttentionBlock(outChannels, s.headChannels, s.groups, s.eps)),
            ),
          )
        : null;
    this.resnets = this.register('resnets', new nn.ModuleList(resnets));
    this.downsampler = addDownsample ? this.register('downsampler', new Downsample(outChannels)) : null;
  }

  /** Returns the hidden state and the skip tensors it produced (one per resnet, plus the downsampled one). */
  forward(x: Tensor, emb: Tensor): { hidden: Tensor; skips: Tensor[] } {
    const skips: Tensor[] = [];
    let h = x;
    [...this.resnets].forEach((resnet, i) => {
      h = tidy(() => {
        const r = resnet.forward(h, emb);
        return this.attentions ? this.attentions.at(i).forward(r) : r;
      });
      skips.push(h);
    });
    if (this.downsampler) {
      h = this.downsampler.forward(h);
      skips.push(h);
    }
    return { hidden: h, skips };
  }
}

/** Middle block: resnet, attention, resnet (MONAI AttnMidBlock). */
export class MidBlock extends nn.Module {
  readonly resnet1: ResnetBlock;
  readonly attention: SpatialAttentionBlock;
  readonly resnet2: ResnetBlock;
  constructor(channels: number, s: BlockShape) {
    super();
    this.resnet1 = this.register(
      'resnet_1',
      new ResnetBlock(channels, channels, s.tembChannels, s.groups, s.eps),
    );
    this.attention = this.register(
      'attention',
      new SpatialAttentionBlock(channels, s.headChannels, s.groups, s.eps),
    );
    this.resnet2 = this.register(
      'resnet_2',
      new ResnetBlock(channels, channels, s.tembChannels, s.groups, s.eps),
    );
  }
  forward(x: Tensor, emb: Tensor): Tensor {
    return tidy(() => this.resnet2.forward(this.attention.forward(this.resnet1.forward(x, emb)), emb));
  }
}

/**
 * Decoder level: each resnet takes the hidden state concatenated (after it, along channels) with the
 * most recent unused skip tensor; attention follows each resnet at attention levels; then the upsampler.
 */
export class UpBlock extends nn.Module {
  readonly resnets: nn.ModuleList<ResnetBlock>;
  readonly attentions: nn.ModuleList<SpatialAttentionBlock> | null;
  readonly upsampler: ConvUpsample | null;

  constructor(
    inChannels: number,
    prevOutputChannels: number,
    outChannels: number,
    numResBlocks: number,
    addUpsample: boolean,
    s: BlockShape,
  ) {
    super();
    const resnets = Array.from({ length: numResBlocks }, (_, i) => {
      const skipChannels = i === numResBlocks - 1 ? inChannels : outChannels;
      const resnetIn = i === 0 ? prevOutputChannels : outChannels;
      return new ResnetBlock(resnetIn + skipChannels, outChannels, s.tembChannels, s.groups, s.eps);
    });
    this.resnets = this.register('resnets', new nn.ModuleList(resnets));
    this.attentions =
      s.headChannels > 0
        ? this.register(
            'attentions',
            new nn.ModuleList(
              resnets.map(() => new SpatialAttentionBlock(outChannels, s.headChannels, s.groups, s.eps)),
            ),
          )
        : null;
    this.upsampler = addUpsample ? this.register('upsampler', new ConvUpsample(outChannels)) : null;
  }

  /** `skips` is consumed from its end (last in, first out). */
  forward(x: Tensor, skips: Tensor[], emb: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      [...this.resnets].forEach((resnet, i) => {
        const skip = skips.pop();
        if (!skip) throw new Error('UpBlock: ran out of skip connections');
        h = resnet.forward(cat([h, skip], 1), emb);
        if (this.attentions) h = this.attentions.at(i).forward(h);
      });
      return this.upsampler ? this.upsampler.forward(h) : h;
    });
  }
}
