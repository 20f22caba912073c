/**
 * DiffuseReg's two Swin encoders. The image encoder (one set of weights for moving and fixed) is a
 * plain 3-D Swin transformer; it hands each block's attention input to the flow encoder. In the flow
 * encoder's block, window attention runs over [time token | moving | fixed | flow] tokens of the same
 * window, with the relative-position bias and the shifted-window mask tiled over the three token
 * groups, and keeps the flow tokens.
 *
 * Features are channels-last, (B, w, h, d, C), between blocks.
 */
import { F, cat, nn, tidy, zeros, type Tensor } from '../../engine/index.ts';
import {
  PatchMerging,
  swinBlocks,
  SwinTransformerBlock,
  type StageGeometry,
  type SwinTransformerBlockOptions,
} from '../blocks/index.ts';
import { flowInputChannels, stageGeometry, type DenoiserConfig } from './config.ts';

/** What a flow-encoder block attends to besides its own tokens. */
export interface WindowCondition {
  /** The stage's time token, (B, C). */
  timeToken: Tensor;
  /** The image encoder's attention input of the same stage and block, (B, w, h, d, C). */
  moving: Tensor;
  fixed: Tensor;
}

/**
 * (G, N, N) → (G, N, 1 + 3N): a bias or mask between window positions, applied to keys of each of
 * the three token groups; the time token (first key) gets 0.
 */
function tileOverGroups(t: Tensor): Tensor {
  return tidy(() => {
    const [g, n] = t.shape;
    return cat([zeros([g, n, 1]), t, t, t], -1);
  });
}

export interface SwinBlockOptions extends SwinTransformerBlockOptions {
  /** Set for flow-encoder blocks: the width of the (activated) time embedding they take. */
  timeDim?: number;
}

/** Swin-UNETR's block; in the flow encoder with the time embedding and the images' tokens. */
export class SwinBlock extends SwinTransformerBlock {
  readonly time: nn.Linear | null;
  /** Flow-encoder blocks: the shifted-window mask tiled over the token groups; otherwise null. */
  readonly groupMask: Tensor | null;

  constructor(o: SwinBlockOptions) {
    super(o);
    this.time = this.register('time', o.timeDim === undefined ? null : new nn.Linear(o.timeDim, o.dim));
    const mask = this.windows.mask;
    const groupMask = this.time && mask ? tidy(() => tileOverGroups(mask)) : null;
    this.groupMask = this.registerBuffer('group_mask', groupMask, { persistent: false });
  }

  /**
   * x (B, w, h, d, C) → out, and `normed`, the block's attention input before the time embedding
   * (what the image encoder hands to the flow encoder). `time` is the activated time embedding (B, T).
   */
  forward(x: Tensor, cond?: WindowCondition & { time: Tensor }): { out: Tensor; normed: Tensor } {
    return tidy(() => {
      const normed = this.norm1.forward(x);
      let h = normed;
      if (this.time && cond) {
        const t = this.time.forward(cond.time);
        h = normed.add(t.reshape(t.shape[0], 1, 1, 1, -1));
      }
      return { out: this.feedForward(x.add(this.attend(h, cond))), normed };
    });
  }

  /** Shifted-window attention of the tokens h (B, w, h, d, C), conditioned when `cond` is given. */
  attend(h: Tensor, cond?: WindowCondition): Tensor {
    if (!cond) return this.windows.attend(this.attn, this.positionBias, h);
    return tidy(() => {
      const [b, , , , c] = h.shape;
      const n = this.windows.window.reduce((p, w) => p * w, 1);
      // The token groups stacked along channels: one roll and one partition for all three.
      const windows = this.windows.partition(cat([cond.moving, cond.fixed, h], -1));
      const count = windows.shape[0];
      const groups = windows
        .reshape(count, n, 3, c)
        .transpose(1, 2)
        .reshape(count, 3 * n, c);
      // Windows are ordered batch-slowest: each image's time token repeats over its windows.
      const time = cond.timeToken
        .unsqueeze(1)
        .expand(b, count / b, c)
        .reshape(count, 1, c);
      const out = this.attn.forward(cat([time, groups], 1), {
        bias: tileOverGroups(this.positionBias.forward()),
        mask: this.groupMask ?? undefined,
        queryTokens: n,
      });
      return this.windows.reverse(out);
    });
  }
}

/** A stage's blocks (unshifted and shifted windows alternating), then patch merging when it has one. */
export class SwinStage extends nn.Module {
  readonly blocks: nn.ModuleList<SwinBlock>;
  /** Flow encoder only: the stage's time token from the activated time embedding. */
  readonly timeToken: nn.Linear | null;
  readonly downsample: PatchMerging | null;

  constructor(
    g: StageGeometry,
    mlpRatio: number,
    opts: { blocks?: number; timeDim?: number; downsample: boolean },
  ) {
    super();
    this.blocks = this.register(
      'blocks',
      swinBlocks(
        opts.blocks ?? g.depth,
        g.shift,
        (shift) => new SwinBlock({ ...g, shift, mlpRatio, timeDim: opts.timeDim }),
      ),
    );
    this.timeToken = this.register(
      'time_token',
      opts.timeDim === undefined ? null : new nn.Linear(opts.timeDim, g.dim),
    );
    this.downsample = this.register('downsample', opts.downsample ? new PatchMerging(g.dim, 3) : null);
  }
}

/** Patch embedding, then Swin stages. */
abstract class SwinEncoder extends nn.Module {
  readonly patchEmbed: nn.Conv3d;
  readonly layers: nn.ModuleList<SwinStage>;

  constructor(c: DenoiserConfig, inChannels: number, stages: SwinStage[]) {
    super();
    const p = c.patchSize;
    this.patchEmbed = this.register(
      'patch_embed',
      new nn.Conv3d(inChannels, c.featureSize, p, { stride: p }),
    );
    this.layers = this.register('layers', new nn.ModuleList(stages));
  }

  /** (B, C, w, h, d) → channels-last tokens (B, w/p, h/p, d/p, featureSize). */
  protected embedPatches(x: Tensor): Tensor {
    return tidy(() => this.patchEmbed.forward(x).permute(0, 2, 3, 4, 1));
  }
}

/**
 * The shared image encoder. Only its blocks' attention inputs are used, so it stops at the last
 * block's norm1 (`last_norm`): the last block's attention and MLP and the last merging would have
 * no effect on the output.
 */
export class ImageEncoder extends SwinEncoder {
  readonly lastNorm: nn.LayerNorm;

  constructor(c: DenoiserConfig) {
    const stages = stageGeometry(c);
    const last = stages.length - 1;
    super(
      c,
      c.imageChannels,
      stages.map(
        (g, s) =>
          new SwinStage(g, c.mlpRatio, {
            blocks: s === last ? g.depth - 1 : g.depth,
            downsample: s !== last,
          }),
      ),
    );
    this.lastNorm = this.register('last_norm', new nn.LayerNorm(stages[last].dim));
  }

  /** images (B, C, w, h, d) → each stage's list of block attention inputs, (B, w, h, d, C) each. */
  forward(images: Tensor): Tensor[][] {
    return tidy(() => {
      let x = this.embedPatches(images);
      const records: Tensor[][] = [];
      for (const stage of this.layers) {
        const stageRecords: Tensor[] = [];
        for (const block of stage.blocks) {
          const { out, normed } = block.forward(x);
          stageRecords.push(normed);
          x = out;
        }
        if (stage.downsample) x = stage.downsample.forward(x);
        records.push(stageRecords);
      }
      records[records.length - 1].push(this.lastNorm.forward(x));
      return records;
    });
  }
}

/** The flow encoder: Swin-UNETR's swinViT with every block attending to the images and the time token. */
export class FlowEncoder extends SwinEncoder {
  /** Its blocks and time tokens take the activated time embedding, featureSize wide. */
  constructor(c: DenoiserConfig) {
    const timeDim = c.featureSize;
    super(
      c,
      flowInputChannels(c),
      stageGeometry(c).map((g) => new SwinStage(g, c.mlpRatio, { timeDim, downsample: true })),
    );
  }

  /**
   * flow (B, C, w, h, d) (with the images' channels when the configuration says so), the moving and fixed images' block inputs (ImageEncoder), the activated time
   * embedding (B, T) → the five hidden states of Swin-UNETR (patch embedding, then each stage after its
   * merging), layer-normalised without affine parameters, channels first.
   */
  forward(flow: Tensor, moving: Tensor[][], fixed: Tensor[][], time: Tensor): Tensor[] {
    return tidy(() => {
      let x = this.embedPatches(flow);
      const hidden = [x];
      [...this.layers].forEach((stage, s) => {
        const timeToken = (stage.timeToken as nn.Linear).forward(time);
        [...stage.blocks].forEach((block, j) => {
          x = block.forward(x, { time, timeToken, moving: moving[s][j], fixed: fixed[s][j] }).out;
        });
        x = (stage.downsample as PatchMerging).forward(x);
        hidden.push(x);
      });
      return hidden.map((t) => F.layerNorm(t, [t.shape[4]]).permute(0, 4, 1, 2, 3));
    });
  }
}
