/**
 * DiffuseReg's second training stage: the conditional Swin-UNETR learns to denoise the bootstrap
 * network's displacement fields x₀ = φ(F, M) of the training pairs, conditioned on the pair.
 *
 *   loss = MSE(output, target) + w_t·[λ₁·(1 − SSIM₉)(F, M∘φ̂₀) + λ₂·‖∇φ̂₀‖²],   φ̂₀ from the output at t,
 *
 * with the authors' λ₁ = 1, λ₂ = 0.1. The network predicts x₀ (MONAI's 'sample' prediction type) by
 * default, w_t = 1. The authors' ε-prediction ('epsilon': target ε, w_t = ᾱ_t) is kept as an option:
 * its first run here (3000 steps, noise MSE 0.17 on validation) sampled fields worse than identity
 * (DDIM-10 mean Dice 0.487 against 0.622, 38 % det J ≤ 0), because φ̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t
 * divides the network's error by √ᾱ_t, which reaches 0.0067 at t = T: at large t the sampler commits
 * to an amplified error it cannot undo. An x₀-predicting network meets its image and smoothness terms
 * at every t without that factor. (Under ε-prediction those terms are weighted by ᾱ_t: unweighted,
 * they grow ~10⁴-fold at large t and swamp the noise loss, measured in a pilot run's first steps.)
 *
 * Targets are computed once per training pair (ED→ES and ES→ED) and cached with their per-axis
 * normalisation; each step draws a pair, flips images and field alike along random axes (a flip of
 * axis a also negates component a of the displacement), a timestep and the noise.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, type RawTensor } from '../../engine/checkpoint/index.ts';
import { cat, Generator, manualSeed, noGrad, Tensor, tidy } from '../../engine/index.ts';
import { acdcSplit } from '../../data/acdc.ts';
import type { Random } from '../../geometry/random.ts';
import { denoiserConfig, DiffuseRegDenoiser, type DenoiserConfig } from '../../models/diffusereg/index.ts';
import { smoothnessLoss, spatialTransformer, ssimLoss } from '../../models/losses/index.ts';
import { DDPMScheduler } from '../../models/schedulers/ddpm.ts';
import { DIFFUSEREG_SCHEDULE, type PredictionType } from '../../models/schedulers/schedule.ts';
import { rawOf } from '../../models/training/checkpoint.ts';
import { denoisingValidation, diffusionLoss } from '../../models/training/diffusion-loss.ts';
import {
  backpropagate,
  DEFAULT_LOOP,
  runLoop,
  type LoopOptions,
  type LoopResult,
} from '../../models/training/loop.ts';
import type { VoxelMorph } from '../../models/voxelmorph/index.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { number, oneOf } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';
import type { NetworkCase } from './data.ts';
import type { FlowNormalisation } from './sample.ts';

export interface DenoiserLoss {
  /** Weight of (1 − SSIM) between fixed and warped moving (authors: 1). */
  ssim: number;
  /** Weight of ‖∇φ̂₀‖² (authors: 0.1). */
  smoothness: number;
  /** SSIM window (voxels per axis; the authors' kernel 9 in-plane, 3 across the 10-mm slices). */
  ssimWindow: [number, number, number];
}

export const DEFAULT_DENOISER_LOSS: DenoiserLoss = { ssim: 1, smoothness: 0.1, ssimWindow: [9, 9, 3] };

export interface DenoiserTrainOptions extends Partial<LoopOptions> {
  /** Run folder: checkpoints, logs, the targets' cache and denoiser.json. */
  dir: string;
  steps: number;
  config?: Partial<DenoiserConfig>;
  loss?: DenoiserLoss;
  /** What the network outputs (default 'sample', x₀; the authors' 'epsilon'; see the module comment). */
  prediction?: PredictionType;
  /** Share of the steps whose timestep is drawn from the pure-noise range (DENOISER_TIMESTEPS). */
  highNoiseShare?: number;
}

/** What a trained denoiser's run folder records beside its checkpoints (denoiser.json). */
export interface DenoiserRecord {
  prediction: PredictionType;
  normalisation: FlowNormalisation;
  config: DenoiserConfig;
}

export const DEFAULT_DENOISER_PREDICTION: PredictionType = 'sample';

/**
 * The authors' recipe (AdamW, weight decay 1e-4, cosine to 1e-6, batch 1) at 5e-4 instead of their
 * 1e-4: in a 300-step pilot of the x₀-predicting network the held-out x₀ error reached 0.47 at 5e-4
 * and 0.59 at 1e-4, and our runs are 100× shorter than their 1200 epochs.
 */
export const DENOISER_LOOP: Omit<LoopOptions, 'dir' | 'steps'> = {
  ...DEFAULT_LOOP,
  lr: 5e-4,
  weightDecay: 1e-4,
  minLr: 1e-6,
  warmupSteps: 100,
  checkpointEvery: 100,
  validateEvery: 250,
};

/**
 * Timesteps: uniform over [0, T) (the authors) for half the steps, and from [0.75·T, T), where
 * ᾱ_t < 0.004 and x̂₀ can only come from the images, for the other half. There the network must read
 * the motion from the pair, and a sampler's first steps set the field's coarse shape from it. Uniform
 * draws put a quarter of the steps there: after 6000 steps (no images in the flow input) x̂₀ at
 * t = T correlated 0.11–0.28 with the target on validation pairs; images in the flow input, 300 steps:
 * 0.04–0.10 uniform, 0.21–0.41 with every step in the range.
 */
export const DENOISER_TIMESTEPS = { highNoiseShare: 0.5, highNoiseStart: 0.75 };

/** A training pair with its bootstrap field. */
interface Target {
  fixed: Tensor;
  moving: Tensor;
  flow: Tensor;
}

/** Both directions of every case: (ED fixed, ES moving) and (ES fixed, ED moving). */
function pairsOf(cases: readonly NetworkCase[]) {
  return cases.flatMap((c) => [
    { id: `${c.id}/ed-es`, fixed: c.ed, moving: c.es },
    { id: `${c.id}/es-ed`, fixed: c.es, moving: c.ed },
  ]);
}

/** The bootstrap fields of all pairs, cached in `path` (keyed by pair id). */
function targets(bootstrap: VoxelMorph, cases: readonly NetworkCase[], path: string): Target[] {
  const pairs = pairsOf(cases);
  const cached = existsSync(path) ? readSafetensors(path).tensors : new Map<string, RawTensor>();
  const flows = pairs.map((p) => {
    const raw = cached.get(p.id);
    if (raw) return Tensor.fromBytes(raw.data, raw.dtype, raw.shape).keep();
    return noGrad(() => bootstrap.forward(p.moving, p.fixed)).keep();
  });
  if (pairs.some((p) => !cached.has(p.id)))
    writeSafetensors(
      path,
      pairs.map((p, i): [string, RawTensor] => [p.id, rawOf(flows[i])]),
    );
  return pairs.map((p, i) => ({ fixed: p.fixed, moving: p.moving, flow: flows[i] }));
}

/** Per-axis mean and standard deviation of the training fields (the authors' §3.0.1 normalisation). */
export function flowStatistics(flows: readonly Tensor[]): FlowNormalisation {
  return noGrad(() =>
    tidy(() => {
      const all = cat(
        flows.map((f) => f.reshape(3, -1)),
        1,
      );
      const mean = all.mean(1);
      const std = all.std(1);
      const triple = (t: Tensor) => [...(t.toTypedArray() as Float32Array)] as [number, number, number];
      return { mean: triple(mean), std: triple(std) };
    }),
  );
}

const view = (v: readonly number[]) => Tensor.fromArray(Float32Array.from(v), [1, 3, 1, 1, 1]);

/** The pair flipped along tensor axes `axes` (2, 3, 4), the field's matching components negated. */
function flipped(t: Target, axes: number[]): Target {
  if (axes.length === 0) return t;
  return tidy(() => {
    const sign = [0, 1, 2].map((c) => (axes.includes(c + 2) ? -1 : 1));
    return {
      fixed: t.fixed.flip(axes),
      moving: t.moving.flip(axes),
      flow: t.flow.flip(axes).mul(view(sign)),
    };
  });
}

/**
 * Trains the denoiser in `o.dir` (resuming from its newest checkpoint) on the cases' bootstrap fields;
 * writes the targets' cache and denoiser.json there.
 */
export function trainDenoiser(
  o: DenoiserTrainOptions,
  cases: readonly NetworkCase[],
  bootstrap: VoxelMorph,
  progress?: ProgressFn,
): LoopResult & { denoiser: DiffuseRegDenoiser } & DenoiserRecord {
  const opts: LoopOptions = { ...DENOISER_LOOP, ...o };
  const loss = o.loss ?? DEFAULT_DENOISER_LOSS;
  const prediction = oneOf('prediction', o.prediction ?? DEFAULT_DENOISER_PREDICTION, [
    'epsilon',
    'sample',
    'v_prediction',
  ]);
  const highShare = number('highNoiseShare', o.highNoiseShare ?? DENOISER_TIMESTEPS.highNoiseShare, {
    min: 0,
    max: 1,
  });
  const config = denoiserConfig(o.config);
  const train = targets(
    bootstrap,
    cases.filter((c) => acdcSplit(c.id) === 'train'),
    join(opts.dir, 'targets-train.safetensors'),
  );
  const held = targets(
    bootstrap,
    cases.filter((c) => acdcSplit(c.id) === 'validation'),
    join(opts.dir, 'targets-validation.safetensors'),
  );
  const normalisation = flowStatistics(train.map((t) => t.flow));
  const record: DenoiserRecord = { prediction, normalisation, config };
  writeFileAtomic(join(opts.dir, 'denoiser.json'), JSON.stringify(record) + '\n');
  const mean = view(normalisation.mean).keep();
  const std = view(normalisation.std).keep();
  const scheduler = new DDPMScheduler({ ...DIFFUSEREG_SCHEDULE, predictionType: prediction });
  const T = scheduler.numTrainTimesteps;
  const highStart = Math.floor(DENOISER_TIMESTEPS.highNoiseStart * T);
  const timestep = (random: Random) =>
    random.uniform() < highShare ? highStart + random.integer(T - highStart) : random.integer(T);
  manualSeed(opts.seed); // the weight initialisation draws from the global generator
  const denoiser = new DiffuseRegDenoiser(config);
  const denoising = diffusionLoss<Target>(
    (x, t, pair) => denoiser.forward(x, t, pair.fixed, pair.moving),
    scheduler,
  );
  /** The loss terms of one pair at timestep t. */
  const terms = (pair: Target, t: number, generator: Generator) =>
    tidy(() => {
      const x0 = pair.flow.sub(mean).div(std);
      const { loss: mse, predicted, noisy } = denoising(x0, [t], generator, pair);
      const flow = scheduler.predictedOriginal(predicted, noisy, t).mul(std).add(mean);
      const warped = spatialTransformer(pair.moving, flow);
      const ssim = ssimLoss(pair.fixed, warped, { window: loss.ssimWindow });
      const smooth = smoothnessLoss(flow);
      const weight = prediction === 'epsilon' ? scheduler.alphaCumprod(t) : 1;
      const total = mse.add(ssim.mul(loss.ssim).add(smooth.mul(loss.smoothness)).mul(weight));
      return { total, mse, ssim, smooth };
    });

  const result = runLoop(
    'DiffuseReg denoiser',
    denoiser,
    opts,
    (_step, { random, generator }) => {
      const pair = flipped(
        train[random.integer(train.length)],
        [2, 3, 4].filter(() => random.uniform() < 0.5),
      );
      const { total, mse, ssim, smooth } = terms(pair, timestep(random), generator);
      return backpropagate(total, { mse, ssim, smoothness: smooth });
    },
    // The MSE part, of ε or x₀ as the prediction type says (runs of different types do not compare).
    () => denoisingValidation(scheduler, held.length, opts.seed, (i, t, g) => terms(held[i], t, g).mse),
    progress,
  );
  for (const t of [...train, ...held].map((p) => p.flow)) t.dispose();
  mean.dispose();
  std.dispose();
  return { ...result, denoiser: denoiser.eval(), ...record };
}
