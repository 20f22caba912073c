/**
 * The two training stages of LDM-Morph's latent diffusion model, on 2-D slices the caller passes as
 * tensors (1, 1, H, W) with intensities min–max normalised to [0, 1] (the authors' normalisation):
 *   (a) the autoencoder: L1 reconstruction of a latent sample, plus a gradient-difference term (L1
 *       between the finite differences of reconstruction and image along both axes: it keeps edges
 *       sharp, the job LDM gives its perceptual and adversarial losses, which are not used here),
 *       plus the latent's term (klWeight·KL(q(z|x) ‖ N(0, I)), or VQ's codebook and commitment
 *       terms: autoencoder.ts);
 *   (b) the U-Net: ε-prediction under LDM2D_SCHEDULE (DDPM, MSE) on the frozen encoder's continuous
 *       latents, multiplied by 1 / their standard deviation over the training set (LDM's scale factor,
 *       stored in the U-Net's `latent_scale` buffer).
 * Both stages flip images at random along `flipAxes` (the authors flip horizontally); the U-Net
 * trains on the latents of the flipped images themselves, encoded once before its first step.
 */
import { cat, F, Generator, manualSeed, noGrad, tidy, type Tensor } from '../../engine/index.ts';
import type { Random } from '../../geometry/random.ts';
import { fail } from '../../util/errors.ts';
import { bool, integer, invalid, number } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { DDPMScheduler } from '../schedulers/ddpm.ts';
import { denoisingValidation, diffusionLoss } from '../training/diffusion-loss.ts';
import { backpropagate, DEFAULT_LOOP, runLoop, type LoopOptions, type LoopResult } from '../training/loop.ts';
import { Ldm2dAutoencoder } from './autoencoder.ts';
import {
  LDM2D_SCHEDULE,
  ldm2dConfig,
  type Ldm2dConfig,
  type Ldm2dConfigOverrides,
  type Ldm2dUNetConfig,
} from './config.ts';
import { Ldm2dUNet } from './unet.ts';

interface StageOptions extends LoopOptions {
  batchSize: number;
  /** Image axes (2 = H, 3 = W), each flipped with probability ½ per drawn image. */
  flipAxes: number[];
}

export interface AutoencoderTrainOptions extends StageOptions {
  /** The LDM configuration (completed from LDM2D_DEFAULT); the U-Net stage reads its U-Net part. */
  config: Ldm2dConfigOverrides;
  /** Weight of the gradient-difference term. */
  gradientWeight: number;
}

export interface UNetTrainOptions extends StageOptions {
  /** Changes to the U-Net part of the autoencoder's configuration. */
  unet: Partial<Ldm2dUNetConfig>;
  /** Train on latents scaled to unit standard deviation (LDM); false: on the raw means (scale 1). */
  scaleLatents: boolean;
}

/**
 * What both stages share. Steps and batch sizes make about two hours per stage on one thread by the
 * timings in config.ts; the learning rates are not tuned on data.
 */
const STAGE: Omit<StageOptions, 'dir' | 'steps' | 'batchSize'> = {
  ...DEFAULT_LOOP,
  lr: 2e-4,
  warmupSteps: 100,
  checkpointEvery: 250,
  validateEvery: 250,
  // The authors' augmentation: a horizontal flip.
  flipAxes: [3],
};

export const LDM2D_AUTOENCODER_TRAINING: Omit<AutoencoderTrainOptions, 'dir'> = {
  ...STAGE,
  steps: 5000,
  batchSize: 4,
  config: {},
  gradientWeight: 0.5,
};

export const LDM2D_UNET_TRAINING: Omit<UNetTrainOptions, 'dir'> = {
  ...STAGE,
  steps: 7000,
  batchSize: 16,
  unet: {},
  scaleLatents: true,
};

function checkStage(o: StageOptions): void {
  integer('batchSize', o.batchSize, { min: 1 });
  const axes = o.flipAxes;
  if (!Array.isArray(axes) || axes.some((a) => a !== 2 && a !== 3) || new Set(axes).size !== axes.length)
    throw invalid('flipAxes', 'distinct image axes among 2 (H) and 3 (W)', axes);
}

/** Images must be (1, 1, H, W), all of one size, H and W multiples of `multiple`. */
function checkImages(name: string, images: readonly Tensor[], multiple: number): void {
  if (!Array.isArray(images) || images.length === 0) fail(name, 'expected at least one image');
  const [h, w] = images[0].shape.slice(2);
  images.forEach((x, i) => {
    if (x.ndim !== 4 || x.shape[0] !== 1 || x.shape[1] !== 1 || x.shape[2] !== h || x.shape[3] !== w)
      fail(`${name}[${i}]`, `expected shape (1, 1, ${h}, ${w}), got (${x.shape.join(', ')})`);
  });
  if (h % multiple !== 0 || w % multiple !== 0)
    fail(name, `H and W must be multiples of ${multiple}, got ${h}x${w}`);
}

/** An image index and the flips of one batch element; `mask` has bit k set when flipAxes[k] is flipped. */
interface Pick {
  index: number;
  axes: number[];
  mask: number;
}

function drawPicks(count: number, o: StageOptions, random: Random): Pick[] {
  return Array.from({ length: o.batchSize }, () => {
    const index = random.integer(count);
    const flips = o.flipAxes.map(() => random.uniform() < 0.5);
    const mask = flips.reduce((m, f, k) => m | (Number(f) << k), 0);
    return { index, axes: o.flipAxes.filter((_, k) => flips[k]), mask };
  });
}

const flipped = (x: Tensor, axes: readonly number[]) => (axes.length ? x.flip([...axes]) : x);

/** Mean absolute difference of the finite differences along H and along W, summed over the two axes. */
export function gradientDifference(a: Tensor, b: Tensor): Tensor {
  return tidy(() => {
    const d = a.sub(b);
    return [2, 3]
      .map((axis) => {
        const n = d.shape[axis] - 1;
        return d
          .narrow(axis, 1, n)
          .sub(d.narrow(axis, 0, n))
          .abs()
          .mean();
      })
      .reduce((s, t) => s.add(t));
  });
}

/** Stage (a): trains the autoencoder in `o.dir` (resuming from its newest checkpoint). */
export function trainAutoencoder(
  options: Partial<AutoencoderTrainOptions> & { dir: string },
  trainImages: readonly Tensor[],
  validationImages: readonly Tensor[],
  progress?: ProgressFn,
): LoopResult & { autoencoder: Ldm2dAutoencoder } {
  const o = { ...LDM2D_AUTOENCODER_TRAINING, ...options };
  checkStage(o);
  const gradientWeight = number('gradientWeight', o.gradientWeight, { min: 0 });
  const config = ldm2dConfig(o.config);
  const factor = 2 ** (config.autoencoder.channels.length - 1);
  checkImages('training images', trainImages, factor);
  checkImages('validation images', validationImages, factor);
  manualSeed(o.seed); // the weight initialisation draws from the global generator
  const ae = new Ldm2dAutoencoder(config);
  // A VQ codebook starts from the encoder's outputs on a few training images (a resumed run then
  // loads its checkpoint over it).
  if (ae.codebook) tidy(() => ae.initCodebook(cat(trainImages.slice(0, 16), 0), new Generator(o.seed)));
  const result = runLoop(
    'LDM autoencoder',
    ae,
    o,
    (_step, { random, generator }) => {
      const picks = drawPicks(trainImages.length, o, random);
      const { total, ...parts } = tidy(() => {
        const x = cat(
          picks.map((p) => flipped(trainImages[p.index], p.axes)),
          0,
        );
        const { reconstruction, regularization } = ae.forward(x, generator);
        const l1 = F.l1Loss(reconstruction, x);
        const gradient = gradientDifference(reconstruction, x);
        return {
          total: l1.add(gradient.mul(gradientWeight)).add(regularization),
          l1,
          gradient,
          latent: regularization,
        };
      });
      return backpropagate(total, parts);
    },
    () =>
      noGrad(() => {
        // L1 of the mean's reconstruction: deterministic, comparable between validations.
        const sum = validationImages.reduce(
          (s, x) => s + tidy(() => F.l1Loss(ae.decode(ae.encodeLatent(x)), x).item()),
          0,
        );
        return sum / validationImages.length;
      }),
    progress,
  );
  return { ...result, autoencoder: ae.eval() };
}

/** Latent means of each image under every subset of `flipAxes` ([i][mask], mask as in Pick). */
function encodeLatents(
  ae: Ldm2dAutoencoder,
  images: readonly Tensor[],
  flipAxes: readonly number[],
  progress?: ProgressFn,
): Tensor[][] {
  const subsets = Array.from({ length: 2 ** flipAxes.length }, (_, m) =>
    flipAxes.filter((_, k) => m & (1 << k)),
  );
  return images.map((x, i) => {
    const latents = subsets.map((axes) => noGrad(() => ae.encodeLatent(flipped(x, axes))).keep());
    progress?.({ stage: 'encoding latents', done: i + 1, total: images.length });
    return latents;
  });
}

/** LDM's scale factor: 1 / the standard deviation of all latent elements. */
export function latentScaleFactor(latents: readonly Tensor[]): number {
  return noGrad(() =>
    tidy(() => {
      const all = cat(latents.map((z) => z.flatten()));
      return 1 / all.std().item();
    }),
  );
}

/**
 * Stage (b): encodes the images once with the frozen autoencoder, sets the latent scale, and trains
 * the U-Net in `o.dir` (resuming from its newest checkpoint).
 */
export function trainLdm2dUNet(
  options: Partial<UNetTrainOptions> & { dir: string },
  autoencoder: Ldm2dAutoencoder,
  trainImages: readonly Tensor[],
  validationImages: readonly Tensor[],
  progress?: ProgressFn,
): LoopResult & { unet: Ldm2dUNet; scaleFactor: number } {
  const o = { ...LDM2D_UNET_TRAINING, ...options };
  checkStage(o);
  const scaleLatents = bool('scaleLatents', o.scaleLatents);
  const config: Ldm2dConfig = ldm2dConfig({
    ...autoencoder.config,
    unet: { ...autoencoder.config.unet, ...o.unet },
  });
  const multiple = autoencoder.downsamplingFactor * 2 ** (config.unet.channelMultipliers.length - 1);
  checkImages('training images', trainImages, multiple);
  checkImages('validation images', validationImages, multiple);
  autoencoder.eval();
  const train = encodeLatents(autoencoder, trainImages, o.flipAxes, progress);
  const held = encodeLatents(autoencoder, validationImages, [], progress).map(([z]) => z);
  const scheduler = new DDPMScheduler(LDM2D_SCHEDULE);
  const T = scheduler.numTrainTimesteps;
  manualSeed(o.seed);
  const unet = new Ldm2dUNet(config);
  unet.latentScale = scaleLatents ? latentScaleFactor(train.flat()) : 1;
  // The stored (float32) value, so that training and feature extraction scale alike.
  const scaleFactor = unet.latentScale;
  const denoising = diffusionLoss<null>((x, t) => unet.forward(x, t), scheduler);
  const loss = (z: Tensor, timesteps: number[], generator: Generator) =>
    tidy(() => denoising(z.mul(scaleFactor), timesteps, generator, null).loss);

  const result = runLoop(
    'LDM U-Net',
    unet,
    o,
    (_step, { random, generator }) => {
      const picks = drawPicks(train.length, o, random);
      const timesteps = picks.map(() => random.integer(T));
      const batch = picks.map((p) => train[p.index][p.mask]);
      return backpropagate(tidy(() => loss(cat(batch, 0), timesteps, generator)));
    },
    () =>
      denoisingValidation(scheduler, held.length, o.seed, (i, t, generator) => loss(held[i], [t], generator)),
    progress,
  );
  for (const z of [...train.flat(), ...held]) z.dispose();
  return { ...result, unet: unet.eval(), scaleFactor };
}
