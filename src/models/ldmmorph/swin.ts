/**
 * LDM-Morph's Swin stream: TransMorph's 2-D Swin transformer on the concatenated image pair, its token
 * grids padded at the end to whole windows (zero tokens, as Swin pads).
 *
 * Features are channels-last, (B, H, W, C), between blocks.
 */
import { nn, tidy, type Tensor } from '../../engine/index.ts';
import { PatchMerging, swinBlocks, SwinTransformerBlock } from '../blocks/index.ts';
import type { StageLayout } from './config.ts';

/** The authors' configurations leave the q, k, v projections without bias. */
export const QKV_BIAS = false;

/** Swin's initialisation of a transformer's linear layers: truncated normal (std 0.02), zero bias. */
export function initTransformer(module: nn.Module): void {
  for (const m of module.modules()) {
    if (m instanceof nn.Linear) {
      nn.init.truncNormal_(m.weight, { std: 0.02 });
      if (m.bias) nn.init.constant_(m.bias, 0);
    }
  }
}

/** Swin's block: (shifted-)window self-attention and an MLP, each pre-normalised and residual. */
export class SwinBlock extends SwinTransformerBlock {
  constructor(layout: StageLayout, shift: number[], mlpRatio: number) {
    super({ ...layout, shift, mlpRatio, qkvBias: QKV_BIAS });
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const attended = this.windows.attend(this.attn, this.positionBias, this.norm1.forward(x));
      return this.feedForward(x.add(attended));
    });
  }
}

/** A stage: its blocks, unshifted and shifted windows alternating, then patch merging when it has one. */
export class SwinStage extends nn.Module {
  readonly blocks: nn.ModuleList<SwinBlock>;
  readonly downsample: PatchMerging | null;

  constructor(layout: StageLayout, mlpRatio: number, downsample: boolean) {
    super();
    this.blocks = this.register(
      'blocks',
      swinBlocks(layout.depth, layout.shift, (shift) => new SwinBlock(layout, shift, mlpRatio)),
    );
    this.downsample = this.register('downsample', downsample ? new PatchMerging(layout.dim, 2) : null);
  }
}

/** Patch embedding (convolution, LayerNorm), then the stages; each stage's output normalised (TransMorph). */
export class SwinTransformer extends nn.Module {
  readonly patchEmbed: nn.Conv2d;
  readonly patchNorm: nn.LayerNorm;
  readonly layers: nn.ModuleList<SwinStage>;
  readonly norms: nn.ModuleList<nn.LayerNorm>;

  constructor(layouts: StageLayout[], o: { inChannels: number; patchSize: number; mlpRatio: number }) {
    super();
    const embed = layouts[0].dim;
    const p = o.patchSize;
    this.patchEmbed = this.register('patch_embed', new nn.Conv2d(o.inChannels, embed, p, { stride: p }));
    this.patchNorm = this.register('patch_norm', new nn.LayerNorm(embed));
    const last = layouts.length - 1;
    this.layers = this.register(
      'layers',
      new nn.ModuleList(layouts.map((l, s) => new SwinStage(l, o.mlpRatio, s !== last))),
    );
    this.norms = this.register('norms', new nn.ModuleList(layouts.map((l) => new nn.LayerNorm(l.dim))));
    initTransformer(this);
  }

  /** images (B, Cin, H, W) → each stage's normalised output, (B, h_s, w_s, C_s) channels-last. */
  forward(images: Tensor): Tensor[] {
    return tidy(() => {
      let x = this.patchNorm.forward(this.patchEmbed.forward(images).permute(0, 2, 3, 1));
      return [...this.layers].map((stage, s) => {
        for (const block of stage.blocks) x = block.forward(x);
        const out = this.norms.at(s).forward(x);
        if (stage.downsample) x = stage.downsample.forward(x);
        return out;
      });
    });
  }
}
