/**
 * What feature extraction needs of a latent diffusion model, whatever its networks: encode an image to
 * a latent distribution, draw a scaled latent, and run the denoiser once on a noisy latent returning
 * its decoder activations ("taps") at chosen levels. MAISI checkpoints and diffreg's default model
 * implement it (models/maisi/latent-diffusion.ts); MedDIFT uses nothing else.
 */
import type { Generator, Tensor } from '../engine/index.ts';
import type { LatentDistribution } from './maisi/autoencoder.ts';
import type { BodyRegion } from './maisi/unet.ts';
import type { NoiseScheduler } from './schedulers/schedule.ts';

/** What the denoiser is told about the image: its voxel size and the body region it covers. */
export interface ImageConditioning {
  /** Voxel size (mm) of the original image, array axes in the network's (RAS) order. */
  spacingMm: readonly [number, number, number];
  /** MAISI's body regions (models without region conditioning ignore them); default chest, chest. */
  region?: { top: BodyRegion; bottom: BodyRegion };
}

export interface LatentDiffusionModel {
  readonly name: string;
  readonly scheduler: NoiseScheduler;
  /** Decoder levels the denoiser can tap, 0 = coarsest. */
  readonly decoderLevels: number;
  /** The levels its model card recommends for correspondence features, when it has one. */
  readonly recommendedLevels?: readonly number[];
  /** The latent distribution of an image (1, 1, W, H, D) with intensities in [0, 1]. */
  encode(image: Tensor): LatentDistribution;
  /** A latent sample scaled for the denoiser: (μ + ε·σ)·scale, ε given or drawn from the generator. */
  sampleLatent(distribution: LatentDistribution, eps: Tensor | Generator): Tensor;
  /** One denoiser pass on a noisy latent (1, c, x, y, z) at `timestep`: the decoder outputs of `levels`. */
  decoderTaps(
    noisyLatent: Tensor,
    timestep: number,
    image: ImageConditioning,
    levels: readonly number[],
  ): Tensor[];
  dispose(): void;
}
