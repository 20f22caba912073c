/**
 * The default model's training run, stage by stage, as `diffreg train` drives it:
 *   autoencoder → diffusion (needs the finished autoencoder) → export (model files into `modelDir`)
 *   → reconstructions + samples (the model card's numbers and figures from the exported files).
 * Every training stage resumes from `runDir` after an interruption; `stopAfter` ends a stage early at
 * that step so that a long run can be split across working sessions.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../../util/errors.ts';
import { integer, oneOf } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { defaultCases, loadCases, type LoadedCase } from './data.ts';
import { evaluateReconstructions, evaluateSamples } from './evaluate.ts';
import { DEFAULT_MODEL_PLAN, exportDefaultModel, loadStageAutoencoder, loadStageUNet } from './plan.ts';
import { trainAutoencoder, trainDiffusion } from './train.ts';
import type { TrainingRecipe } from '../training/recipe.ts';

export const TRAINING_STAGES = [
  'all',
  'autoencoder',
  'diffusion',
  'export',
  'evaluate',
  'reconstructions',
  'samples',
] as const;
export type TrainingStage = (typeof TRAINING_STAGES)[number];

export interface TrainingRunOptions {
  stage: TrainingStage;
  /** Root of the training data (the layout of ../shared/data: lung/, brain-lpba40/, cardiac-acdc/). */
  dataDir: string;
  /** Checkpoints, logs and loss curves of each stage (`<runDir>/autoencoder`, `<runDir>/diffusion`). */
  runDir: string;
  /** Where `export` writes the model files and the evaluation reads them. */
  modelDir: string;
  autoencoderSteps?: number;
  unetSteps?: number;
  /** Stop each training stage after this step (resume later with the same options). */
  stopAfter?: number;
  progress?: ProgressFn;
}

export interface TrainingRunResult {
  autoencoder?: { step: number; finished: boolean; finalLoss?: number; finalValidation?: number };
  diffusion?: {
    step: number;
    finished: boolean;
    scaleFactor: number;
    finalLoss?: number;
    finalValidation?: number;
  };
  exported?: string;
  reconstructions?: Record<string, unknown>;
  samples?: Record<string, unknown>;
  /** False when a training stage stopped early (`stopAfter`); later stages were not run. */
  finished: boolean;
}

const TRAINING_DATA = ['lung', 'brain-lpba40', 'cardiac-acdc'];

/** The last training loss and validation loss of a stage's log. */
function lastLosses(log: readonly { loss: number; validation?: number }[]): {
  finalLoss?: number;
  finalValidation?: number;
} {
  const validated = log.filter((e) => e.validation !== undefined);
  return { finalLoss: log.at(-1)?.loss, finalValidation: validated.at(-1)?.validation };
}

export async function runTraining(o: TrainingRunOptions): Promise<TrainingRunResult> {
  const stage = oneOf('stage', o.stage, TRAINING_STAGES);
  const plan = DEFAULT_MODEL_PLAN;
  const aeSteps = integer('autoencoder steps', o.autoencoderSteps ?? plan.autoencoder.steps, { min: 1 });
  const unetSteps = integer('U-Net steps', o.unetSteps ?? plan.diffusion.steps, { min: 1 });
  const stopAfter = o.stopAfter === undefined ? undefined : integer('stop after', o.stopAfter, { min: 1 });
  const trains = stage === 'all' || stage === 'autoencoder' || stage === 'diffusion';
  const evaluates =
    stage === 'all' || stage === 'evaluate' || stage === 'reconstructions' || stage === 'samples';
  if (trains || evaluates) {
    for (const sub of TRAINING_DATA) {
      if (!existsSync(join(o.dataDir, sub)))
        fail(o.dataDir, `training data folder has no ${sub}/ (expected the layout of ../shared/data)`);
    }
  }
  const result: TrainingRunResult = { finished: true };

  const all = trains ? await loadCases(defaultCases(o.dataDir)) : [];
  const train = all.filter((c) => c.split === 'train');
  let validation: LoadedCase[] = all.filter((c) => c.split === 'validation');

  if (stage === 'all' || stage === 'autoencoder') {
    const r = trainAutoencoder(
      { ...plan.autoencoder, steps: aeSteps, stopAfter, dir: join(o.runDir, 'autoencoder') },
      train,
      validation,
      o.progress,
    );
    r.autoencoder.dispose();
    result.autoencoder = { step: r.step, finished: r.finished, ...lastLosses(r.log) };
    if (!r.finished) return { ...result, finished: false };
  }
  if (stage === 'all' || stage === 'diffusion') {
    const ae = loadStageAutoencoder(o.runDir);
    const r = trainDiffusion(
      { ...plan.diffusion, steps: unetSteps, stopAfter, dir: join(o.runDir, 'diffusion') },
      ae,
      train,
      validation,
      o.progress,
    );
    ae.dispose();
    r.unet.dispose();
    result.diffusion = {
      step: r.step,
      finished: r.finished,
      scaleFactor: r.scaleFactor,
      ...lastLosses(r.log),
    };
    if (!r.finished) return { ...result, finished: false };
  }
  if (stage === 'all' || stage === 'export') {
    const ae = loadStageAutoencoder(o.runDir);
    const { unet, scaleFactor } = loadStageUNet(o.runDir);
    result.exported = exportDefaultModel(o.runDir, o.modelDir, { ae, unet, scaleFactor });
    ae.dispose();
    unet.dispose();
  }
  if (evaluates) {
    if (!existsSync(join(o.modelDir, 'model.json')))
      fail(o.modelDir, 'no exported model to evaluate (run the export stage first)');
    if (validation.length === 0)
      validation = await loadCases(defaultCases(o.dataDir).filter((c) => c.split === 'validation'));
    if (stage !== 'samples')
      result.reconstructions = evaluateReconstructions(o.modelDir, validation, o.progress);
    if (stage !== 'reconstructions')
      result.samples = evaluateSamples(o.modelDir, o.runDir, validation, o.progress);
  }
  return result;
}

/** `diffreg train default`: the default model's recipe. */
export const DEFAULT_MODEL_RECIPE: TrainingRecipe = {
  name: 'default',
  summary: 'the default model (MAISI architecture, small width) on CT, brain and cardiac volumes',
  stages: TRAINING_STAGES,
  settings: [
    {
      name: 'autoencoder-steps',
      help: `autoencoder optimisation steps (default ${DEFAULT_MODEL_PLAN.autoencoder.steps})`,
    },
    {
      name: 'unet-steps',
      help: `diffusion U-Net optimisation steps (default ${DEFAULT_MODEL_PLAN.diffusion.steps})`,
    },
  ],
  async run(o) {
    const result = await runTraining({
      stage: oneOf('stage', o.stage, TRAINING_STAGES),
      dataDir: o.dataDir,
      runDir: o.runDir,
      modelDir: o.modelDir,
      autoencoderSteps: o.settings['autoencoder-steps'],
      unetSteps: o.settings['unet-steps'],
      stopAfter: o.stopAfter,
      progress: o.progress,
    });
    const { autoencoder: ae, diffusion: unet } = result;
    const lines = [
      ae &&
        `autoencoder: step ${ae.step}${ae.finished ? ' (finished)' : ''}, validation L1 ${ae.finalValidation?.toFixed(4) ?? '-'}`,
      unet &&
        `diffusion U-Net: step ${unet.step}${unet.finished ? ' (finished)' : ''}, validation MSE ${unet.finalValidation?.toFixed(4) ?? '-'}, scale factor ${unet.scaleFactor.toFixed(4)}`,
      result.exported && `model written to ${result.exported}`,
      (result.reconstructions || result.samples) && `evaluation and figures written to ${o.modelDir}`,
    ];
    return {
      finished: result.finished,
      lines: lines.filter((l): l is string => typeof l === 'string'),
      summary: { ...result },
    };
  },
};
