/**
 * The default model's recipe (network widths and training settings, sized for a 2-core CPU) and the
 * step from a finished run to the shipped files in models/default.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../../engine/checkpoint/index.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { AutoencoderKlMaisi } from '../maisi/autoencoder.ts';
import { MAISI_V1_AUTOENCODER, MAISI_V1_UNET } from '../maisi/config.ts';
import { MAISI_SCHEDULE } from '../schedulers/schedule.ts';
import { DiffusionModelUNetMaisi } from '../maisi/unet.ts';
import { latestCheckpointStep } from '../training/checkpoint.ts';
import { halfWeights, loadStageWeights, sha256File } from '../shipped.ts';
import { CT_WINDOW, MR_PERCENTILES } from '../preprocess.ts';
import { BRAIN_VALIDATION, defaultCases, HEART_VALIDATION } from './data.ts';
import { DEFAULT_LOOP } from '../training/loop.ts';
import type { AutoencoderTrainOptions, DiffusionTrainOptions } from './train.ts';

export const DEFAULT_MODEL_PLAN: {
  autoencoder: Omit<AutoencoderTrainOptions, 'dir'>;
  diffusion: Omit<DiffusionTrainOptions, 'dir'>;
} = {
  autoencoder: {
    ...DEFAULT_LOOP,
    config: { ...MAISI_V1_AUTOENCODER, numChannels: [16, 32, 64], numResBlocks: [1, 1, 1], normNumGroups: 8 },
    steps: 2000,
    lr: 1e-4,
    warmupSteps: 20,
    minLr: 1e-5,
    patchSize: 32,
    batchSize: 1,
    klWeight: 1e-6,
    validationPatches: 9,
    checkpointEvery: 50,
    validateEvery: 50,
  },
  diffusion: {
    ...DEFAULT_LOOP,
    config: {
      ...MAISI_V1_UNET,
      numChannels: [16, 32, 64, 64],
      numResBlocks: [1, 1, 1, 1],
      normNumGroups: 8,
      numHeadChannels: [0, 0, 16, 16],
    },
    steps: 12000,
    lr: 5e-4,
    warmupSteps: 200,
    minLr: 1e-5,
    batchSize: 8,
    imagePatchSize: 64,
    poolSize: 480,
    validationPoolSize: 12,
    checkpointEvery: 250,
    validateEvery: 250,
  },
};

export function loadStageAutoencoder(runDir: string): AutoencoderKlMaisi {
  return loadStageWeights(
    join(runDir, 'autoencoder'),
    new AutoencoderKlMaisi(DEFAULT_MODEL_PLAN.autoencoder.config),
  );
}

export function loadStageUNet(runDir: string): { unet: DiffusionModelUNetMaisi; scaleFactor: number } {
  const dir = join(runDir, 'diffusion');
  const { scaleFactor } = JSON.parse(readFileSync(join(dir, 'scale-factor.json'), 'utf8')) as {
    scaleFactor: number;
  };
  return {
    unet: loadStageWeights(dir, new DiffusionModelUNetMaisi(DEFAULT_MODEL_PLAN.diffusion.config)),
    scaleFactor,
  };
}

/** Writes autoencoder.safetensors, unet.safetensors (float16) and model.json into `outDir`. */
export function exportDefaultModel(
  runDir: string,
  outDir: string,
  m: { ae: AutoencoderKlMaisi; unet: DiffusionModelUNetMaisi; scaleFactor: number },
): string {
  const aePath = join(outDir, 'autoencoder.safetensors');
  const unetPath = join(outDir, 'unet.safetensors');
  writeSafetensors(aePath, halfWeights(m.ae));
  writeSafetensors(unetPath, halfWeights(m.unet), { scale_factor: JSON.stringify(m.scaleFactor) });
  const cases = defaultCases('');
  const ids = (split: string) => cases.filter((c) => c.split === split).map((c) => c.id);
  const stepsOf = (stage: string) => latestCheckpointStep(join(runDir, stage));
  const card = {
    name: 'diffreg-default-v2',
    architecture: 'MONAI MAISI: AutoencoderKlMaisi + DiffusionModelUNetMaisi (smaller widths)',
    autoencoder: m.ae.config,
    unet: m.unet.config,
    scaleFactor: m.scaleFactor,
    // MedDIFT's levels for this model: level 2 alone registered best in bench/ablation/phantom.ts.
    featureLevels: [2],
    scheduler: MAISI_SCHEDULE,
    preprocessing: {
      orientation: 'RAS',
      ct: { windowHu: CT_WINDOW },
      mr: { percentiles: MR_PERCENTILES },
      grid: 'each axis resized (trilinear, align_corners false) to the nearest multiple of 128',
    },
    trainingSteps: { autoencoder: stepsOf('autoencoder'), unet: stepsOf('diffusion') },
    data: {
      train: ids('train'),
      validation: ids('validation'),
      heldOutRule: {
        brain: BRAIN_VALIDATION,
        heart: HEART_VALIDATION,
        ct: 'superior half of the network grid (slices 64-127 of 128)',
      },
      neverUsed: 'LPBA40 S02-S10, ACDC patients 101-150',
    },
    sha256: { 'autoencoder.safetensors': sha256File(aePath), 'unet.safetensors': sha256File(unetPath) },
  };
  writeFileAtomic(join(outDir, 'model.json'), JSON.stringify(card, null, 2) + '\n');
  return outDir;
}
