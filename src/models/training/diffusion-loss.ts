/**
 * The denoising objective of DDPM training (Ho et al. 2020), for any denoiser and noise schedule:
 * x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, loss = MSE(output(x_t, t), target), the target being what the scheduler's
 * prediction type says the network outputs (ε, x₀ or v). Recipes that add terms on the predicted clean
 * sample (DiffuseReg's image similarity and smoothness on φ̂₀) get the output and x_t back with the loss.
 */
import { F, Generator, noGrad, randn, tidy, type Tensor } from '../../engine/index.ts';
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

/**
 * A denoiser's validation loss: the mean of `loss(i, t, generator)` over `count` held-out items, item
 * i at timestep ⌊(i + ½)·T / count⌋ (spread over the schedule), all noise from one generator seeded
 * `seed + 7` anew at every call, so that a run's successive validations draw the same noise and compare.
 */
export function denoisingValidation(
  scheduler: NoiseScheduler,
  count: number,
  seed: number,
  loss: (i: number, t: number, generator: Generator) => Tensor,
): number {
  return noGrad(() => {
    const generator = new Generator(seed + 7);
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const t = Math.floor(((i + 0.5) / count) * scheduler.numTrainTimesteps);
      sum += tidy(() => loss(i, t, generator).item());
    }
    return sum / count;
  });
}
