/**
 * VoxelMorph's registration U-Net (Balakrishnan et al. 2019; the PyTorch `VxmDense` without
 * integration) and a cascade of them as VTN stacks its networks (Zhao et al. 2019). Input: moving and
 * fixed images (B, 1, ...) concatenated; output: a displacement (B, nd, ...) in voxels of the input
 * grid, component a along tensor axis a, pull-back: warped(p) = moving(p + u(p)). State-dict names
 * follow voxelmorph's (`unet_model.encoder.0.0.main.weight`, `flow.weight`), one prefix per cascade.
 */
import { cat, F, nn, tidy, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { spatialAxes, spatialTransformer } from '../losses/spatial.ts';

export interface VoxelMorphConfig {
  spatialDims: 2 | 3;
  /** Channels of the encoder levels (each a convolution, then max-pooling by 2). */
  encoder: number[];
  /**
   * Channels of the decoder: one convolution per encoder level (each followed by upsampling and the
   * skip connection), then the rest at full resolution.
   */
  decoder: number[];
  /** Networks in the cascade (1 = plain VoxelMorph). */
  cascades: number;
}

/** VoxelMorph's "vm2" widths. */
export const VM2: VoxelMorphConfig = {
  spatialDims: 3,
  encoder: [16, 32, 32, 32],
  decoder: [32, 32, 32, 32, 32, 16, 16],
  cascades: 1,
};

function conv(nd: 2 | 3, cin: number, cout: number): nn.Conv2d | nn.Conv3d {
  return nd === 3 ? new nn.Conv3d(cin, cout, 3, { padding: 1 }) : new nn.Conv2d(cin, cout, 3, { padding: 1 });
}

/** Convolution 3 and LeakyReLU(0.2). */
class ConvBlock extends nn.Module {
  readonly main: nn.Conv2d | nn.Conv3d;

  constructor(nd: 2 | 3, cin: number, cout: number) {
    super();
    this.main = this.register('main', conv(nd, cin, cout));
    // Kaiming init for LeakyReLU(0.2), zero bias: activations keep the input's scale through the
    // U-Net. PyTorch's default shrinks them layer by layer until the biases dominate and the output
    // barely depends on the images (measured on ACDC: mean |u| over the heart 0.02 voxels after 100
    // steps against 0.3 with this init).
    nn.init.kaimingNormal_(this.main.weight, { a: 0.2, nonlinearity: 'leaky_relu' });
    nn.init.constant_(this.main.bias as Tensor, 0);
  }

  forward(x: Tensor): Tensor {
    return tidy(() => F.leakyRelu(this.main.forward(x), 0.2));
  }
}

class UNet extends nn.Module {
  readonly encoder: nn.ModuleList<nn.ModuleList<ConvBlock>>;
  readonly decoder: nn.ModuleList<nn.ModuleList<ConvBlock>>;
  readonly remaining: nn.ModuleList<ConvBlock>;
  readonly levels: number;

  constructor(c: VoxelMorphConfig) {
    super();
    const levels = c.encoder.length;
    if (c.decoder.length < levels) {
      fail(
        'VoxelMorph decoder',
        `expected at least ${levels} widths (one per encoder level), got ${c.decoder.length}`,
      );
    }
    this.levels = levels;
    const encoderOut = [2, ...c.encoder];
    this.encoder = this.register(
      'encoder',
      new nn.ModuleList(
        c.encoder.map((nf, l) => new nn.ModuleList([new ConvBlock(c.spatialDims, encoderOut[l], nf)])),
      ),
    );
    // Each decoder level's output is upsampled and joined by the encoder level of that resolution.
    let previous = c.encoder[levels - 1];
    this.decoder = this.register(
      'decoder',
      new nn.ModuleList(
        c.decoder.slice(0, levels).map((nf, l) => {
          const block = new ConvBlock(c.spatialDims, previous, nf);
          previous = nf + c.encoder[levels - 1 - l];
          return new nn.ModuleList([block]);
        }),
      ),
    );
    this.remaining = this.register(
      'remaining',
      new nn.ModuleList(
        c.decoder.slice(levels).map((nf) => {
          const block = new ConvBlock(c.spatialDims, previous, nf);
          previous = nf;
          return block;
        }),
      ),
    );
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const nd = x.shape.length - 2;
      const pool = nd === 3 ? F.maxPool3d : F.maxPool2d;
      const skips: Tensor[] = [];
      let h = x;
      for (const [block] of this.encoder) {
        h = block.forward(h);
        skips.push(h);
        h = pool(h, 2);
      }
      for (const [block] of this.decoder) {
        h = F.interpolate(block.forward(h), { scaleFactor: 2, mode: 'nearest' });
        h = cat([h, skips.pop() as Tensor], 1);
      }
      for (const block of this.remaining) h = block.forward(h);
      return h;
    });
  }
}

/** One registration network: the U-Net and a convolution to the displacement, initialised near 0. */
class VxmDense extends nn.Module {
  readonly unet_model: UNet;
  readonly flow: nn.Conv2d | nn.Conv3d;

  constructor(c: VoxelMorphConfig) {
    super();
    this.unet_model = this.register('unet_model', new UNet(c));
    const features = c.decoder.at(-1) as number;
    this.flow = this.register('flow', conv(c.spatialDims, features, c.spatialDims));
    // Near-identity start: the first warps barely move the image (voxelmorph: Normal(0, 1e-5), bias 0).
    nn.init.normal_(this.flow.weight, 0, 1e-5);
    nn.init.constant_(this.flow.bias as Tensor, 0);
  }

  forward(moving: Tensor, fixed: Tensor): Tensor {
    return tidy(() => this.flow.forward(this.unet_model.forward(cat([moving, fixed], 1))));
  }
}

/** VoxelMorph, or a cascade where each network registers the previous stage's warped image to the fixed one. */
export class VoxelMorph extends nn.Module {
  readonly config: VoxelMorphConfig;
  readonly cascade: nn.ModuleList<VxmDense>;

  constructor(config: VoxelMorphConfig = VM2) {
    super();
    if (!(Number.isInteger(config.cascades) && config.cascades >= 1)) {
      fail('VoxelMorph cascades', `expected a positive integer, got ${config.cascades}`);
    }
    this.config = config;
    this.cascade = this.register(
      'cascade',
      new nn.ModuleList(Array.from({ length: config.cascades }, () => new VxmDense(config))),
    );
  }

  /** The displacement (B, nd, ...) in voxels that warps `moving` onto `fixed`, both (B, 1, ...). */
  forward(moving: Tensor, fixed: Tensor): Tensor {
    const nd = spatialAxes('VoxelMorph input', moving);
    const factor = 2 ** this.config.encoder.length;
    if (nd !== this.config.spatialDims || moving.shape.slice(2).some((n) => n % factor !== 0)) {
      fail(
        'VoxelMorph input',
        `expected ${this.config.spatialDims}-D images with sizes divisible by ${factor}, got [${moving.shape.join(', ')}]`,
      );
    }
    return tidy(() => {
      let u: Tensor | undefined;
      for (const network of this.cascade) {
        const warped = u === undefined ? moving : spatialTransformer(moving, u);
        const step = network.forward(warped, fixed);
        // warped_k(p) = warped_{k−1}(p + v(p)): u_k(p) = v(p) + u_{k−1}(p + v(p)).
        u = u === undefined ? step : step.add(spatialTransformer(u, step));
      }
      return u as Tensor;
    });
  }
}
