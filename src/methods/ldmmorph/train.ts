/**
 * LDM-Morph's network stage: the registration network trained unsupervised on ACDC slice pairs with
 * the hierarchical loss, the LDM frozen (its features are inputs; its encoder is the latent term's E,
 * through which the gradient flows to the warped image). Batch 1 and Adam at 1e-4, as the authors.
 * The ablation variants change one switch each against the full model. Pairs are flipped along the
 * axes the LDM's U-Net was trained with, so that their features stay within what it learned.
 *
 * The pair's features are computed at every step, not cached per slice: they cost 0.06–0.08 s of a
 * step of about 0.4 s, and a cache would freeze both the noise and the flips (the features of a
 * flipped slice are not the flipped features), or hold every flip of every training slice: 776
 * slices × 2 frames × 4 flips × 416 KB = 2.6 GB at the default widths.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Generator, manualSeed, noGrad, tidy } from '../../engine/index.ts';
import { LDM2D_UNET_TRAINING, type Ldm2dModel } from '../../models/ldm2d/index.ts';
import {
  LDM_MORPH_LOSS,
  LdmMorph,
  ldmMorphConfig,
  ldmMorphLoss,
  type LdmMorphConfig,
  type LdmMorphLossOptions,
} from '../../models/ldmmorph/index.ts';
import { adam, backpropagate, DEFAULT_LOOP, runLoop, type LoopOptions } from '../../models/training/loop.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { fail } from '../../util/errors.ts';
import { readJsonFile } from '../../util/json.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { randomSlicePair, type AcdcSlice } from './data.ts';
import { predictDisplacement } from './predict.ts';

/** The full model and the ablation variants (the paper's Table 3, as one switch each against the full model). */
export const LDM_MORPH_VARIANTS = [
  'full',
  'swin-only',
  'no-lgca',
  'no-latent-loss-gradient',
  'no-latent-loss',
  'ddim-inversion',
] as const;
export type LdmMorphVariant = (typeof LDM_MORPH_VARIANTS)[number];

const VARIANTS: Record<
  LdmMorphVariant,
  { network: Partial<LdmMorphConfig>; loss: Partial<LdmMorphLossOptions> }
> = {
  full: { network: {}, loss: {} },
  // The TransMorph-like Swin stream alone: no LDM features, so no LGCA either.
  'swin-only': { network: { ldmFeatures: false }, loss: {} },
  // LDM features joined by the LGCA's fusion alone, without cross-attention.
  'no-lgca': { network: { lgca: false }, loss: {} },
  // The authors' code: the latent term computed without gradient (a constant).
  'no-latent-loss-gradient': { network: {}, loss: { latentGradient: false } },
  'no-latent-loss': { network: {}, loss: { beta: 1 } },
  // The paper's features (DDIM inversion to t = 50 in 5 strides) against the authors' code's q_sample
  // at t = 1, both without the latent loss's gradient (the shipped variant 3).
  'ddim-inversion': {
    network: { featureExtraction: { timestep: 50, inversionSteps: 5 } },
    loss: { latentGradient: false },
  },
};

/** What a trained network was made from: written beside its checkpoints, checked on resume and export. */
export interface NetworkRecord {
  variant: LdmMorphVariant;
  config: LdmMorphConfig;
  loss: LdmMorphLossOptions;
  /** SHA-256 of the LDM files the network was trained with (its features and latent term depend on them). */
  ldm: Record<string, string>;
}

export interface NetworkStageOptions extends Partial<LoopOptions> {
  dir: string;
  steps: number;
  variant: LdmMorphVariant;
  /** Changes to LDM_MORPH (tiny networks in tests) before the variant's switches. */
  network?: Partial<LdmMorphConfig>;
}

/** The network's loop: Adam 1e-4 without weight decay (the authors'), cosine decay, validation every 500 steps. */
export const NETWORK_LOOP: Omit<LoopOptions, 'dir' | 'steps'> = {
  ...DEFAULT_LOOP,
  lr: 1e-4,
  weightDecay: 0,
  warmupSteps: 100,
  checkpointEvery: 500,
  validateEvery: 500,
  optimizer: adam,
};

/** The record of `variant` trained with `ldm`: the network's configuration takes the LDM's feature widths. */
export function networkRecord(
  variant: LdmMorphVariant,
  ldm: Ldm2dModel,
  ldmSha256: Record<string, string>,
  network: Partial<LdmMorphConfig> = {},
): NetworkRecord {
  const change = VARIANTS[variant];
  return {
    variant,
    config: ldmMorphConfig({
      ...network,
      ldmChannels: ldm.unet.featureChannels.map((c) => 2 * c),
      ...change.network,
    }),
    loss: { ...LDM_MORPH_LOSS, ...change.loss },
    ldm: ldmSha256,
  };
}

const RECORD = 'network.json';

/** The record of a network stage folder. */
export const readNetworkRecord = (dir: string): NetworkRecord =>
  readJsonFile(join(dir, RECORD), 'LDM-Morph network record') as NetworkRecord;

/** Mean training loss of the network on the validation pairs (ES moving → ED fixed), the same noise each time. */
function validationLoss(
  network: LdmMorph,
  ldm: Ldm2dModel,
  pairs: readonly AcdcSlice[],
  loss: ReturnType<typeof ldmMorphLoss>,
  seed: number,
): number {
  const generator = new Generator(seed);
  return noGrad(() => {
    const sum = pairs.reduce(
      (s, p) =>
        s +
        tidy(() => loss(p.ed, p.es, predictDisplacement(network, ldm, p.es, p.ed, generator)).total.item()),
      0,
    );
    return sum / pairs.length;
  });
}

/**
 * Trains the network of `o.variant` in `o.dir` (resuming from its newest checkpoint) on random pairs
 * of `train`, validated on `validation` (mid-ventricular ES → ED pairs).
 */
export function trainNetwork(
  o: NetworkStageOptions,
  ldm: Ldm2dModel,
  ldmSha256: Record<string, string>,
  train: readonly AcdcSlice[],
  validation: readonly AcdcSlice[],
  progress?: ProgressFn,
) {
  const record = networkRecord(o.variant, ldm, ldmSha256, o.network);
  const recordPath = join(o.dir, RECORD);
  if (existsSync(recordPath) && readFileSync(recordPath, 'utf8') !== JSON.stringify(record))
    fail(
      recordPath,
      `holds a network of another variant, configuration or LDM; remove ${o.dir} or use a new run folder`,
    );
  writeFileAtomic(recordPath, JSON.stringify(record));
  const opts: LoopOptions = { ...NETWORK_LOOP, ...o };
  const loss = ldmMorphLoss(record.loss, (x) => ldm.autoencoder.encodeLatent(x));
  manualSeed(opts.seed); // the weight initialisation draws from the global generator
  const network = new LdmMorph(record.config);
  const result = runLoop(
    `LDM-Morph network (${o.variant})`,
    network,
    opts,
    (_step, { random, generator }) => {
      const { fixed, moving } = randomSlicePair(train, random, LDM2D_UNET_TRAINING.flipAxes);
      const terms = tidy(() =>
        loss(fixed, moving, predictDisplacement(network, ldm, moving, fixed, generator)),
      );
      fixed.dispose();
      moving.dispose();
      return backpropagate(terms.total, {
        image: terms.image,
        latent: terms.latent,
        smoothness: terms.smooth,
      });
    },
    () => validationLoss(network, ldm, validation, loss, opts.seed + 1),
    progress,
  );
  return { ...result, network: network.eval(), record };
}
