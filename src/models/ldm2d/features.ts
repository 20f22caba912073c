/**
 * LDM-Morph's diffusion features of an image pair (Wu et al. 2026; the authors' code, not the
 * paper's DDIM inversion): each image's latent mean, scaled as the U-Net was trained, is noised to
 * t = 1 with one noise draw shared by both images, and one U-Net pass returns its encoder features
 * at the four latent scales.
 */
import { tidy, type Tensor } from '../../engine/index.ts';
import type { NoiseScheduler } from '../schedulers/schedule.ts';
import type { Ldm2dAutoencoder } from './autoencoder.ts';
import type { Ldm2dUNet } from './unet.ts';

/** The authors' t_enc. */
export const LDM_MORPH_FEATURE_TIMESTEP = 1;

export interface Ldm2dModel {
  autoencoder: Ldm2dAutoencoder;
  unet: Ldm2dUNet;
  /** A scheduler of LDM2D_SCHEDULE (q_sample's coefficients). */
  scheduler: NoiseScheduler;
}

/**
 * The features of images (B, 1, H, W) in [0, 1]: four maps (B, unet.featureChannels[l], H/4/2^l,
 * W/4/2^l). `noise` has the latent's shape (1 or B, latentChannels, H/4, W/4); pass the same tensor
 * for the moving and the fixed image. Wrap in noGrad unless gradients to the images are wanted.
 */
export function diffusionFeatures(
  model: Ldm2dModel,
  images: Tensor,
  noise: Tensor,
  timestep = LDM_MORPH_FEATURE_TIMESTEP,
): Tensor[] {
  const { autoencoder, unet, scheduler } = model;
  return tidy(() => {
    const z = autoencoder.encodeMean(images).mul(unet.latentScale);
    const zt = scheduler.addNoise(z, noise, timestep);
    return unet.encoderFeatures(zt, scheduler.timestepTensor(timestep));
  });
}
