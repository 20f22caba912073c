/**
 * One LDM-Morph registration on the network grid: the LDM features of the pair (one noise draw shared
 * by both images, as the authors' code does), then the network. Training, validation, evaluation and
 * the registry's method all go through here, so they see the same inputs.
 */
import { cat, noGrad, randn, tidy, type Generator, type Tensor } from '../../engine/index.ts';
import { diffusionFeatures, type FeatureExtraction, type Ldm2dModel } from '../../models/ldm2d/index.ts';
import type { LdmMorph } from '../../models/ldmmorph/index.ts';

/** The seed of the feature noise when the user gives none (registration is deterministic). */
export const FEATURE_NOISE_SEED = 0;

/**
 * The network's LDM features of a pair (B, 1, H, W) each: per scale the moving image's features, then
 * the fixed image's, along channels, from one U-Net pass over both with the same noise (or DDIM
 * inversion, as `at` says). No graph: the LDM is frozen and the features are inputs.
 */
export function pairFeatures(
  ldm: Ldm2dModel,
  moving: Tensor,
  fixed: Tensor,
  generator: Generator,
  at: FeatureExtraction,
): Tensor[] {
  const b = moving.shape[0];
  const f = ldm.autoencoder.downsamplingFactor;
  const latent = [
    1,
    ldm.autoencoder.config.autoencoder.latentChannels,
    ...moving.shape.slice(2).map((n) => n / f),
  ];
  return noGrad(() =>
    tidy(() =>
      diffusionFeatures(ldm, cat([moving, fixed], 0), randn(latent, { generator }), at).map((both) =>
        cat([both.narrow(0, 0, b), both.narrow(0, b, b)], 1),
      ),
    ),
  );
}

/** The displacement (B, 2, H, W) in pixels that warps `moving` onto `fixed`; features only when the network takes them. */
export function predictDisplacement(
  network: LdmMorph,
  ldm: Ldm2dModel,
  moving: Tensor,
  fixed: Tensor,
  generator: Generator,
): Tensor {
  return tidy(() =>
    network.forward(
      moving,
      fixed,
      network.config.ldmFeatures
        ? pairFeatures(ldm, moving, fixed, generator, network.config.featureExtraction)
        : undefined,
    ),
  );
}
