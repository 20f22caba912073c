/**
 * DDPM (Ho et al. 2020) ancestral sampling step, as MONAI's DDPMScheduler computes it. One MONAI
 * quirk is kept on purpose: the previous timestep is always t − 1, whatever `setTimesteps` chose,
 * because MAISI's training code and checkpoints were made with it.
 */
import { randn, tidy, type Generator, type Tensor } from '../../engine/index.ts';
import { oneOf } from '../../util/is.ts';
import { NoiseScheduler, type ScheduleOptions } from './schedule.ts';

export type VarianceType = 'fixed_small' | 'fixed_large';

export interface DDPMOptions extends ScheduleOptions {
  varianceType?: VarianceType;
}

export interface SchedulerStep {
  /** x_{t−1} (DDPM, DDIM step) or x_{t+k} (DDIM reversed step). */
  sample: Tensor;
  predOriginalSample: Tensor;
}

export class DDPMScheduler extends NoiseScheduler {
  readonly varianceType: VarianceType;

  constructor(options: DDPMOptions = {}) {
    super(options);
    this.varianceType = oneOf('varianceType', options.varianceType ?? 'fixed_small', [
      'fixed_small',
      'fixed_large',
    ] as const);
  }

  /** One reverse step x_t → x_{t−1}; the noise for t > 0 is drawn from `generator`. */
  step(modelOutput: Tensor, timestep: number, sample: Tensor, generator?: Generator): SchedulerStep {
    const t = this.checkTimestep(timestep);
    const { betas, alphas, alphasCumprod } = this.tables;
    const f = this.round;
    const a = alphasCumprod[t];
    const aPrev = t > 0 ? alphasCumprod[t - 1] : 1;
    const betaProd = f(1 - a);
    const betaProdPrev = f(1 - aPrev);
    const { x0, eps } = this.predictOriginal(modelOutput, sample, a);
    eps.dispose();
    const originalCoeff = f(f(f(Math.sqrt(aPrev)) * betas[t]) / betaProd);
    const currentCoeff = f(f(f(Math.sqrt(alphas[t])) * betaProdPrev) / betaProd);
    const prev = tidy(() => {
      let mean = x0.mul(originalCoeff).add(sample.mul(currentCoeff));
      if (t > 0) {
        const variance =
          this.varianceType === 'fixed_small'
            ? Math.max(f(f(betaProdPrev / betaProd) * betas[t]), 1e-20)
            : betas[t];
        const noise = randn(modelOutput.shape, { generator });
        mean = mean.add(noise.mul(f(Math.sqrt(f(variance)))));
      }
      return mean;
    });
    return { sample: prev, predOriginalSample: x0 };
  }
}
