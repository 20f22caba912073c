/**
 * DiffuseReg's sampling (Zhuo & Shen 2024): a displacement field drawn by reverse diffusion from
 * Gaussian noise, conditioned on the image pair through the denoiser. The diffusion runs on the flow
 * normalised per axis with the training set's statistics; results are de-normalised, (1, 3, w, h, d)
 * in network-grid voxels.
 *
 * - Samplers: ancestral DDPM over all T steps (the authors'), or DDIM (η = 0) with any number of
 *   steps. One Generator, seeded once, draws every sample's start noise and DDPM noise in order, so a
 *   seed fixes all N samples.
 * - The denoiser outputs ε̂, x̂₀ or v̂ (its prediction type); each step turns the output into x̂₀ and
 *   steps the scheduler from x̂₀ (with the noise consistent with it, ε̂ = (x_t − √ᾱ_t·x̂₀)/√(1−ᾱ_t)),
 *   which is the same step whatever the type.
 * - Steering (x₀-guidance): at each step x̂₀ is moved down the gradient of the guidance penalty
 *   (guidance.ts) taken with respect to x̂₀ alone, x̂₀' = x̂₀ − ∇P(x̂₀), before the step. The gradient
 *   does not pass through the network: that backward pass would cost about twice its forward pass
 *   at every step on 2 cores.
 * - Early stop: a sample ends at the first step whose φ̂₀ moved by less than `tolerance` network
 *   voxels at every voxel (the largest displacement change over voxels) since the previous step.
 * - The field of a sample is φ̂₀ at its last step. Without early stop this is the sampler's own
 *   result: both last steps (t = 0) return their x̂₀ unchanged and add no noise.
 */
import {
  dispose,
  enableGrad,
  Generator,
  grad,
  noGrad,
  randn,
  stack,
  tensor,
  tidy,
  type Tensor,
} from '../../engine/index.ts';
import { DDIMScheduler } from '../../models/schedulers/ddim.ts';
import { DDPMScheduler, type SchedulerStep } from '../../models/schedulers/ddpm.ts';
import {
  DIFFUSEREG_SCHEDULE,
  type NoiseScheduler,
  type PredictionType,
} from '../../models/schedulers/schedule.ts';
import type { DiffuseRegDenoiser } from '../../models/diffusereg/index.ts';
import { FOLDING_MARGIN } from '../../models/losses/index.ts';
import { fail } from '../../util/errors.ts';
import { integer, invalid, number, oneOf, vec3 } from '../../util/is.ts';
import type { ImagePair } from './data.ts';
import { guidancePenalty, type Guidance, type SimilarityMeasure } from './guidance.ts';

/** Per-axis statistics of the training flows (network voxels): the diffusion runs on (φ − mean)/std. */
export interface FlowNormalisation {
  mean: [number, number, number];
  std: [number, number, number];
}

/** The denoiser's output (ε̂, x̂₀ or v̂: its prediction type) for the normalised noisy flow x_t (1, 3, w, h, d) at timestep t, given the pair. */
export type FlowDenoiser = (xt: Tensor, t: number, images: ImagePair) => Tensor;

export type Sampler = 'ddpm' | 'ddim';

/** What the sampler reports after each step (to `onStep`). */
export interface SamplingStep {
  /** Which of the samples (0-based). */
  sample: number;
  /** Steps this sample has run (1-based). */
  step: number;
  /** Steps planned per sample. */
  steps: number;
  timestep: number;
  /** φ̂₀ (1, 3, w, h, d) in network voxels; valid during the call only (clone it to keep it). */
  prediction: Tensor;
  /** True at the sample's last step (the planned last, or the early stop). */
  last: boolean;
}

export interface SampleOptions {
  normalisation: FlowNormalisation;
  /** What the denoiser outputs (default 'epsilon', the authors'). */
  prediction?: PredictionType;
  /** 'ddpm' (all T steps) or 'ddim' (default). */
  sampler?: Sampler;
  /** Steps per sample: T for DDPM (its only value); 1 … T for DDIM (default 50). */
  steps?: number;
  /** Samples drawn and averaged (default 1). */
  samples?: number;
  /** Seed of the one Generator all samples draw from (default 0). */
  seed?: number;
  /**
   * Guidance strengths (0, the default, turns a penalty off; see guidance.ts). The move is made on the
   * normalised flow, so component a of the field moves by strength·std_a²·∂P/∂u_a.
   */
  guidance?: Partial<Guidance>;
  /** Early stop below this largest change of φ̂₀ between steps, in network voxels (0, the default, = off). */
  tolerance?: number;
  onStep?: (s: SamplingStep) => void;
}

export interface SampleResult {
  /** The displacement (1, 3, w, h, d) in network voxels: the mean of the samples. */
  field: Tensor;
  /**
   * With two or more samples: the standard deviation over samples (N − 1 denominator) of each
   * component, (1, 3, w, h, d) in network voxels. Its root sum of squares weighted by the spacing,
   * √Σ(s_a·std_a)², is the uncertainty in mm whatever the grid's direction (√ of the covariance's trace).
   */
  std?: Tensor;
  /** Steps each sample ran (fewer than planned after an early stop). */
  stepsRun: number[];
}

const NO_GUIDANCE: Guidance = {
  folding: 0,
  smoothness: 0,
  similarity: 0,
  measure: 'ncc',
  foldingMargin: FOLDING_MARGIN,
};

function checkImages(images: ImagePair): number[] {
  const shape = images?.fixed?.shape;
  if (!shape || shape.length !== 5 || shape[0] !== 1 || shape[1] !== 1) {
    fail('fixed image', `expected (1, 1, w, h, d), got [${shape?.join(', ')}]`);
  }
  if (images.moving?.shape.join() !== shape.join()) {
    fail(
      'moving image',
      `expected [${shape.join(', ')}] as the fixed image, got [${images.moving?.shape.join(', ')}]`,
    );
  }
  return shape.slice(2);
}

function checkGuidance(g: Partial<Guidance> = {}): Guidance {
  const nonNegative = (name: keyof Guidance) =>
    number(`guidance.${name}`, g[name] ?? NO_GUIDANCE[name], { min: 0 });
  return {
    folding: nonNegative('folding'),
    smoothness: nonNegative('smoothness'),
    similarity: nonNegative('similarity'),
    measure: oneOf<SimilarityMeasure>('guidance.measure', g.measure ?? NO_GUIDANCE.measure, ['ncc', 'ssim']),
    foldingMargin: nonNegative('foldingMargin'),
  };
}

type Plan = ReturnType<typeof plan>;

/** The checked options, the scheduler's step and its timesteps; every option is checked before any work. */
function plan(o: SampleOptions) {
  const mean = vec3('normalisation.mean', o.normalisation?.mean);
  const std = vec3('normalisation.std', o.normalisation?.std);
  std.forEach((s, a) => number(`normalisation.std[${a}]`, s, { min: 0, exclusiveMin: true }));
  const sampler = oneOf<Sampler>('sampler', o.sampler ?? 'ddim', ['ddpm', 'ddim']);
  const T = DIFFUSEREG_SCHEDULE.numTrainTimesteps;
  const steps = integer('steps', o.steps ?? (sampler === 'ddpm' ? T : 50), { min: 1, max: T });
  if (sampler === 'ddpm' && steps !== T)
    throw invalid('steps', `${T} with the ddpm sampler (all timesteps; ddim takes any number)`, steps);
  const samples = integer('samples', o.samples ?? 1, { min: 1 });
  const generator = new Generator(o.seed ?? 0);
  const guidance = checkGuidance(o.guidance);
  const tolerance = number('tolerance', o.tolerance ?? 0, { min: 0 });
  if (o.onStep !== undefined && typeof o.onStep !== 'function')
    throw invalid('onStep', 'a function', o.onStep);
  const prediction = oneOf<PredictionType>('prediction', o.prediction ?? 'epsilon', [
    'epsilon',
    'sample',
    'v_prediction',
  ]);
  // The network's output becomes x̂₀ under its own type; the sampler then steps from x̂₀.
  const network = new DDPMScheduler({ ...DIFFUSEREG_SCHEDULE, predictionType: prediction });
  const fromX0 = { ...DIFFUSEREG_SCHEDULE, predictionType: 'sample' as const };
  let scheduler: NoiseScheduler;
  let step: (x0: Tensor, t: number, x: Tensor) => SchedulerStep;
  if (sampler === 'ddpm') {
    const ddpm = new DDPMScheduler(fromX0);
    step = (x0, t, x) => ddpm.step(x0, t, x, generator);
    scheduler = ddpm;
  } else {
    const ddim = new DDIMScheduler(fromX0);
    ddim.setTimesteps(steps);
    step = (x0, t, x) => ddim.step(x0, t, x);
    scheduler = ddim;
  }
  return {
    mean,
    std,
    samples,
    generator,
    guidance,
    guided: guidance.folding > 0 || guidance.smoothness > 0 || guidance.similarity > 0,
    tolerance,
    onStep: o.onStep,
    scheduler,
    original: (output: Tensor, t: number, x: Tensor) => network.predictedOriginal(output, x, t),
    step,
  };
}

/** The largest length over voxels of the displacement difference a − b (B, 3, ...). */
function largestChange(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).square().sum(1).amax().sqrt().item());
}

function run(denoise: FlowDenoiser, images: ImagePair, spatial: number[], p: Plan): SampleResult {
  const { scheduler, guidance, generator } = p;
  const timesteps = scheduler.timesteps;
  const view = (v: number[]) => tensor(v).reshape([1, 3, 1, 1, 1]);
  const [mean, std] = [view(p.mean), view(p.std)];
  const denormalise = (x: Tensor) => x.mul(std).add(mean);

  /** x̂₀ moved down the penalty's gradient (x₀-guidance, module comment). */
  const guide = (x0: Tensor): Tensor =>
    tidy(() => {
      const leaf = x0.detach().requiresGrad_();
      const gradient = enableGrad(() => grad(guidancePenalty(denormalise(leaf), images, guidance), leaf)[0]!);
      return x0.sub(gradient);
    });

  /** One sample: its φ̂₀ at the last step run, and how many steps that was. */
  const drawOne = (sample: number): { field: Tensor; stepsRun: number } => {
    let x = randn([1, 3, ...spatial], { generator });
    let previous: Tensor | undefined;
    let stepsRun = 0;
    for (const t of timesteps) {
      const next = tidy(() => {
        let x0 = p.original(denoise(x, t, images), t, x);
        if (p.guided) x0 = guide(x0);
        const out = p.step(x0, t, x);
        return { sample: out.sample, prediction: denormalise(out.predOriginalSample) };
      });
      stepsRun++;
      const settled =
        p.tolerance > 0 && previous !== undefined && largestChange(next.prediction, previous) < p.tolerance;
      const last = settled || stepsRun === timesteps.length;
      p.onStep?.({
        sample,
        step: stepsRun,
        steps: timesteps.length,
        timestep: t,
        prediction: next.prediction,
        last,
      });
      dispose([x, previous]);
      x = next.sample;
      previous = next.prediction;
      if (last) break;
    }
    x.dispose();
    return { field: previous!, stepsRun };
  };

  return noGrad(() => {
    const drawn = Array.from({ length: p.samples }, (_, k) => drawOne(k));
    const fields = drawn.map((d) => d.field);
    const stepsRun = drawn.map((d) => d.stepsRun);
    dispose([mean, std]);
    if (fields.length === 1) return { field: fields[0], stepsRun };
    const result = tidy(() => {
      const all = stack(fields, 0);
      return { field: all.mean(0), std: all.std(0, { unbiased: true }), stepsRun };
    });
    dispose(fields);
    return result;
  });
}

/**
 * Samples the pair's displacement with `denoise` (see the module comment). Images (1, 1, w, h, d) on
 * the network grid, as the denoiser was trained on them.
 */
export function sampleFlow(denoise: FlowDenoiser, images: ImagePair, options: SampleOptions): SampleResult {
  return run(denoise, images, checkImages(images), plan(options));
}

/**
 * `sampleFlow` with the trained network as the denoiser: the pair's image tokens are computed once
 * (they do not depend on the timestep) and freed at the end.
 */
export function sampleWithNetwork(
  model: DiffuseRegDenoiser,
  images: ImagePair,
  options: SampleOptions,
): SampleResult {
  const spatial = checkImages(images);
  const p = plan(options);
  const tokens = noGrad(() => model.encodeImages(images.fixed, images.moving));
  try {
    const denoise = (xt: Tensor, t: number) => model.denoise(xt, tensor([t], { dtype: 'int64' }), tokens);
    return run(denoise, images, spatial, p);
  } finally {
    dispose(tokens);
  }
}
