/**
 * The denoising objective of DDPM training (Ho et al. 2020), for any denoiser and noise schedule:
 * x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, loss = MSE(output(x_t, t), target), the target being what the scheduler's
 * prediction type says the network outputs (ε, x₀ or v). Recipes that add terms on the predicted clean
 * sample (DiffuseReg's image similarity and smoothness on φ̂₀) get the output and x_t back with the loss.
 */
import { F, randn, tidy, type Generator, type Tensor } from '../../engine/index.ts';
import type { NoiseScheduler } from '../schedulers/schedule.ts';

/** A network denoising x_t at timesteps t (one per batch element), given its conditioning. */
export type Denoiser<C> = (noisy: Tensor, timesteps: Tensor, conditioning: C) => Tensor;

export interface DiffusionLossTerms {
  /** MSE between the network's output and its target (the drawn noise for ε-prediction). */
  loss: Tensor;
  /** The network's output (ε̂, x̂₀ or v̂). */
  predicted: Tensor;
  /** x_t. */
  noisy: Tensor;
}

/** The loss function of `denoiser` under `scheduler`: one noise draw from `generator` per call. */
export function diffusionLoss<C>(denoiser: Denoiser<C>, scheduler: NoiseScheduler) {
  return (
    x0: Tensor,
    timesteps: readonly number[],
    generator: Generator,
    conditioning: C,
  ): DiffusionLossTerms =>
    tidy(() => {
      const noise = randn(x0.shape, { generator });
      const noisy = scheduler.addNoise(x0, noise, timesteps);
      const predicted = denoiser(noisy, scheduler.timestepTensor(timesteps), conditioning);
      const target = scheduler.trainingTarget(x0, noise, timesteps);
      return { loss: F.mseLoss(predicted, target), predicted, noisy };
    });
}
