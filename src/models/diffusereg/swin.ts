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
  Mlp,
  MultiHeadAttention,
  RelativePositionBias,
  shiftedWindowMask,
  windowPartition,
  windowReverse,
} from '../blocks/index.ts';
import { stageGeometry, type DenoiserConfig, type StageGeometry } from './config.ts';

const SPATIAL = [1, 2, 3];

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

export interface SwinBlockOptions {
  dim: number;
  heads: number;
  grid: number[];
  window: number[];
  shift: number[];
  mlpRatio: number;
  /** Set for flow-encoder blocks: the width of the (activated) time embedding they take. */
  timeDim?: number;
}

export class SwinBlock extends nn.Module {
  readonly norm1: nn.LayerNorm;
  readonly positionBias: RelativePositionBias;
  readonly attn: MultiHeadAttention;
  readonly norm2: nn.LayerNorm;
  readonly mlp: Mlp;
  readonly time: nn.Linear | null;
  /** The shifted-window mask (nW, N, N), tiled over the token groups in flow blocks; null unshifted. */
  readonly mask: Tensor | null;
  readonly grid: number[];
  readonly window: number[];
  readonly shift: number[];
  readonly #unshift: number[];

  constructor(o: SwinBlockOptions) {
    super();
    this.grid = o.grid;
    this.window = o.window;
    this.shift = o.shift;
    this.#unshift = o.shift.map((s) => -s);
    this.norm1 = this.register('norm1', new nn.LayerNorm(o.dim));
    this.positionBias = this.register('position_bias', new RelativePositionBias(o.window, o.heads));
    this.attn = this.register('attn', new MultiHeadAttention(o.dim, o.heads));
    this.norm2 = this.register('norm2', new nn.LayerNorm(o.dim));
    this.mlp = this.register('mlp', new Mlp(o.dim, Math.floor(o.dim * o.mlpRatio)));
    this.time = this.register('time', o.timeDim === undefined ? null : new nn.Linear(o.timeDim, o.dim));
    const shifted = o.shift.some((s) => s > 0);
    const mask = () => {
      const m = shiftedWindowMask(o.grid, o.window, o.shift);
      return this.time ? tileOverGroups(m) : m;
    };
    this.mask = this.registerBuffer('mask', shifted ? tidy(mask) : null, { persistent: false });
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
      const y = x.add(this.attend(h, cond));
      return { out: y.add(this.mlp.forward(this.norm2.forward(y))), normed };
    });
  }

  /** Shifted-window attention of the tokens h (B, w, h, d, C), conditioned when `cond` is given. */
  attend(h: Tensor, cond?: WindowCondition): Tensor {
    return tidy(() => {
      const [b, , , , c] = h.shape;
      const n = this.window.reduce((p, w) => p * w, 1);
      // The token groups stacked along channels: one roll and one partition for all three.
      const maps = cond ? cat([cond.moving, cond.fixed, h], -1) : h;
      const windows = windowPartition(this.mask ? maps.roll(this.#unshift, SPATIAL) : maps, this.window);
      const bias = this.positionBias.forward();
      const mask = this.mask ?? undefined;
      let out: Tensor;
      if (cond) {
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
        const tokens = cat([time, groups], 1);
        out = this.attn.forward(tokens, { bias: tileOverGroups(bias), mask, queryTokens: n });
      } else {
        out = this.attn.forward(windows, { bias, mask });
      }
      const back = windowReverse(out, this.window, this.grid);
      return this.mask ? back.roll(this.shift, SPATIAL) : back;
    });
  }
}

/** Swin's patch merging: each 2×2×2 neighbourhood's channels concatenated, normalised, reduced to 2C. */
export class PatchMerging extends nn.Module {
  readonly reduction: nn.Linear;
  readonly norm: nn.LayerNorm;

  constructor(dim: number) {
    super();
    this.reduction = this.register('reduction', new nn.Linear(8 * dim, 2 * dim, { bias: false }));
    this.norm = this.register('norm', new nn.LayerNorm(8 * dim));
  }

  /** (B, w, h, d, C) → (B, ⌈w/2⌉, ⌈h/2⌉, ⌈d/2⌉, 2C); odd axes are zero-padded at the end first. */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [, w, h, d] = x.shape;
      const padded = w % 2 || h % 2 || d % 2 ? F.pad(x, [0, 0, 0, d % 2, 0, h % 2, 0, w % 2]) : x;
      const every2nd = (t: Tensor, dim: number, start: number) => t.slice(dim, start, t.shape[dim], 2);
      const parts: Tensor[] = [];
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 2; j++)
          for (let k = 0; k < 2; k++) parts.push(every2nd(every2nd(every2nd(padded, 1, i), 2, j), 3, k));
      return this.reduction.forward(this.norm.forward(cat(parts, -1)));
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
    const noShift = g.shift.map(() => 0);
    this.blocks = this.register(
      'blocks',
      new nn.ModuleList(
        Array.from(
          { length: opts.blocks ?? g.depth },
          (_, j) =>
            new SwinBlock({
              dim: g.dim,
              heads: g.heads,
              grid: g.grid,
              window: g.window,
              shift: j % 2 === 0 ? noShift : g.shift,
              mlpRatio,
              timeDim: opts.timeDim,
            }),
        ),
      ),
    );
    this.timeToken = this.register(
      'time_token',
      opts.timeDim === undefined ? null : new nn.Linear(opts.timeDim, g.dim),
    );
    this.downsample = this.register('downsample', opts.downsample ? new PatchMerging(g.dim) : null);
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
      c.flowChannels,
      stageGeometry(c).map((g) => new SwinStage(g, c.mlpRatio, { timeDim, downsample: true })),
    );
  }

  /**
   * flow (B, C, w, h, d), the moving and fixed images' block inputs (ImageEncoder), the activated time
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
