/**
 * DDIM (Song et al. 2021) deterministic step (η = 0) and its inversion, as MONAI's DDIMScheduler
 * computes them. The reversed step maps x_t to x_{t+k} (k = T / number of inference steps): it is
 * what DDIM inversion of an image into the noise of a later timestep uses.
 */
import { tidy, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { bool, integer } from '../../util/is.ts';
import { NoiseScheduler, type ScheduleOptions } from './schedule.ts';
import type { SchedulerStep } from './ddpm.ts';

export interface DDIMOptions extends ScheduleOptions {
  /** ᾱ used past the last step: 1 when true, else ᾱ_0 (MONAI's set_alpha_to_one). */
  setAlphaToOne?: boolean;
  /** Added to every inference timestep (MONAI's steps_offset). */
  stepsOffset?: number;
}

export class DDIMScheduler extends NoiseScheduler {
  readonly finalAlphaCumprod: number;
  readonly stepsOffset: number;

  constructor(options: DDIMOptions = {}) {
    super(options);
    this.finalAlphaCumprod = bool('setAlphaToOne', options.setAlphaToOne ?? true)
      ? 1
      : this.tables.alphasCumprod[0];
    this.stepsOffset = integer('stepsOffset', options.stepsOffset ?? 0, { min: 0 });
    this.setTimesteps(this.numTrainTimesteps);
  }

  override setTimesteps(numInferenceSteps: number): number[] {
    return super.setTimesteps(numInferenceSteps, this.stepsOffset);
  }

  private get stride(): number {
    return Math.floor(this.numTrainTimesteps / this.numInferenceSteps);
  }

  /** x_t → x_{t−k}. */
  step(modelOutput: Tensor, timestep: number, sample: Tensor): SchedulerStep {
    const t = this.checkTimestep(timestep);
    const prev = t - this.stride;
    return this.move(
      modelOutput,
      sample,
      this.tables.alphasCumprod[t],
      prev >= 0 ? this.tables.alphasCumprod[prev] : this.finalAlphaCumprod,
    );
  }

  /** DDIM inversion x_t → x_{t+k}. */
  reversedStep(modelOutput: Tensor, timestep: number, sample: Tensor): SchedulerStep {
    const t = this.checkTimestep(timestep);
    const next = t + this.stride;
    if (next >= this.numTrainTimesteps) {
      fail(
        'timestep',
        `${t} + ${this.stride} is past the last training timestep ${this.numTrainTimesteps - 1}`,
      );
    }
    return this.invert(modelOutput, t, next, sample);
  }

  /** DDIM inversion from timestep t to any later timestep `target` (the stride of no inference schedule). */
  invert(modelOutput: Tensor, timestep: number, target: number, sample: Tensor): SchedulerStep {
    const t = this.checkTimestep(timestep);
    const next = this.checkTimestep(target, 'target timestep');
    if (next <= t) fail('target timestep', `must be after ${t}, got ${next}`);
    return this.move(modelOutput, sample, this.tables.alphasCumprod[t], this.tables.alphasCumprod[next]);
  }

  /** The deterministic DDIM update from ᾱ = a to ᾱ = aTarget. */
  private move(modelOutput: Tensor, sample: Tensor, a: number, aTarget: number): SchedulerStep {
    const { x0, eps } = this.predictOriginal(modelOutput, sample, a);
    const f = this.round;
    const moved = tidy(() => x0.mul(f(Math.sqrt(aTarget))).add(eps.mul(f(Math.sqrt(f(1 - aTarget))))));
    eps.dispose();
    return { sample: moved, predOriginalSample: x0 };
  }
}
