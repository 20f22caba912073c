/**
 * `diffreg train diffusereg`: the bootstrap registration network, then the denoiser on its fields,
 * then the shipped files. Each stage resumes from its folder under the run folder; `stopAfter` splits a
 * stage across sessions. ACDC patients 001–100 split by acdcSplit (16 train / 4 validation per group).
 */
import { existsSync } from 'node:fs';
import { readJsonFile } from '../../util/json.ts';
import { join } from 'node:path';
import { acdcDataset, acdcSplit } from '../../data/acdc.ts';
import { denoiserConfig, DiffuseRegDenoiser } from '../../models/diffusereg/index.ts';
import { latestCheckpointStep } from '../../models/training/checkpoint.ts';
import { lastValidation, lossCurveSvg, readLog } from '../../models/training/loop.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import type { RecipeResult, TrainingRecipe } from '../../models/training/recipe.ts';
import { loadStageWeights } from '../../models/shipped.ts';
import { fail } from '../../util/errors.ts';
import { oneOf } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';
import type { Tensor } from '../../engine/index.ts';
import {
  DEFAULT_BOOTSTRAP_LOSS,
  identityDisplacement,
  loadBootstrap,
  trainBootstrap,
  validationScores,
} from './bootstrap.ts';
import { acdcOnNetworkGrid } from './data.ts';
import { exportDiffuseRegModel, loadDiffuseRegModel } from './model.ts';
import { sampleWithNetwork } from './sample.ts';
import { trainDenoiser, type DenoiserRecord } from './train-denoiser.ts';

const STAGES = ['all', 'bootstrap', 'denoiser', 'export', 'evaluate'] as const;

/**
 * Steps of each stage, sized to finish in under two hours on these 2-core machines, each on one thread
 * beside another training: bootstrap 1.15 s per step; denoiser 1.25–1.5 s per step (images in the
 * flow input; measured beside the LDM autoencoder's training).
 */
export const DIFFUSEREG_STEPS = { bootstrap: 1800, denoiser: 4500 };

export const DIFFUSEREG_RECIPE: TrainingRecipe = {
  name: 'diffusereg',
  summary: "DiffuseReg's bootstrap network and denoiser on ACDC ED/ES pairs",
  stages: STAGES,
  settings: [
    { name: 'bootstrap-steps', help: `bootstrap network steps (default ${DIFFUSEREG_STEPS.bootstrap})` },
    { name: 'denoiser-steps', help: `denoiser steps (default ${DIFFUSEREG_STEPS.denoiser})` },
  ],
  async run(o): Promise<RecipeResult> {
    const stage = oneOf('stage', o.stage, STAGES);
    const root = join(o.dataDir, 'cardiac-acdc');
    if (!existsSync(root)) fail(o.dataDir, 'training data folder has no cardiac-acdc/');
    const dirs = { bootstrap: join(o.runDir, 'bootstrap'), denoiser: join(o.runDir, 'denoiser') };
    const lines: string[] = [];
    const summary: Record<string, unknown> = {};
    const runs = (s: (typeof STAGES)[number]) => stage === 'all' || stage === s;
    if (runs('bootstrap')) {
      const r = await trainBootstrap(
        {
          dir: dirs.bootstrap,
          steps: o.settings['bootstrap-steps'] ?? DIFFUSEREG_STEPS.bootstrap,
          root,
          stopAfter: o.stopAfter,
        },
        o.progress,
      );
      r.network.dispose();
      summary.bootstrap = { step: r.step, finished: r.finished, validation: r.validation };
      lines.push(
        `bootstrap: step ${r.step}${r.finished ? ' (finished)' : ''}, validation mean Dice ${r.validation.meanDice.toFixed(3)}, det J ≤ 0 ${r.validation.foldedPercent.toFixed(3)} %`,
      );
      if (!r.finished) return { finished: false, lines, summary };
    }
    const bootstrapPath = join(dirs.bootstrap, 'network.safetensors');
    if (runs('denoiser')) {
      const ids = acdcDataset({ root }).caseIds;
      const cases = await acdcOnNetworkGrid(
        ids,
        join(dirs.bootstrap, 'acdc-network-grid.safetensors'),
        { root },
        o.progress,
      );
      const bootstrap = loadBootstrap(bootstrapPath);
      const r = trainDenoiser(
        {
          dir: dirs.denoiser,
          steps: o.settings['denoiser-steps'] ?? DIFFUSEREG_STEPS.denoiser,
          stopAfter: o.stopAfter,
        },
        cases,
        bootstrap,
        o.progress,
      );
      bootstrap.dispose();
      r.denoiser.dispose();
      for (const c of cases) for (const t of [c.ed, c.es, c.edLabels, c.esLabels]) t.dispose();
      summary.denoiser = { step: r.step, finished: r.finished, validation: lastValidation(dirs.denoiser) };
      lines.push(
        `denoiser: step ${r.step}${r.finished ? ' (finished)' : ''}, validation MSE ${lastValidation(dirs.denoiser)?.toFixed(4) ?? '-'}`,
      );
      if (!r.finished) return { finished: false, lines, summary };
    }
    if (runs('export')) {
      const bootstrap = loadBootstrap(bootstrapPath);
      const trained = latestCheckpointStep(dirs.denoiser) !== undefined;
      const record = trained
        ? (readJsonFile(join(dirs.denoiser, 'denoiser.json'), 'denoiser run record') as DenoiserRecord)
        : undefined;
      const denoiser = record
        ? loadStageWeights(dirs.denoiser, new DiffuseRegDenoiser(denoiserConfig(record.config)))
        : undefined;
      const ids = acdcDataset({ root }).caseIds;
      exportDiffuseRegModel(
        o.modelDir,
        { bootstrap, denoiser: denoiser && record && { network: denoiser, ...record } },
        {
          data: {
            dataset: 'ACDC training patients 001-100 (ED fixed, ES moving, and the reverse)',
            train: ids.filter((id) => acdcSplit(id) === 'train'),
            validation: ids.filter((id) => acdcSplit(id) === 'validation'),
          },
          trainingSteps: {
            bootstrap: latestCheckpointStep(dirs.bootstrap),
            denoiser: latestCheckpointStep(dirs.denoiser),
          },
          validation: {
            bootstrapLoss: lastValidation(dirs.bootstrap),
            denoiserNoiseMse: lastValidation(dirs.denoiser),
          },
        },
      );
      for (const [name, dir] of Object.entries(dirs))
        if (existsSync(join(dir, 'log.jsonl')))
          writeFileAtomic(
            join(o.modelDir, `${name}-loss.svg`),
            lossCurveSvg(name, readLog(join(dir, 'log.jsonl'))),
          );
      bootstrap.dispose();
      denoiser?.dispose();
      lines.push(
        `model written to ${o.modelDir}${trained ? '' : ' (bootstrap network only: no denoiser trained yet)'}`,
      );
    }
    if (runs('evaluate')) {
      summary.evaluation = await evaluateShipped(o.modelDir, root, dirs.bootstrap, o.progress);
      lines.push(`evaluation written to ${join(o.modelDir, 'evaluation.json')}`);
    }
    return { finished: true, lines, summary };
  },
};

/** The samplers the evaluation stage scores (the paper's DDPM-2000 costs too long per pair here). */
const EVALUATED = [
  { sampler: 'ddim', steps: 10 },
  { sampler: 'ddim', steps: 50 },
] as const;

/**
 * Network-grid scores of the shipped files on the validation patients (ES → ED): identity, the bootstrap
 * network and the denoiser with DDIM-10 and DDIM-50, with seconds per pair; written to evaluation.json.
 */
async function evaluateShipped(modelDir: string, root: string, bootstrapDir: string, progress?: ProgressFn) {
  const model = loadDiffuseRegModel(modelDir);
  const ids = acdcDataset({ root }).caseIds.filter((id) => acdcSplit(id) === 'validation');
  const cases = await acdcOnNetworkGrid(
    ids,
    join(bootstrapDir, 'acdc-network-grid.safetensors'),
    { root },
    progress,
  );
  const timed = (name: string, predict: (moving: Tensor, fixed: Tensor) => Tensor) => {
    const start = performance.now();
    const scores = validationScores(cases, predict, DEFAULT_BOOTSTRAP_LOSS);
    return { name, ...scores, secondsPerPair: (performance.now() - start) / 1000 / cases.length };
  };
  const rows = [
    timed('identity', identityDisplacement),
    timed('voxelmorph', (m, f) => model.bootstrap.forward(m, f)),
  ];
  const denoiser = model.denoiser;
  if (denoiser) {
    for (const s of EVALUATED) {
      rows.push(
        timed(`diffusereg ${s.sampler.toUpperCase()}-${s.steps}`, (moving, fixed) => {
          const r = sampleWithNetwork(
            denoiser.network,
            { fixed, moving },
            { ...s, normalisation: denoiser.normalisation, prediction: denoiser.prediction },
          );
          return r.field;
        }),
      );
    }
  }
  model.dispose();
  for (const c of cases) for (const t of [c.ed, c.es, c.edLabels, c.esLabels]) t.dispose();
  const evaluation = {
    patients: ids,
    grid: 'network grid (64×64×16, 3×3×10 mm), labels warped nearest-neighbour',
    rows,
  };
  writeFileAtomic(join(modelDir, 'evaluation.json'), JSON.stringify(evaluation, null, 2) + '\n');
  return evaluation;
}
