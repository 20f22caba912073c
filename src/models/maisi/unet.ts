/**
 * MAISI's 3D diffusion U-Net (MONAI `DiffusionModelUNetMaisi`): sinusoidal timestep embedding through an
 * MLP, body-region (top, bottom) and spacing embeddings concatenated to it, a four-level encoder of
 * resnet blocks (self-attention at the deeper levels), a middle block, and a decoder consuming the
 * encoder's skip tensors. State-dict keys are MONAI's, so MAISI checkpoints load unchanged.
 *
 * `forwardWithTaps` returns named intermediate activations — MedDIFT's descriptors are the decoder
 * up-block outputs (`up_block_0` … `up_block_3`, each after its upsampler) — and stops after the last
 * one requested.
 */
import { cat, nn, tensor, tidy, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { timestepEmbedding } from '../blocks/embedding.ts';
import { DownBlock, MidBlock, MonaiConvolution, UpBlock } from './blocks.ts';
import { checkUNetConfig, MAISI_V1_UNET, type UNetMaisiConfig } from './config.ts';

/** MAISI's body regions; top and bottom region inputs are one-hot vectors over these. */
export const BODY_REGIONS = ['head', 'chest', 'abdomen', 'lower-body'] as const;
export type BodyRegion = (typeof BODY_REGIONS)[number];

export interface UNetConditioning {
  /** (B, 4): one-hot region of the volume's top, ×100 (MAISI's input scaling). */
  topRegionIndex?: Tensor;
  /** (B, 4): one-hot region of the volume's bottom, ×100. */
  bottomRegionIndex?: Tensor;
  /** (B, 3): voxel spacing in mm (x, y, z), ×100. */
  spacing?: Tensor;
}

/** Activations `forwardWithTaps` can return. */
export type UNetTap =
  | 't_emb_sinusoidal'
  | 'emb_time'
  | 'emb_top_region'
  | 'emb_bottom_region'
  | 'emb_spacing'
  | 'emb'
  | 'conv_in'
  | `down_block_${number}`
  | 'middle_block'
  | `up_block_${number}`
  | 'out';

/**
 * The conditioning tensors MAISI expects, built as MAISI's own scripts (and MedDIFT) build them: one-hot
 * regions and the spacing in mm, multiplied by 100 and rounded to float16 (then held as float32).
 */
export function maisiConditioning(
  top: BodyRegion,
  bottom: BodyRegion,
  spacingMm: readonly [number, number, number],
  batch = 1,
): Required<UNetConditioning> {
  const oneHot = (r: BodyRegion, name: string) => {
    const i = BODY_REGIONS.indexOf(r);
    if (i < 0) fail(name, `expected one of ${BODY_REGIONS.join(', ')}, got ${JSON.stringify(r)}`);
    return BODY_REGIONS.map((_, j) => (j === i ? 100 : 0));
  };
  const rows = (v: number[]) => Array.from({ length: batch }, () => v);
  return tidy(() => ({
    topRegionIndex: tensor(rows(oneHot(top, 'top region'))),
    bottomRegionIndex: tensor(rows(oneHot(bottom, 'bottom region'))),
    spacing: tensor(rows(spacingMm.map((s) => s * 100)))
      .half()
      .float(),
  }));
}

function embeddingMlp(input: number, dim: number): nn.Sequential {
  return new nn.Sequential(new nn.Linear(input, dim), new nn.SiLU(), new nn.Linear(dim, dim));
}

export class DiffusionModelUNetMaisi extends nn.Module {
  readonly config: UNetMaisiConfig;
  readonly convIn: MonaiConvolution;
  readonly timeEmbed: nn.Sequential;
  readonly topRegionIndexLayer: nn.Sequential | null;
  readonly bottomRegionIndexLayer: nn.Sequential | null;
  readonly spacingLayer: nn.Sequential | null;
  readonly downBlocks: nn.ModuleList<DownBlock>;
  readonly middleBlock: MidBlock;
  readonly upBlocks: nn.ModuleList<UpBlock>;
  readonly out: nn.Sequential;

  constructor(config: UNetMaisiConfig = MAISI_V1_UNET) {
    super();
    const c = checkUNetConfig(config);
    this.config = c;
    const ch = c.numChannels;
    const levels = ch.length;
    const timeDim = ch[0] * 4;
    this.convIn = this.register('conv_in', new MonaiConvolution(c.inChannels, ch[0], 3, { padding: 1 }));
    this.timeEmbed = this.register('time_embed', embeddingMlp(ch[0], timeDim));
    this.topRegionIndexLayer = c.includeTopRegionIndexInput
      ? this.register('top_region_index_layer', embeddingMlp(4, timeDim))
      : null;
    this.bottomRegionIndexLayer = c.includeBottomRegionIndexInput
      ? this.register('bottom_region_index_layer', embeddingMlp(4, timeDim))
      : null;
    this.spacingLayer = c.includeSpacingInput
      ? this.register('spacing_layer', embeddingMlp(3, timeDim))
      : null;
    const tembChannels =
      timeDim *
      (1 + [this.topRegionIndexLayer, this.bottomRegionIndexLayer, this.spacingLayer].filter(Boolean).length);
    const shape = (level: number) => ({
      groups: c.normNumGroups,
      eps: c.normEps,
      tembChannels,
      headChannels: c.attentionLevels[level] ? c.numHeadChannels[level] : 0,
    });

    const down: DownBlock[] = [];
    for (let i = 0; i < levels; i++) {
      down.push(
        new DownBlock(i === 0 ? ch[0] : ch[i - 1], ch[i], c.numResBlocks[i], i < levels - 1, shape(i)),
      );
    }
    this.downBlocks = this.register('down_blocks', new nn.ModuleList(down));
    this.middleBlock = this.register(
      'middle_block',
      new MidBlock(ch[levels - 1], { ...shape(levels - 1), headChannels: c.numHeadChannels[levels - 1] }),
    );

    const up: UpBlock[] = [];
    for (let i = 0; i < levels; i++) {
      const level = levels - 1 - i;
      const prevOut = ch[Math.min(level + 1, levels - 1)];
      const input = ch[Math.max(level - 1, 0)];
      up.push(
        new UpBlock(input, prevOut, ch[level], c.numResBlocks[level] + 1, i < levels - 1, shape(level)),
      );
    }
    this.upBlocks = this.register('up_blocks', new nn.ModuleList(up));
    this.out = this.register(
      'out',
      new nn.Sequential(
        new nn.GroupNorm(c.normNumGroups, ch[0], { eps: c.normEps }),
        new nn.SiLU(),
        new MonaiConvolution(ch[0], c.outChannels, 3, { padding: 1 }),
      ),
    );
  }

  /** The predicted noise (or whatever the model was trained to output). */
  forward(x: Tensor, timesteps: Tensor, conditioning: UNetConditioning = {}): Tensor {
    const taps = this.forwardWithTaps(x, timesteps, conditioning, ['out']);
    return taps.get('out') as Tensor;
  }

  /**
   * Runs the network and returns the requested activations by name; computation stops after the last
   * one needed (MedDIFT's decoder taps skip the output head). Wrap in `noGrad` for inference.
   */
  forwardWithTaps(
    x: Tensor,
    timesteps: Tensor,
    conditioning: UNetConditioning,
    taps: readonly UNetTap[],
  ): Map<UNetTap, Tensor> {
    const levels = this.config.numChannels.length;
    const order: UNetTap[] = [
      't_emb_sinusoidal',
      'emb_time',
      'emb_top_region',
      'emb_bottom_region',
      'emb_spacing',
      'emb',
      'conv_in',
      ...Array.from({ length: levels }, (_, i) => `down_block_${i}` as UNetTap),
      'middle_block',
      ...Array.from({ length: levels }, (_, i) => `up_block_${i}` as UNetTap),
      'out',
    ];
    const wanted = new Set(taps);
    for (const t of taps)
      if (!order.includes(t)) fail('tap', `expected one of ${order.join(', ')}, got ${JSON.stringify(t)}`);
    this.checkInputs(x, timesteps, conditioning);
    const last = Math.max(...taps.map((t) => order.indexOf(t)));
    const result = new Map<UNetTap, Tensor>();
    // Records an activation; returns true once nothing further is needed.
    const record = (name: UNetTap, value: Tensor): boolean => {
      if (wanted.has(name)) result.set(name, value);
      return order.indexOf(name) >= last;
    };
    return tidy(() => {
      const tEmb = timestepEmbedding(timesteps, this.config.numChannels[0]);
      if (record('t_emb_sinusoidal', tEmb)) return result;
      const parts = [this.timeEmbed.forward(tEmb)];
      if (record('emb_time', parts[0])) return result;
      const inputs: [nn.Sequential | null, Tensor | undefined, UNetTap][] = [
        [this.topRegionIndexLayer, conditioning.topRegionIndex, 'emb_top_region'],
        [this.bottomRegionIndexLayer, conditioning.bottomRegionIndex, 'emb_bottom_region'],
        [this.spacingLayer, conditioning.spacing, 'emb_spacing'],
      ];
      for (const [layer, input, name] of inputs) {
        if (!layer || !input) continue;
        parts.push(layer.forward(input.float()));
        if (record(name, parts[parts.length - 1])) return result;
      }
      const emb = cat(parts, 1);
      if (record('emb', emb)) return result;
      let h = this.convIn.forward(x);
      if (record('conv_in', h)) return result;
      const skips: Tensor[] = [h];
      for (const [i, block] of [...this.downBlocks].entries()) {
        const { hidden, skips: s } = block.forward(h, emb);
        skips.push(...s);
        h = hidden;
        if (record(`down_block_${i}`, h)) return result;
      }
      h = this.middleBlock.forward(h, emb);
      if (record('middle_block', h)) return result;
      for (const [i, block] of [...this.upBlocks].entries()) {
        h = block.forward(h, skips, emb);
        if (record(`up_block_${i}`, h)) return result;
      }
      record('out', this.out.forward(h));
      return result;
    });
  }

  private checkInputs(x: Tensor, timesteps: Tensor, c: UNetConditioning): void {
    const cfg = this.config;
    if (x.ndim !== 5 || x.shape[1] !== cfg.inChannels) {
      fail('U-Net input', `expected shape (B, ${cfg.inChannels}, X, Y, Z), got (${x.shape.join(', ')})`);
    }
    const factor = 2 ** (cfg.numChannels.length - 1);
    if (x.shape.slice(2).some((s) => s % factor !== 0)) {
      fail('U-Net input', `spatial size must be divisible by ${factor}, got ${x.shape.slice(2).join('x')}`);
    }
    if (timesteps.ndim !== 1 || timesteps.shape[0] !== x.shape[0]) {
      fail('timesteps', `expected shape (${x.shape[0]}), got (${timesteps.shape.join(', ')})`);
    }
    const need: [boolean, Tensor | undefined, string, number][] = [
      [cfg.includeTopRegionIndexInput, c.topRegionIndex, 'top region index', 4],
      [cfg.includeBottomRegionIndexInput, c.bottomRegionIndex, 'bottom region index', 4],
      [cfg.includeSpacingInput, c.spacing, 'spacing', 3],
    ];
    for (const [on, t, name, width] of need) {
      if (!on) continue;
      if (!t) fail(name, 'required by this U-Net (its configuration includes it)');
      if (t.ndim !== 2 || t.shape[0] !== x.shape[0] || t.shape[1] !== width) {
        fail(name, `expected shape (${x.shape[0]}, ${width}), got (${t.shape.join(', ')})`);
      }
    }
  }
}
