/**
 * The two training stages of diffreg's default model, as MAISI trains its networks:
 *   (a) the KL autoencoder on image patches: L1 reconstruction + a small KL term;
 *   (b) the ε-prediction diffusion U-Net on scaled latents (DDPM, 1000 steps, scaled-linear β), with
 *       body-region and spacing conditioning, MSE loss. As MAISI does, latents are computed once by the
 *       trained encoder (here: a pool of encoded, augmented patches) and the U-Net trains on those.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, type RawTensor } from '../../engine/checkpoint/index.ts';
import { cat, F, Generator, manualSeed, noGrad, randnLike, Tensor, tidy } from '../../engine/index.ts';
import { Random } from '../../geometry/random.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { AutoencoderKlMaisi, type LatentDistribution } from '../maisi/autoencoder.ts';
import type { AutoencoderMaisiConfig, UNetMaisiConfig } from '../maisi/config.ts';
import { DiffusionModelUNetMaisi, maisiConditioning, type UNetConditioning } from '../maisi/unet.ts';
import { DDPMScheduler } from '../schedulers/ddpm.ts';
import { rawOf } from '../training/checkpoint.ts';
import { DEFAULT_AUGMENT, NO_AUGMENT, samplePatches, type LoadedCase } from './data.ts';
import { backpropagate, DEFAULT_LOOP, runLoop, type LoopOptions, type LoopResult } from '../training/loop.ts';
import { denoisingValidation, diffusionLoss } from '../training/diffusion-loss.ts';

export interface AutoencoderTrainOptions extends LoopOptions {
  config: AutoencoderMaisiConfig;
  /** Training patch edge (voxels of the network grid; a multiple of 32). */
  patchSize: number;
  batchSize: number;
  /** Weight of the KL term (MAISI: 1e-6). */
  klWeight: number;
  /** Number of fixed held-out patches of the validation loss. */
  validationPatches: number;
}

/** KL divergence of N(μ, σ²) from N(0, 1), summed over latent elements, averaged over the batch. */
export function klDivergence(d: LatentDistribution): Tensor {
  return tidy(() => {
    const v = d.sigma.square();
    return d.mu.square().add(v).sub(v.log()).sub(1).sum([1, 2, 3, 4]).mul(0.5).mean();
  });
}

/** Fixed, unaugmented patches of the validation cases (same seed → same patches). */
function validationSet(cases: readonly LoadedCase[], size: number, count: number, seed: number): Tensor[] {
  const random = new Random(seed ^ 0x5eed);
  return Array.from({ length: count }, () =>
    samplePatches(cases, size, 1, random, NO_AUGMENT).patches.keep(),
  );
}

/** Stage (a): trains the autoencoder (resuming in `o.dir`); returns the model and the log. */
export function trainAutoencoder(
  o: AutoencoderTrainOptions,
  train: readonly LoadedCase[],
  validation: readonly LoadedCase[],
  progress?: ProgressFn,
): LoopResult & { autoencoder: AutoencoderKlMaisi } {
  const opts = { ...DEFAULT_LOOP, ...o };
  manualSeed(opts.seed); // the weight initialisation draws from the global generator
  const ae = new AutoencoderKlMaisi(opts.config);
  const held = validationSet(validation, opts.patchSize, opts.validationPatches, opts.seed);
  const result = runLoop(
    'autoencoder',
    ae,
    opts,
    (_step, { random, generator }) => {
      const { patches } = samplePatches(train, opts.patchSize, opts.batchSize, random, DEFAULT_AUGMENT);
      const [loss, l1, kl] = tidy(() => {
        const d = ae.encode(patches);
        const recon = ae.decode(ae.sample(d, generator));
        const l1 = F.l1Loss(recon, patches);
        const kl = klDivergence(d);
        return [l1.add(kl.mul(opts.klWeight)), l1, kl];
      });
      const step = backpropagate(loss, { l1, kl });
      patches.dispose();
      return step;
    },
    () =>
      noGrad(
        () => held.reduce((s, x) => s + tidy(() => F.l1Loss(ae.reconstruct(x), x).item()), 0) / held.length,
      ),
    progress,
  );
  for (const t of held) t.dispose();
  return { ...result, autoencoder: ae.eval() };
}

/** A pool of encoded patches: latent distributions and the conditioning of the cases they came from. */
export interface LatentPool {
  mu: Tensor[];
  sigma: Tensor[];
  caseIndex: number[];
}

/** Encodes `count` patches of `imageSize`³ (augmented or not), seeded; saved to / reloaded from `path`. */
export function latentPool(
  ae: AutoencoderKlMaisi,
  cases: readonly LoadedCase[],
  count: number,
  imageSize: number,
  seed: number,
  augment: boolean,
  path: string,
  progress?: ProgressFn,
): LatentPool {
  if (existsSync(path)) {
    const { tensors, metadata } = readSafetensors(path);
    const get = (k: string) => {
      const r = tensors.get(k) as RawTensor;
      return Tensor.fromBytes(r.data, r.dtype, r.shape).keep();
    };
    const caseIndex = JSON.parse(metadata.caseIndex) as number[];
    if (caseIndex.length === count) {
      return {
        mu: caseIndex.map((_, i) => get(`mu.${i}`)),
        sigma: caseIndex.map((_, i) => get(`sigma.${i}`)),
        caseIndex,
      };
    }
  }
  const random = new Random(seed ^ 0x1a7e);
  const pool: LatentPool = { mu: [], sigma: [], caseIndex: [] };
  for (let i = 0; i < count; i++) {
    const { patches, draws } = samplePatches(
      cases,
      imageSize,
      1,
      random,
      augment ? DEFAULT_AUGMENT : NO_AUGMENT,
    );
    const d = noGrad(() => ae.encode(patches));
    patches.dispose();
    pool.mu.push(d.mu.keep());
    pool.sigma.push(d.sigma.keep());
    pool.caseIndex.push(draws[0].caseIndex);
    progress?.({ stage: 'encoding latents', done: i + 1, total: count });
  }
  const tensors: [string, RawTensor][] = [];
  pool.mu.forEach((m, i) => tensors.push([`mu.${i}`, rawOf(m)], [`sigma.${i}`, rawOf(pool.sigma[i])]));
  writeSafetensors(path, tensors, { caseIndex: JSON.stringify(pool.caseIndex) });
  return pool;
}

/** MAISI's latent scale: 1 / std of latent samples (μ + ε·σ) of the training pool. */
export function latentScaleFactor(pool: LatentPool, seed: number): number {
  const generator = new Generator(seed);
  return noGrad(() =>
    tidy(() => {
      const z = cat(
        pool.mu.map((m, i) => m.add(randnLike(m, { generator }).mul(pool.sigma[i])).flatten()),
        0,
      );
      return 1 / z.std().item();
    }),
  );
}

/** Conditioning rows (B, ·) for pool entries. */
function conditioning(cases: readonly LoadedCase[], indices: readonly number[]): Required<UNetConditioning> {
  return tidy(() => {
    const rows = indices.map((i) =>
      maisiConditioning(cases[i].region.top, cases[i].region.bottom, cases[i].spacing),
    );
    return {
      topRegionIndex: cat(
        rows.map((r) => r.topRegionIndex),
        0,
      ),
      bottomRegionIndex: cat(
        rows.map((r) => r.bottomRegionIndex),
        0,
      ),
      spacing: cat(
        rows.map((r) => r.spacing),
        0,
      ),
    };
  });
}

export interface DiffusionTrainOptions extends LoopOptions {
  config: UNetMaisiConfig;
  batchSize: number;
  /** Image patch edge whose latent (edge / 4) the U-Net trains on. */
  imagePatchSize: number;
  /** Encoded training and validation patches. */
  poolSize: number;
  validationPoolSize: number;
}

/** The DDPM noise schedule the U-Net is trained with (MAISI v1 "ddpm"). */
export const TRAINING_SCHEDULER = (): DDPMScheduler => new DDPMScheduler();

/**
 * Stage (b): encodes latent pools with the trained autoencoder (cached in `o.dir`), computes the
 * scale factor, and trains the U-Net to predict the noise (resuming in `o.dir`).
 */
export function trainDiffusion(
  o: DiffusionTrainOptions,
  ae: AutoencoderKlMaisi,
  train: readonly LoadedCase[],
  validation: readonly LoadedCase[],
  progress?: ProgressFn,
): LoopResult & { unet: DiffusionModelUNetMaisi; scaleFactor: number } {
  const opts = { ...DEFAULT_LOOP, ...o };
  const pool = latentPool(
    ae,
    train,
    opts.poolSize,
    opts.imagePatchSize,
    opts.seed,
    true,
    join(opts.dir, 'latents-train.safetensors'),
    progress,
  );
  const held = latentPool(
    ae,
    validation,
    opts.validationPoolSize,
    opts.imagePatchSize,
    opts.seed + 1,
    false,
    join(opts.dir, 'latents-validation.safetensors'),
    progress,
  );
  const scaleFactor = latentScaleFactor(pool, opts.seed);
  writeFileAtomic(join(opts.dir, 'scale-factor.json'), JSON.stringify({ scaleFactor }) + '\n');
  const scheduler = TRAINING_SCHEDULER();
  manualSeed(opts.seed);
  const unet = new DiffusionModelUNetMaisi(opts.config);
  const T = scheduler.numTrainTimesteps;
  const denoisingLoss = diffusionLoss<Required<UNetConditioning>>(
    (x, t, c) => unet.forward(x, t, c),
    scheduler,
  );

  const loss = (
    entries: LatentPool,
    cases: readonly LoadedCase[],
    picks: number[],
    timesteps: number[],
    generator: Generator,
    flips: number[][] = picks.map(() => []),
  ): Tensor =>
    tidy(() => {
      const latent = (i: number, k: number) => {
        const z = entries.mu[i].add(randnLike(entries.mu[i], { generator }).mul(entries.sigma[i]));
        return flips[k].length ? z.flip(flips[k]) : z;
      };
      const z = cat(picks.map(latent), 0).mul(scaleFactor);
      const c = conditioning(
        cases,
        picks.map((i) => entries.caseIndex[i]),
      );
      return denoisingLoss(z, timesteps, generator, c).loss;
    });

  const result = runLoop(
    'diffusion U-Net',
    unet,
    opts,
    (_step, { random, generator }) => {
      const picks = Array.from({ length: opts.batchSize }, () => random.integer(pool.mu.length));
      const timesteps = picks.map(() => random.integer(T));
      // The pool is small: flipping latent axes (the autoencoder was trained with flips) adds variety.
      const flips = picks.map(() => [2, 3, 4].filter(() => random.uniform() < 0.5));
      return backpropagate(loss(pool, train, picks, timesteps, generator, flips));
    },
    // The latent draws too are the same at every validation (from the validation generator).
    () =>
      denoisingValidation(scheduler, held.mu.length, opts.seed, (i, t, generator) =>
        loss(held, validation, [i], [t], generator),
      ),
    progress,
  );
  for (const t of [...pool.mu, ...pool.sigma, ...held.mu, ...held.sigma]) t.dispose();
  return { ...result, unet: unet.eval(), scaleFactor };
}
