/**
 * LDM-Morph's latent-and-global cross-attention (LGCA) at one scale: the Swin stream's tokens and the
 * adapted LDM features exchange information by shifted-window cross-attention in both directions —
 * Swin queries attend to LDM keys and values, LDM queries to Swin keys and values — then the two
 * streams are fused.
 *
 * As in the authors' code, one set of block weights serves both directions (the adapters bring the
 * LDM features to the Swin stream's width, and the shared LayerNorm to its scale), which halves the
 * parameters and lets both directions run as one batch: the streams are stacked on the batch axis
 * and each half takes the other half as context. Unlike the authors' block, whose residual is the
 * key/value stream, each stream here keeps its own residual and is updated by its own queries
 * (the transformer decoder's cross-attention), so every block's output is a refined version of its
 * query stream.
 *
 * Fusion: concatenation, LayerNorm, linear back to C (as patch merging reduces). A sum would force
 * the two residual streams into one channel basis; the linear map weighs them per channel for 2C²
 * weights, a sixth of one cross-attention block. The no-LGCA ablation uses the same fusion on the
 * unattended streams, so it differs from the full model by the cross-attention alone.
 *
 * Features are channels-last, (B, H, W, C).
 */
import { cat, nn, tidy, type Tensor } from '../../engine/index.ts';
import { swinBlocks, SwinTransformerBlock } from '../blocks/index.ts';
import type { StageLayout } from './config.ts';
import { initTransformer, QKV_BIAS } from './swin.ts';

/** (2B, ...) → the two halves of the batch swapped. */
function swapHalves(x: Tensor): Tensor {
  const b = x.shape[0] / 2;
  return cat([x.narrow(0, b, b), x.narrow(0, 0, b)], 0);
}

/** A Swin block whose window attention takes keys and values from the other stream. */
export class CrossWindowBlock extends SwinTransformerBlock {
  constructor(layout: StageLayout, shift: number[], mlpRatio: number) {
    super({ ...layout, shift, mlpRatio, qkvBias: QKV_BIAS, contextDim: layout.dim });
  }

  /** x (2B, H, W, C): the Swin stream's B maps, then the LDM stream's; each half attends to the other. */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const normed = this.norm1.forward(x);
      const attended = this.windows.attend(this.attn, this.positionBias, normed, swapHalves(normed));
      return this.feedForward(x.add(attended));
    });
  }
}

/** The two streams concatenated along channels, normalised, projected back to C. */
export class Fusion extends nn.Module {
  readonly norm: nn.LayerNorm;
  readonly reduction: nn.Linear;

  constructor(dim: number) {
    super();
    this.norm = this.register('norm', new nn.LayerNorm(2 * dim));
    this.reduction = this.register('reduction', new nn.Linear(2 * dim, dim));
    initTransformer(this);
  }

  forward(swin: Tensor, ldm: Tensor): Tensor {
    return tidy(() => this.reduction.forward(this.norm.forward(cat([swin, ldm], -1))));
  }
}

export class Lgca extends nn.Module {
  readonly blocks: nn.ModuleList<CrossWindowBlock>;
  readonly fusion: Fusion;

  /** `depth` blocks, unshifted and shifted windows alternating (the authors: one Swin layer of 2). */
  constructor(layout: StageLayout, o: { depth: number; mlpRatio: number }) {
    super();
    this.blocks = this.register(
      'blocks',
      swinBlocks(o.depth, layout.shift, (shift) => new CrossWindowBlock(layout, shift, o.mlpRatio)),
    );
    initTransformer(this.blocks);
    this.fusion = this.register('fusion', new Fusion(layout.dim));
  }

  /** swin and ldm (B, H, W, C) → the fused features (B, H, W, C). */
  forward(swin: Tensor, ldm: Tensor): Tensor {
    return tidy(() => {
      const b = swin.shape[0];
      let x = cat([swin, ldm], 0);
      for (const block of this.blocks) x = block.forward(x);
      return this.fusion.forward(x.narrow(0, 0, b), x.narrow(0, b, b));
    });
  }
}
