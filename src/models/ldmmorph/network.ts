/**
 * LDM-Morph (Wu et al., Pattern Recognition 2026): unsupervised 2-D registration whose encoder joins
 * a TransMorph-style Swin transformer on the image pair with the features a latent diffusion model's
 * U-Net gives for both images, by cross-attention (LGCA) at each of four scales; TransMorph's
 * decoder turns the fused scales into a displacement.
 *
 * Output: the displacement (B, 2, H, W) in pixels, component a along tensor axis 2 + a, pull-back —
 * warped(p) = moving(p + u(p)) — as VoxelMorph's output and spatialTransformer's input. Softsign bounds
 * each component below half the image's extent on that axis, (n − 1)/2.
 */
import { F, cat, nn, tidy, type Tensor } from '../../engine/index.ts';
import { invalid } from '../../util/is.ts';
import { ldmMorphConfig, stageLayouts, STAGES, type LdmMorphConfig, type StageLayout } from './config.ts';
import { ConvNormAct, DecoderBlock, RegistrationHead } from './decoder.ts';
import { Fusion, Lgca } from './lgca.ts';
import { SwinTransformer } from './swin.ts';

/** The authors' adapter: a convolution to the Swin stream's width at that scale, and PReLU. */
export class Adapter extends nn.Module {
  readonly conv: nn.Conv2d;
  readonly act: nn.PReLU;

  constructor(inChannels: number, outChannels: number, kernel: number) {
    super();
    this.conv = this.register(
      'conv',
      new nn.Conv2d(inChannels, outChannels, kernel, { padding: kernel >> 1 }),
    );
    this.act = this.register('act', new nn.PReLU());
  }

  /** (B, Cin, h, w) → channels-last (B, h, w, C). */
  forward(x: Tensor): Tensor {
    return tidy(() => this.act.forward(this.conv.forward(x)).permute(0, 2, 3, 1));
  }
}

const shapeOf = (t: Tensor) => [...t.shape];
const same = (a: readonly number[], b: readonly number[]) => a.join() === b.join();

export class LdmMorph extends nn.Module {
  readonly config: LdmMorphConfig;
  readonly layouts: StageLayout[];
  readonly transformer: SwinTransformer;
  readonly adapters: nn.ModuleList<Adapter> | null;
  /** Per scale: the LGCA, or with `lgca: false` its fusion alone; null without LDM features. */
  readonly lgca: nn.ModuleList<Lgca> | null;
  readonly fusion: nn.ModuleList<Fusion> | null;
  readonly halfResSkip: ConvNormAct;
  readonly fullResSkip: ConvNormAct;
  /** From the coarsest scale up: to the three finer scales, then half and full resolution. */
  readonly decoder: nn.ModuleList<DecoderBlock>;
  readonly regHead: RegistrationHead;

  constructor(config: Partial<LdmMorphConfig> = {}) {
    super();
    const c = ldmMorphConfig(config);
    this.config = c;
    const layouts = stageLayouts(c);
    this.layouts = layouts;
    this.transformer = this.register(
      'transformer',
      new SwinTransformer(layouts, { inChannels: 2, patchSize: c.patchSize, mlpRatio: c.mlpRatio }),
    );
    const perScale = <M extends nn.Module>(make: (l: StageLayout, s: number) => M, on: boolean) =>
      on ? new nn.ModuleList(layouts.map(make)) : null;
    this.adapters = this.register(
      'adapters',
      perScale((l, s) => new Adapter(c.ldmChannels[s], l.dim, c.adapterKernel), c.ldmFeatures),
    );
    const lgcaOptions = { depth: c.lgcaDepth, mlpRatio: c.mlpRatio };
    this.lgca = this.register(
      'lgca',
      perScale((l) => new Lgca(l, lgcaOptions), c.lgca),
    );
    this.fusion = this.register(
      'fusion',
      perScale((l) => new Fusion(l.dim), c.ldmFeatures && !c.lgca),
    );
    const dims = layouts.map((l) => l.dim);
    const half = c.embedDim / 2;
    this.halfResSkip = this.register('half_res_skip', new ConvNormAct(2, half));
    this.fullResSkip = this.register('full_res_skip', new ConvNormAct(2, c.headChannels));
    const widths = [dims[3], dims[2], dims[1], dims[0], half, c.headChannels];
    this.decoder = this.register(
      'decoder',
      new nn.ModuleList(widths.slice(1).map((w, i) => new DecoderBlock(widths[i], w, w))),
    );
    this.regHead = this.register('reg_head', new RegistrationHead(c.headChannels, c.imageSize));
  }

  /**
   * The displacement (B, 2, H, W) in pixels that warps `moving` onto `fixed`, both (B, 1, H, W).
   * `ldmFeatures` (with config.ldmFeatures only): per scale s = 0..3, (B, ldmChannels[s], h_s, w_s) on
   * the stage's token grid, H/(patchSize·2^s) × W/(patchSize·2^s), the moving image's channels first.
   */
  forward(moving: Tensor, fixed: Tensor, ldmFeatures?: Tensor[]): Tensor {
    this.#checkImages(moving, fixed);
    this.#checkFeatures(moving.shape[0], ldmFeatures);
    return tidy(() => {
      const pair = cat([moving, fixed], 1);
      const scales = this.transformer
        .forward(pair)
        .map((swin, s) => this.#fuse(s, swin, ldmFeatures).permute(0, 3, 1, 2));
      const skips = [
        scales[2],
        scales[1],
        scales[0],
        this.halfResSkip.forward(F.avgPool2d(pair, 3, { stride: 2, padding: 1 })),
        this.fullResSkip.forward(pair),
      ];
      let x = scales[3];
      [...this.decoder].forEach((block, i) => (x = block.forward(x, skips[i])));
      return this.regHead.forward(x);
    });
  }

  /** Scale s's Swin features (B, h, w, C) joined with the adapted LDM features when there are any. */
  #fuse(s: number, swin: Tensor, features: Tensor[] | undefined): Tensor {
    const join = this.lgca ?? this.fusion;
    if (!this.adapters || !join || !features) return swin;
    return join.at(s).forward(swin, this.adapters.at(s).forward(features[s]));
  }

  #checkImages(moving: Tensor, fixed: Tensor): void {
    const [h, w] = this.config.imageSize;
    const ok = (t: Tensor) => t.shape.length === 4 && t.shape[1] === 1 && same(t.shape.slice(2), [h, w]);
    if (!ok(moving)) throw invalid('LdmMorph moving', `(B, 1, ${h}, ${w})`, shapeOf(moving));
    if (!same(fixed.shape, moving.shape))
      throw invalid(
        'LdmMorph fixed',
        `the moving image's shape [${moving.shape.join(', ')}]`,
        shapeOf(fixed),
      );
  }

  #checkFeatures(batch: number, features: Tensor[] | undefined): void {
    if (!this.config.ldmFeatures) {
      if (features !== undefined)
        throw invalid(
          'LdmMorph ldmFeatures',
          'none (the network was built with ldmFeatures: false)',
          `${features.length} tensors`,
        );
      return;
    }
    if (!Array.isArray(features) || features.length !== STAGES)
      throw invalid(
        'LdmMorph ldmFeatures',
        `${STAGES} tensors, one per scale`,
        features === undefined ? 'none' : `${features.length} tensors`,
      );
    features.forEach((f, s) => {
      const expected = [batch, this.config.ldmChannels[s], ...this.layouts[s].grid];
      if (!same(f.shape, expected))
        throw invalid(`LdmMorph ldmFeatures[${s}]`, `shape [${expected.join(', ')}]`, shapeOf(f));
    });
  }
}
