/**
 * TransMorph's convolutional decoder in 2-D, as LDM-Morph uses it: upsampling by 2 with a skip at each
 * level (the fused encoder scales, then convolutional skips of the image pair at half and full
 * resolution), and a registration head bounded by Softsign.
 */
import { F, cat, nn, tensor, tidy, type Tensor } from '../../engine/index.ts';

/** TransMorph's Conv2dReLU: 3×3 convolution without bias, instance norm, LeakyReLU(0.01). */
export class ConvNormAct extends nn.Module {
  readonly conv: nn.Conv2d;

  constructor(inChannels: number, outChannels: number) {
    super();
    this.conv = this.register('conv', new nn.Conv2d(inChannels, outChannels, 3, { padding: 1, bias: false }));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => F.leakyRelu(F.instanceNorm(this.conv.forward(x)), 0.01));
  }
}

/** Bilinear upsampling by 2, the skip concatenated, two ConvNormAct. */
export class DecoderBlock extends nn.Module {
  readonly conv1: ConvNormAct;
  readonly conv2: ConvNormAct;

  constructor(inChannels: number, skipChannels: number, outChannels: number) {
    super();
    this.conv1 = this.register('conv1', new ConvNormAct(inChannels + skipChannels, outChannels));
    this.conv2 = this.register('conv2', new ConvNormAct(outChannels, outChannels));
  }

  forward(x: Tensor, skip: Tensor): Tensor {
    return tidy(() => {
      const up = F.interpolate(x, { scaleFactor: 2, mode: 'bilinear', alignCorners: false });
      return this.conv2.forward(this.conv1.forward(cat([up, skip], 1)));
    });
  }
}

/**
 * A 3×3 convolution to two channels and Softsign: the displacement in the authors' normalised units
 * (align_corners: ±1 is half the extent), here scaled to pixels of each axis, (n − 1)/2 per unit.
 */
export class RegistrationHead extends nn.Module {
  readonly conv: nn.Conv2d;
  readonly halfExtent: Tensor;

  constructor(inChannels: number, imageSize: readonly number[]) {
    super();
    this.conv = this.register('conv', new nn.Conv2d(inChannels, 2, 3, { padding: 1 }));
    // Near-identity start (TransMorph, VoxelMorph): Normal(0, 1e-5) weights, zero bias.
    nn.init.normal_(this.conv.weight, 0, 1e-5);
    nn.init.constant_(this.conv.bias as Tensor, 0);
    const half = tensor(imageSize.map((n) => (n - 1) / 2)).reshape(1, 2, 1, 1);
    this.halfExtent = this.registerBuffer('half_extent', half, { persistent: false });
  }

  forward(x: Tensor): Tensor {
    return tidy(() => F.softsign(this.conv.forward(x)).mul(this.halfExtent));
  }
}
