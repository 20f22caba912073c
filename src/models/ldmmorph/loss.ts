/**
 * LDM-Morph's training loss: β·MSE(F, M∘φ) + (1 − β)·MSE(E(F), E(M∘φ)) + λ·‖∇u‖², E the latent
 * diffusion model's autoencoder encoder.
 *
 * The authors' code encodes the warped image under no-grad, so the latent term is a constant that
 * trains nothing. Here its gradient flows through E to the warped image and on to the network
 * (E's own weights stay as they are: the caller freezes them); `latentGradient: false` is the
 * authors' behaviour, for the ablation.
 */
import { F, noGrad, tidy, type Tensor } from '../../engine/index.ts';
import { bool, number } from '../../util/is.ts';
import { smoothnessLoss } from '../losses/smoothness.ts';
import { spatialTransformer } from '../losses/spatial.ts';

export interface LdmMorphLossOptions {
  /** Weight of the image term; the latent term has 1 − β (authors 0.6). */
  beta: number;
  /** λ of ‖∇u‖², u in pixels (authors 0.01; their field is normalised but their loss rescales it to pixels). */
  smoothness: number;
  /** Let the latent term's gradient reach the network (false: the authors' constant latent term). */
  latentGradient: boolean;
}

export const LDM_MORPH_LOSS: LdmMorphLossOptions = { beta: 0.6, smoothness: 0.01, latentGradient: true };

export interface LdmMorphLossTerms {
  total: Tensor;
  /** MSE(F, M∘φ). */
  image: Tensor;
  /** MSE(E(F), E(M∘φ)). */
  latent: Tensor;
  /** ‖∇u‖² (smoothnessLoss). */
  smooth: Tensor;
}

/**
 * The loss as a function of fixed and moving (B, 1, H, W) and the displacement (B, 2, H, W) in pixels
 * (LdmMorph's output). `encode` maps images (B, 1, H, W) to latents; its parameters must not require
 * gradients (the fixed image's latent is always computed without a graph).
 */
export function ldmMorphLoss(
  options: Partial<LdmMorphLossOptions>,
  encode: (images: Tensor) => Tensor,
): (fixed: Tensor, moving: Tensor, displacement: Tensor) => LdmMorphLossTerms {
  const o = { ...LDM_MORPH_LOSS, ...options };
  const beta = number('beta', o.beta, { min: 0, max: 1 });
  const smoothness = number('smoothness', o.smoothness, { min: 0 });
  const latentGradient = bool('latentGradient', o.latentGradient);
  return (fixed, moving, displacement) =>
    tidy(() => {
      const warped = spatialTransformer(moving, displacement);
      const image = F.mseLoss(warped, fixed);
      const target = noGrad(() => encode(fixed));
      const encoded = latentGradient ? encode(warped) : noGrad(() => encode(warped));
      const latent = F.mseLoss(encoded, target);
      const smooth = smoothnessLoss(displacement);
      const total = image
        .mul(beta)
        .add(latent.mul(1 - beta))
        .add(smooth.mul(smoothness));
      return { total, image, latent, smooth };
    });
}
