/**
 * Noise schedules of denoising diffusion models, with MONAI's options and float32 arithmetic.
 *
 * The tables are computed with libtorch itself (float32 linspace, cumulative product) so that they
 * are bit-identical to MONAI's; scalar coefficients are then float32 values (Math.fround) used in
 * the same operation order as MONAI, which makes add_noise and the steps bit-exact as well.
 *
 * Schedules that start at a tiny β need double precision instead: in float32, 1 − ᾱ_0 for β_0 = 1e-6
 * is 1.0133e-6, so the last DDPM step would scale its x₀ by β_0/(1 − ᾱ_0) = 0.987 rather than 1.
 * With `precision: 'float64'` tables and coefficients stay doubles until they scale a tensor (as the
 * DiffuseReg authors' numpy tables).
 */
import { linspace, noGrad, tidy, tensor, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { integer, number, oneOf } from '../../util/is.ts';

export type BetaSchedule = 'linear' | 'scaled_linear' | 'cosine';
export type PredictionType = 'epsilon' | 'sample' | 'v_prediction';
export type SchedulePrecision = 'float32' | 'float64';

export interface ScheduleOptions {
  numTrainTimesteps?: number;
  schedule?: BetaSchedule;
  betaStart?: number;
  betaEnd?: number;
  predictionType?: PredictionType;
  /** Clamp the predicted x0 to [clipSampleMin, clipSampleMax] (MONAI's clip_sample). */
  clipSample?: boolean;
  clipSampleMin?: number;
  clipSampleMax?: number;
  /** Arithmetic of the tables and step coefficients: 'float32' (MONAI's, bit-exact) or 'float64'. */
  precision?: SchedulePrecision;
}

/** MAISI v1 "ddpm": 1000 steps, scaled-linear β from 0.0015 to 0.0195, ε-prediction, no clipping. */
export const MAISI_SCHEDULE: Required<ScheduleOptions> = {
  numTrainTimesteps: 1000,
  schedule: 'scaled_linear',
  betaStart: 0.0015,
  betaEnd: 0.0195,
  predictionType: 'epsilon',
  clipSample: false,
  clipSampleMin: -1,
  clipSampleMax: 1,
  precision: 'float32',
};

/** DiffuseReg (Zhuo & Shen 2024): 2000 steps, linear β from 1e-6 to 1e-2, ε-prediction, double precision. */
export const DIFFUSEREG_SCHEDULE: Required<ScheduleOptions> = {
  ...MAISI_SCHEDULE,
  numTrainTimesteps: 2000,
  schedule: 'linear',
  betaStart: 1e-6,
  betaEnd: 1e-2,
  precision: 'float64',
};

const identity = (x: number) => x;

export interface NoiseTables {
  betas: Float32Array | Float64Array;
  alphas: Float32Array | Float64Array;
  alphasCumprod: Float32Array | Float64Array;
}

/** β, α = 1 − β and ᾱ = ∏α as MONAI computes them (float32, or the same operations in float64). */
export function noiseTables(
  schedule: BetaSchedule,
  n: number,
  betaStart: number,
  betaEnd: number,
  precision: SchedulePrecision = 'float32',
): NoiseTables {
  return noGrad(() =>
    tidy(() => {
      let betas: Tensor;
      let alphasCumprod: Tensor | undefined;
      if (schedule === 'linear') {
        betas = linspace(betaStart, betaEnd, n, { dtype: precision });
      } else if (schedule === 'scaled_linear') {
        betas = linspace(Math.sqrt(betaStart), Math.sqrt(betaEnd), n, { dtype: precision }).pow(2);
      } else {
        // Nichol & Dhariwal's cosine schedule, offset s = 0.008, α clipped to [1e-4, 0.9999].
        const s = 0.008;
        const x = linspace(0, n, n + 1, { dtype: precision });
        let ac = x
          .div(n)
          .add(s)
          .div(1 + s)
          .mul(Math.PI * 0.5)
          .cos()
          .pow(2);
        ac = ac.div(ac.narrow(0, 0, 1).item());
        const alphas = ac
          .narrow(0, 1, n)
          .div(ac.narrow(0, 0, n))
          .clamp(0.0001, 0.9999);
        betas = alphas.rsub(1);
        alphasCumprod = ac.narrow(0, 0, n);
      }
      const alphas = betas.rsub(1);
      const cumprod = alphasCumprod ?? alphas.cumprod(0);
      return {
        betas: betas.toTypedArray() as NoiseTables['betas'],
        alphas: alphas.toTypedArray() as NoiseTables['alphas'],
        alphasCumprod: cumprod.toTypedArray() as NoiseTables['alphasCumprod'],
      };
    }),
  );
}

/** What both DDPM and DDIM share: the tables, add_noise, x0/ε prediction and the timestep grid. */
export abstract class NoiseScheduler {
  readonly numTrainTimesteps: number;
  readonly predictionType: PredictionType;
  readonly clipSample: boolean;
  readonly clipRange: [number, number];
  readonly tables: NoiseTables;
  /** Rounds a scalar coefficient to the schedule's precision (Math.fround for float32). */
  protected readonly round: (x: number) => number;
  /** Inference timesteps, descending, after `setTimesteps`. */
  timesteps: number[];
  numInferenceSteps: number;

  constructor(options: ScheduleOptions = {}) {
    const o = { ...MAISI_SCHEDULE, ...options };
    this.numTrainTimesteps = integer('numTrainTimesteps', o.numTrainTimesteps, { min: 1 });
    const schedule = oneOf('schedule', o.schedule, ['linear', 'scaled_linear', 'cosine'] as const);
    number('betaStart', o.betaStart, { min: 0, exclusiveMin: true, max: 1 });
    number('betaEnd', o.betaEnd, { min: 0, exclusiveMin: true, max: 1 });
    this.predictionType = oneOf('predictionType', o.predictionType, [
      'epsilon',
      'sample',
      'v_prediction',
    ] as const);
    this.clipSample = o.clipSample;
    this.clipRange = [number('clipSampleMin', o.clipSampleMin), number('clipSampleMax', o.clipSampleMax)];
    const precision = oneOf('precision', o.precision, ['float32', 'float64'] as const);
    this.round = precision === 'float32' ? Math.fround : identity;
    this.tables = noiseTables(schedule, this.numTrainTimesteps, o.betaStart, o.betaEnd, precision);
    this.numInferenceSteps = this.numTrainTimesteps;
    this.timesteps = Array.from({ length: this.numTrainTimesteps }, (_, i) => this.numTrainTimesteps - 1 - i);
  }

  protected checkTimestep(t: number, name = 'timestep'): number {
    return integer(name, t, { min: 0, max: this.numTrainTimesteps - 1 });
  }

  /** ᾱ_t (a float32 value unless the precision is float64). */
  alphaCumprod(t: number): number {
    return this.tables.alphasCumprod[this.checkTimestep(t)];
  }

  /**
   * √ᾱ_t and √(1 − ᾱ_t) shaped to broadcast over `like` (B, ...), one timestep per batch element or
   * one for all; the caller's tidy owns them.
   */
  private signalAndNoiseScales(like: Tensor, timesteps: number | readonly number[]): [Tensor, Tensor] {
    const ts = typeof timesteps === 'number' ? [timesteps] : [...timesteps];
    const batch = like.shape[0];
    if (ts.length !== 1 && ts.length !== batch) {
      fail('timesteps', `expected 1 or ${batch} values (the batch size), got ${ts.length}`);
    }
    const a = ts.map((t) => this.alphaCumprod(t));
    const f = this.round;
    const shape = [ts.length, ...like.shape.slice(1).map(() => 1)];
    return [
      tensor(a.map((v) => f(Math.sqrt(v)))).reshape(shape),
      tensor(a.map((v) => f(Math.sqrt(f(1 - v))))).reshape(shape),
    ];
  }

  /**
   * Forward diffusion q(x_t | x_0): sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·noise, with one timestep per batch
   * element (or one for all).
   */
  addNoise(original: Tensor, noise: Tensor, timesteps: number | readonly number[]): Tensor {
    return tidy(() => {
      const [sa, sb] = this.signalAndNoiseScales(original, timesteps);
      return sa.mul(original).add(sb.mul(noise));
    });
  }

  /**
   * What the model learns to output for x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·noise under this prediction type:
   * the noise, x₀ itself, or the velocity v = √ᾱ_t·noise − √(1−ᾱ_t)·x₀ (MONAI's get_velocity).
   */
  trainingTarget(original: Tensor, noise: Tensor, timesteps: number | readonly number[]): Tensor {
    if (this.predictionType === 'epsilon') return noise.clone();
    if (this.predictionType === 'sample') return original.clone();
    return tidy(() => {
      const [sa, sb] = this.signalAndNoiseScales(original, timesteps);
      return sa.mul(noise).sub(sb.mul(original));
    });
  }

  /** x̂₀ from the model output for the sample x_t at timestep t (the prediction type's inverse). */
  predictedOriginal(modelOutput: Tensor, sample: Tensor, timestep: number): Tensor {
    const { x0, eps } = this.predictOriginal(modelOutput, sample, this.alphaCumprod(timestep));
    eps.dispose();
    return x0;
  }

  /** x0 and ε from the model output, for ᾱ_t = a (MONAI's three prediction types). */
  protected predictOriginal(modelOutput: Tensor, sample: Tensor, a: number): { x0: Tensor; eps: Tensor } {
    const f = this.round;
    const sa = f(Math.sqrt(a));
    const sb = f(Math.sqrt(f(1 - a)));
    return tidy(() => {
      let x0: Tensor;
      let eps: Tensor;
      if (this.predictionType === 'epsilon') {
        x0 = sample.sub(modelOutput.mul(sb)).div(sa);
        eps = modelOutput.clone();
      } else if (this.predictionType === 'sample') {
        x0 = modelOutput.clone();
        eps = sample.sub(x0.mul(sa)).div(sb);
      } else {
        x0 = sample.mul(sa).sub(modelOutput.mul(sb));
        eps = modelOutput.mul(sa).add(sample.mul(sb));
      }
      if (this.clipSample) x0 = x0.clamp(this.clipRange[0], this.clipRange[1]);
      return { x0, eps };
    });
  }

  /**
   * Evenly spaced inference timesteps, descending: round(i·T/n) + stepsOffset for i = n−1 … 0
   * (MONAI's "leading" spacing with an integer ratio T // n).
   */
  setTimesteps(numInferenceSteps: number, stepsOffset = 0): number[] {
    const n = integer('numInferenceSteps', numInferenceSteps, { min: 1, max: this.numTrainTimesteps });
    const ratio = Math.floor(this.numTrainTimesteps / n);
    this.numInferenceSteps = n;
    this.timesteps = Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + stepsOffset);
    return this.timesteps;
  }

  /** Timesteps as an int64 tensor (for models that take a tensor). */
  timestepTensor(t: number | readonly number[]): Tensor {
    const ts = typeof t === 'number' ? [t] : [...t];
    return tensor(
      ts.map((v) => this.checkTimestep(v)),
      { dtype: 'int64' },
    );
  }
}
