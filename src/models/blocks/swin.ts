/**
 * What the Swin transformers of the 2-D (LDM-Morph's TransMorph stream) and the 3-D networks
 * (DiffuseReg's Swin-UNETR encoders) share: the stages' geometry, the block's layers, the alternation
 * of regular and shifted windows over a stage's blocks, and patch merging.
 *
 * Features are channels-last, (B, ...spatial, C).
 */
import { cat, nn, tidy, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { MultiHeadAttention } from './attention.ts';
import { Mlp } from './mlp.ts';
import {
  clampWindow,
  padSpatialEnd,
  paddedGrid,
  RelativePositionBias,
  ShiftedWindows,
  type WindowGeometry,
} from './windows.ts';

/** One stage: width, heads and blocks, and the windows of its token grid. */
export interface StageGeometry extends WindowGeometry {
  dim: number;
  heads: number;
  depth: number;
  /** The shift of the odd (shifted-window) blocks; 0 on axes one window covers. */
  shift: number[];
  /** The grid padded at the end of each axis to a multiple of the window. */
  padded: number[];
}

export interface SwinStagesOptions {
  /** The first stage's token grid (the patch embedding's output). */
  grid: readonly number[];
  /** Channels of the first stage; stage s has embedDim·2^s. */
  embedDim: number;
  depths: readonly number[];
  heads: readonly number[];
  /** The attention window per axis, before clamping to small grids. */
  window: readonly number[];
  /** Pad grids to whole windows; false: a window that does not divide a grid is an error. */
  pad: boolean;
}

/**
 * Each stage's geometry; patch merging halves the grid between stages (odd sizes rounded up, as it
 * pads them). Throws a one-line DiffregError for heads that do not divide a width, and without `pad`
 * for a window that does not divide a grid.
 */
export function swinStages(o: SwinStagesOptions): StageGeometry[] {
  let grid = [...o.grid];
  return o.depths.map((depth, s) => {
    const dim = o.embedDim * 2 ** s;
    if (dim % o.heads[s] !== 0)
      fail('heads', `stage ${s}'s width ${dim} is not divisible by ${o.heads[s]} heads`);
    const { window, shift } = clampWindow(grid, o.window);
    const padded = paddedGrid(grid, window);
    if (!o.pad && padded.some((p, a) => p !== grid[a]))
      fail('window', `[${window.join(', ')}] does not divide stage ${s}'s token grid [${grid.join(', ')}]`);
    const stage = { dim, heads: o.heads[s], depth, grid, window, shift, padded };
    grid = grid.map((g) => Math.ceil(g / 2));
    return stage;
  });
}

/**
 * A stage's `depth` blocks: even ones on regular windows, odd ones on windows shifted by `shift`
 * (Swin's W-MSA and SW-MSA alternating).
 */
export function swinBlocks<M extends nn.Module>(
  depth: number,
  shift: number[],
  block: (shift: number[]) => M,
): nn.ModuleList<M> {
  const none = shift.map(() => 0);
  return new nn.ModuleList(Array.from({ length: depth }, (_, j) => block(j % 2 === 0 ? none : shift)));
}

export interface SwinTransformerBlockOptions extends WindowGeometry {
  dim: number;
  heads: number;
  mlpRatio: number;
  /** This block's shift: zeros for regular windows. */
  shift: number[];
  /** Bias of the q, k, v projections (Swin's qkv_bias, default true). */
  qkvBias?: boolean;
  /** Set for cross-attention: the width of the tokens keys and values come from. */
  contextDim?: number;
}

/**
 * The layers of Swin's block, in its state-dict order: LayerNorm, window attention with a
 * relative-position bias, LayerNorm, MLP. The networks' blocks differ in what they attend to, so each
 * writes its own forward from these and `feedForward`.
 */
export class SwinTransformerBlock extends nn.Module {
  readonly norm1: nn.LayerNorm;
  readonly positionBias: RelativePositionBias;
  readonly attn: MultiHeadAttention;
  readonly norm2: nn.LayerNorm;
  readonly mlp: Mlp;
  readonly windows: ShiftedWindows;

  constructor(o: SwinTransformerBlockOptions) {
    super();
    this.norm1 = this.register('norm1', new nn.LayerNorm(o.dim));
    this.positionBias = this.register('position_bias', new RelativePositionBias(o.window, o.heads));
    this.attn = this.register(
      'attn',
      new MultiHeadAttention(o.dim, o.heads, { qkvBias: o.qkvBias, contextDim: o.contextDim }),
    );
    this.norm2 = this.register('norm2', new nn.LayerNorm(o.dim));
    this.mlp = this.register('mlp', new Mlp(o.dim, Math.floor(o.dim * o.mlpRatio)));
    this.windows = this.register('windows', new ShiftedWindows(o, o.shift));
  }

  /** The block's second, residual half: y + MLP(norm2(y)). */
  feedForward(y: Tensor): Tensor {
    return tidy(() => y.add(this.mlp.forward(this.norm2.forward(y))));
  }
}

/**
 * The order of the 2^d neighbours whose channels patch merging concatenates, as MONAI's
 * PatchMergingV2: in 2-D the row offset varies fastest (Swin's x0…x3), in 3-D the last axis
 * (itertools.product).
 */
const MERGE_ORDER: Record<2 | 3, number[][]> = {
  2: [
    [0, 0],
    [1, 0],
    [0, 1],
    [1, 1],
  ],
  3: [0, 1].flatMap((i) => [0, 1].flatMap((j) => [0, 1].map((k) => [i, j, k]))),
};

/** Swin's patch merging: each 2×2 (×2) neighbourhood's channels concatenated, normalised, reduced to 2C. */
export class PatchMerging extends nn.Module {
  readonly reduction: nn.Linear;
  readonly norm: nn.LayerNorm;
  readonly #order: number[][];

  /** `spatialDims` 2 (Swin's images, the default) or 3 (volumes). */
  constructor(dim: number, spatialDims: 2 | 3 = 2) {
    super();
    this.#order = MERGE_ORDER[spatialDims];
    const width = this.#order.length * dim;
    this.reduction = this.register('reduction', new nn.Linear(width, 2 * dim, { bias: false }));
    this.norm = this.register('norm', new nn.LayerNorm(width));
  }

  /** (B, ...spatial, C) → (B, ...⌈spatial/2⌉, 2C). */
  forward(x: Tensor): Tensor {
    return tidy(() => this.reduction.forward(this.norm.forward(this.neighbourhoods(x))));
  }

  /**
   * (B, ...spatial, C) → (B, ...⌈spatial/2⌉, 2^d·C): each neighbourhood's channels side by side, in
   * MERGE_ORDER; odd axes are zero-padded at the end first.
   */
  neighbourhoods(x: Tensor): Tensor {
    return tidy(() => {
      const odd = x.shape.slice(1, -1).map((s) => s % 2);
      const padded = padSpatialEnd(x, odd);
      const every2nd = (t: Tensor, dim: number, start: number) => t.slice(dim, start, t.shape[dim], 2);
      const parts = this.#order.map((offsets) =>
        offsets.reduce((t, start, a) => every2nd(t, a + 1, start), padded),
      );
      return cat(parts, -1);
    });
  }
}
