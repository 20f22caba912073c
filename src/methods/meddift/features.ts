/**
 * MedDIFT's diffusion features (Zhang et al. 2025; authors' code koegl/MedDIFT-extension), step by step:
 *   1. the image, intensities already in [0, 1], is resized (trilinear, align_corners false) so each
 *      axis is the nearest multiple of 128 (at least 128, Python's round-half-to-even);
 *   2. the autoencoder encodes it and a latent is SAMPLED, z = μ + ε·σ, then multiplied by the U-Net
 *      checkpoint's scale_factor;
 *   3. noise is added at a small timestep t (MEDDIFT_TIMESTEP = 20 of 1000);
 *   4. one U-Net forward, conditioned on body region and the ORIGINAL image spacing, and the decoder
 *      up-block outputs are the feature levels (coarse to fine).
 * The levels stay at their own (latent-derived) resolution here; matching samples them at the original
 * grid's voxels on demand instead of upsampling whole volumes (see match.ts).
 */
import { F, Generator, noGrad, randn, Tensor, tidy } from '../../engine/index.ts';
import {
  networkGridSize,
  type BodyRegion,
  type LatentDiffusionModel,
  type LatentDistribution,
} from '../../models/index.ts';
import { fail } from '../../util/errors.ts';
import { integer } from '../../util/is.ts';

/** A latent diffusion model as MedDIFT uses it (any LatentDiffusionModel). */
export type DiffusionFeatureModel = LatentDiffusionModel;

/** MedDIFT's timestep: a small noise level (√(1 − ᾱ₂₀) ≈ 0.18 under MAISI's schedule), as the authors. */
export const MEDDIFT_TIMESTEP = 20;

export interface FeatureOptions {
  /** Diffusion timestep at which features are taken (default MEDDIFT_TIMESTEP). */
  timestep?: number;
  /** Decoder levels to return, 0 = coarsest (default: the model card's recommendation, else all). */
  levels?: readonly number[];
  /** Number of (latent sample, noise) draws whose features are averaged (default 1). */
  noiseDraws?: number;
  /** Body-region conditioning (MAISI): top and bottom of the volume (default chest, chest). */
  region?: { top: BodyRegion; bottom: BodyRegion };
  /** Random draws (latent sampling and diffusion noise) come from here. */
  generator?: Generator;
}

/** Resizes (1, 1, W, H, D) to the encoder size (trilinear, align_corners false, no anti-aliasing). */
export function resizeForEncoder(image: Tensor): Tensor {
  const size = image.shape.slice(2).map(networkGridSize);
  return F.interpolate(image, { size, mode: 'trilinear', alignCorners: false });
}

/** The decoder levels to use: the given ones, else the model card's recommendation, else all (the paper's). */
export function checkLevels(model: DiffusionFeatureModel, given: readonly number[] | undefined): number[] {
  const n = model.decoderLevels;
  const levels = given ?? model.recommendedLevels ?? Array.from({ length: n }, (_, i) => i);
  if (levels.length === 0) fail('levels', 'expected at least one level');
  for (const l of levels) integer('level', l, { min: 0, max: n - 1 });
  if (new Set(levels).size !== levels.length)
    fail('levels', `each level at most once, got ${levels.join(',')}`);
  return [...levels];
}

/** Where one draw's randomness comes from: given tensors (to reproduce a reference) or a generator. */
export interface Draw {
  /** ε of the latent sample z = μ + ε·σ. */
  eps: Tensor | Generator;
  /** The diffusion noise added at the timestep. */
  noise: Tensor | Generator;
}

/** Feature levels for one draw, from the resized image's latent distribution. */
export function featureLevelsForDraw(
  model: DiffusionFeatureModel,
  distribution: LatentDistribution,
  spacingMm: readonly [number, number, number],
  draw: Draw,
  options: { timestep: number; levels: readonly number[]; region?: { top: BodyRegion; bottom: BodyRegion } },
): Tensor[] {
  return tidy(() => {
    const latent = model.sampleLatent(distribution, draw.eps);
    const noise = draw.noise instanceof Tensor ? draw.noise : randn(latent.shape, { generator: draw.noise });
    const noisy = model.scheduler.addNoise(latent, noise, options.timestep);
    return model.decoderTaps(noisy, options.timestep, { spacingMm, region: options.region }, options.levels);
  });
}

/**
 * Feature levels of one image (1, 1, W, H, D) with intensities in [0, 1], averaged over `noiseDraws`
 * draws of the latent sample and the diffusion noise.
 */
export function extractFeatureLevels(
  model: DiffusionFeatureModel,
  image: Tensor,
  spacingMm: readonly [number, number, number],
  options: FeatureOptions = {},
): Tensor[] {
  const timestep = integer('timestep', options.timestep ?? MEDDIFT_TIMESTEP, {
    min: 0,
    max: model.scheduler.numTrainTimesteps - 1,
  });
  const levels = checkLevels(model, options.levels);
  const draws = integer('noiseDraws', options.noiseDraws ?? 1, { min: 1, max: 64 });
  const generator = options.generator ?? new Generator(0);
  if (image.ndim !== 5 || image.shape[0] !== 1 || image.shape[1] !== 1) {
    fail('image', `expected shape (1, 1, W, H, D), got (${image.shape.join(', ')})`);
  }
  return noGrad(() =>
    tidy(() => {
      const distribution = model.encode(resizeForEncoder(image));
      let sum: Tensor[] | undefined;
      for (let d = 0; d < draws; d++) {
        const features = featureLevelsForDraw(
          model,
          distribution,
          spacingMm,
          { eps: generator, noise: generator },
          {
            timestep,
            levels,
            region: options.region,
          },
        );
        sum = sum ? sum.map((s, i) => s.add(features[i])) : features;
      }
      return (sum as Tensor[]).map((s) => (draws > 1 ? s.div(draws) : s));
    }),
  );
}
