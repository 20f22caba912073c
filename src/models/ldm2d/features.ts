/**
 * LDM-Morph's diffusion features of an image pair (Wu et al. 2026). Each image's latent mean, scaled
 * as the U-Net was trained, is brought to a timestep t and one U-Net pass returns its encoder
 * features at the four latent scales. Two ways to t:
 *   - the authors' code: q_sample, noised with one noise draw shared by both images (t = 1 there);
 *   - the paper: DDIM inversion, the U-Net's own noise estimate moving the latent deterministically
 *     from t = 0 to t in `inversionSteps` equal strides (inversionSteps more U-Net passes).
 */
import { tidy, type Tensor } from '../../engine/index.ts';
import { integer } from '../../util/is.ts';
import { fail } from '../../util/errors.ts';
import type { DDIMScheduler } from '../schedulers/ddim.ts';
import type { Ldm2dAutoencoder } from './autoencoder.ts';
import type { Ldm2dUNet } from './unet.ts';

/** The authors' t_enc. */
export const LDM_MORPH_FEATURE_TIMESTEP = 1;

export interface Ldm2dModel {
  autoencoder: Ldm2dAutoencoder;
  unet: Ldm2dUNet;
  /** A scheduler of LDM2D_SCHEDULE (q_sample's coefficients and DDIM inversion). */
  scheduler: DDIMScheduler;
}

export interface FeatureExtraction {
  /** The timestep whose U-Net features are taken. */
  timestep: number;
  /** 0: q_sample with the given noise (the authors' code); n > 0: DDIM inversion in n strides (the paper). */
  inversionSteps: number;
}

export const LDM_MORPH_FEATURE_EXTRACTION: FeatureExtraction = {
  timestep: LDM_MORPH_FEATURE_TIMESTEP,
  inversionSteps: 0,
};

/** `o` checked: the timestep within the schedule, and a whole number of timesteps per inversion stride. */
export function featureExtraction(o: FeatureExtraction, trainTimesteps: number): FeatureExtraction {
  const timestep = integer('feature timestep', o.timestep, { min: 1, max: trainTimesteps - 1 });
  const inversionSteps = integer('DDIM inversion steps', o.inversionSteps, { min: 0, max: timestep });
  if (inversionSteps > 0 && timestep % inversionSteps !== 0)
    fail('DDIM inversion steps', `must divide the feature timestep ${timestep}, got ${inversionSteps}`);
  return { timestep, inversionSteps };
}

/** The latents z (B, c, h, w) moved by DDIM inversion from t = 0 to `timestep` in `steps` equal strides. */
function ddimInversion(model: Ldm2dModel, z: Tensor, timestep: number, steps: number): Tensor {
  const { unet, scheduler } = model;
  const stride = timestep / steps;
  let zt = z.clone();
  for (let t = 0; t < timestep; t += stride) {
    const next = tidy(() => {
      const eps = unet.forward(zt, scheduler.timestepTensor(t));
      const { sample, predOriginalSample } = scheduler.invert(eps, t, t + stride, zt);
      predOriginalSample.dispose();
      return sample;
    });
    zt.dispose();
    zt = next;
  }
  return zt;
}

/**
 * The features of images (B, 1, H, W) in [0, 1]: four maps (B, unet.featureChannels[l], H/4/2^l,
 * W/4/2^l). `noise` has the latent's shape (1 or B, latentChannels, H/4, W/4); pass the same tensor
 * for the moving and the fixed image (DDIM inversion does not use it). Wrap in noGrad unless
 * gradients to the images are wanted.
 */
export function diffusionFeatures(
  model: Ldm2dModel,
  images: Tensor,
  noise: Tensor,
  at: FeatureExtraction = LDM_MORPH_FEATURE_EXTRACTION,
): Tensor[] {
  const { autoencoder, unet, scheduler } = model;
  const { timestep, inversionSteps } = featureExtraction(at, scheduler.numTrainTimesteps);
  return tidy(() => {
    const z = autoencoder.encodeLatent(images).mul(unet.latentScale);
    const zt =
      inversionSteps > 0
        ? ddimInversion(model, z, timestep, inversionSteps)
        : scheduler.addNoise(z, noise, timestep);
    return unet.encoderFeatures(zt, scheduler.timestepTensor(timestep));
  });
}
