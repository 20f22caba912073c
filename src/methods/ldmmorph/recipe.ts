/**
 * `diffreg train ldm2d` (the 2-D LDM: autoencoder, U-Net, export) and `diffreg train ldmmorph` (the
 * registration network on the LDM's features, export, evaluation of every trained variant). Both
 * share the run folder (the ACDC slice cache and one folder per stage) and the model folder: ldm2d
 * exports the LDM there, ldmmorph trains on that exported, SHA-256-checked LDM (the float16 weights
 * inference uses) and adds the network. ACDC patients 001–100 split by acdcSplit (DiffuseReg's split).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Generator, zeros, type Tensor } from '../../engine/index.ts';
import { acdcDataset, acdcSplit } from '../../data/acdc.ts';
import {
  LDM2D_VQ,
  ldm2dConfig,
  Ldm2dAutoencoder,
  Ldm2dUNet,
  trainAutoencoder,
  trainLdm2dUNet,
  type AutoencoderTrainOptions,
  type Ldm2dConfig,
  type Ldm2dConfigOverrides,
  type UNetTrainOptions,
} from '../../models/ldm2d/index.ts';
import { LDM_MORPH, LdmMorph, type LdmMorphConfig } from '../../models/ldmmorph/index.ts';
import { loadStageWeights } from '../../models/shipped.ts';
import { latestCheckpointStep } from '../../models/training/checkpoint.ts';
import { lastValidation, lossCurveSvg, readLog, type LoopOptions } from '../../models/training/loop.ts';
import type { RecipeResult, RecipeRunOptions, TrainingRecipe } from '../../models/training/recipe.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { fail } from '../../util/errors.ts';
import { readJsonFile } from '../../util/json.ts';
import { integer, oneOf } from '../../util/is.ts';
import {
  acdcSlicesOnNetworkGrid,
  disposeSlices,
  frameImages,
  middleSlices,
  slicesOf,
  type AcdcSlice,
  type AcdcSlices,
} from './data.ts';
import { sliceScores, type SliceScores } from './evaluate.ts';
import { exportLdm, exportNetwork, loadLdm, type LoadedLdm } from './model.ts';
import { FEATURE_NOISE_SEED, predictDisplacement } from './predict.ts';
import { LDM_MORPH_VARIANTS, readNetworkRecord, trainNetwork, type LdmMorphVariant } from './train.ts';

/**
 * Steps of each stage, sized for about two hours each on one thread of these 2-core machines with
 * other jobs running: autoencoder 1.2 s per step at batch 4 (6000 steps; 0.65–0.8 s beside one other
 * training), U-Net 0.6–0.8 s at batch 16 (6000 steps: 1–1.3 h, so that it and the DiffuseReg denoiser
 * both finish inside a session; the network uses its features at t = 1 only, the least-noisy end).
 * Network: a whole trainer step at 128², batch 1 (features of the pair from the default LDM, network,
 * loss with the latent term's gradient through the real autoencoder, backward, clipping, Adam),
 * measured over 54 steps of the real recipe on ACDC slices, load average 7–8 on 2 cores: fastest
 * 0.21 s, median 0.25–0.7 s, mean 0.39–0.78 s; the features alone 0.06–0.08 s. 12000 steps (the
 * authors train 24000 at batch 1): at 0.3–0.4 s per step they and the evaluation fit one session.
 */
export const LDM_MORPH_STEPS = { autoencoder: 6000, unet: 6000, network: 12000 };

/**
 * The variant trained and exported when none is given: 3, the authors' code (the latent term without
 * its gradient). At step 3000 of the 12000-step schedule it scored 0.834 myocardium + LV Dice on the
 * 20 validation patients' mid-ventricular slices, the full model with the latent loss's gradient
 * 0.744 (bench/ldmmorph/RESULTS.md).
 */
export const LDM_MORPH_DEFAULT_VARIANT = 3;

/** What the recipes build and how their loops run; tests shrink it. */
export interface LdmMorphRecipeConfig {
  /** The LDM (LDM2D_DEFAULT completed). */
  ldm: Ldm2dConfigOverrides;
  /** Changes to LDM_MORPH before a variant's switches; its imageSize is also the LDM's image size. */
  network: Partial<LdmMorphConfig>;
  autoencoderLoop: Partial<AutoencoderTrainOptions>;
  unetLoop: Partial<UNetTrainOptions>;
  networkLoop: Partial<LoopOptions>;
  steps: typeof LDM_MORPH_STEPS;
}

export const LDM_MORPH_RECIPE_CONFIG: LdmMorphRecipeConfig = {
  ldm: {},
  network: {},
  autoencoderLoop: {},
  unetLoop: {},
  networkLoop: {},
  steps: LDM_MORPH_STEPS,
};

const stageDir = (o: RecipeRunOptions, ...parts: string[]) => join(o.runDir, ...parts);

function acdcRoot(o: RecipeRunOptions): string {
  const root = join(o.dataDir, 'cardiac-acdc');
  if (!existsSync(root)) fail(o.dataDir, 'training data folder has no cardiac-acdc/');
  return root;
}

/** Every ACDC patient's slices on their network grids (cached in the run folder). */
async function acdcSlices(o: RecipeRunOptions, c: LdmMorphRecipeConfig): Promise<AcdcSlices> {
  const root = acdcRoot(o);
  const imageSize = c.network.imageSize ?? LDM_MORPH.imageSize;
  return acdcSlicesOnNetworkGrid(
    acdcDataset({ root }).caseIds,
    stageDir(o, 'acdc-slices.safetensors'),
    imageSize,
    { root },
    o.progress,
  );
}

/** The split by patient id, for the model card. */
const splitOf = (data: AcdcSlices) => {
  const ids = Object.keys(data.middle).sort();
  return {
    dataset: 'ACDC training patients 001-100, every slice of ED and ES with image content',
    train: ids.filter((id) => acdcSplit(id) === 'train'),
    validation: ids.filter((id) => acdcSplit(id) === 'validation'),
  };
};

/** Fails unless the stage in `dir` reached `steps` (a later stage must not build on a partial one). */
function requireFinished(dir: string, steps: number, command: string): number {
  const step = latestCheckpointStep(dir) ?? 0;
  if (step < steps) fail(dir, `stage not finished (step ${step} of ${steps}); run ${command} first`);
  return step;
}

/** The stage's loss curve beside the exported model. */
function writeCurve(dir: string, modelDir: string, name: string): void {
  writeFileAtomic(join(modelDir, `${name}-loss.svg`), lossCurveSvg(name, readLog(join(dir, 'log.jsonl'))));
}

const done = (name: string, r: { step: number; finished: boolean }, validation?: number) =>
  `${name}: step ${r.step}${r.finished ? ' (finished)' : ''}, validation ${validation?.toPrecision(4) ?? '-'}`;

const LDM_STAGES = ['all', 'autoencoder', 'unet', 'export'] as const;

/**
 * The run's LDM configuration, fixed by its first stage in ldm2d/config.json: the recipe's, as a VQ
 * autoencoder with `codebookSize` codes when that is given (0: KL). Later stages read it; a setting
 * that disagrees with it fails.
 */
function runLdmConfig(o: RecipeRunOptions, c: LdmMorphRecipeConfig, codebookSize?: number): Ldm2dConfig {
  const path = stageDir(o, 'ldm2d', 'config.json');
  const requested = (n: number) =>
    ldm2dConfig(
      n > 0
        ? { ...c.ldm, autoencoder: { ...c.ldm.autoencoder, ...LDM2D_VQ.autoencoder, codebookSize: n } }
        : c.ldm,
    );
  if (!existsSync(path)) {
    const config = requested(codebookSize ?? 0);
    mkdirSync(stageDir(o, 'ldm2d'), { recursive: true });
    writeFileAtomic(path, JSON.stringify(config));
    return config;
  }
  const recorded = readJsonFile(path, "the run's LDM configuration") as Ldm2dConfig;
  if (codebookSize !== undefined && JSON.stringify(requested(codebookSize)) !== JSON.stringify(recorded))
    fail('--codebook-size', `${codebookSize} disagrees with the LDM this run folder trains (${path})`);
  return recorded;
}

/** `diffreg train ldm2d`. */
export function ldm2dRecipe(c: LdmMorphRecipeConfig = LDM_MORPH_RECIPE_CONFIG): TrainingRecipe {
  return {
    name: 'ldm2d',
    summary: "LDM-Morph's 2-D latent diffusion model (autoencoder, U-Net) on ACDC slices",
    stages: LDM_STAGES,
    settings: [
      { name: 'autoencoder-steps', help: `autoencoder steps (default ${c.steps.autoencoder})` },
      { name: 'unet-steps', help: `U-Net steps (default ${c.steps.unet})` },
      {
        name: 'codebook-size',
        min: 0,
        help: `0: a KL autoencoder (default); N >= 2: the authors' VQ autoencoder, one latent channel, N codes (theirs ${LDM2D_VQ.autoencoder?.codebookSize}); fixed by a run's first stage`,
      },
    ],
    async run(o): Promise<RecipeResult> {
      const stage = oneOf('stage', o.stage, LDM_STAGES);
      const steps = {
        autoencoder: o.settings['autoencoder-steps'] ?? c.steps.autoencoder,
        unet: o.settings['unet-steps'] ?? c.steps.unet,
      };
      const dirs = { autoencoder: stageDir(o, 'ldm2d', 'autoencoder'), unet: stageDir(o, 'ldm2d', 'unet') };
      const runs = (s: (typeof LDM_STAGES)[number]) => stage === 'all' || stage === s;
      const codebookSize = o.settings['codebook-size'];
      if (codebookSize === 1) fail('--codebook-size', 'expected 0 (KL) or at least 2 codes, got 1');
      const ldm = runLdmConfig(o, c, codebookSize);
      const lines: string[] = [];
      const summary: Record<string, unknown> = {};
      const data = await acdcSlices(o, c);
      try {
        const train = frameImages(slicesOf(data, 'train'));
        const validation = frameImages(slicesOf(data, 'validation'));
        let autoencoder: Ldm2dAutoencoder | undefined;
        if (runs('autoencoder')) {
          const r = trainAutoencoder(
            {
              ...c.autoencoderLoop,
              dir: dirs.autoencoder,
              steps: steps.autoencoder,
              stopAfter: o.stopAfter,
              config: ldm,
            },
            train,
            validation,
            o.progress,
          );
          summary.autoencoder = {
            step: r.step,
            finished: r.finished,
            validationL1: lastValidation(dirs.autoencoder),
          };
          lines.push(done('autoencoder', r, lastValidation(dirs.autoencoder)));
          if (!r.finished) {
            r.autoencoder.dispose();
            return { finished: false, lines, summary };
          }
          autoencoder = r.autoencoder;
        }
        if (runs('unet')) {
          if (!autoencoder) {
            requireFinished(dirs.autoencoder, steps.autoencoder, 'diffreg train ldm2d --stage autoencoder');
            autoencoder = loadStageWeights(dirs.autoencoder, new Ldm2dAutoencoder(ldm));
          }
          const r = trainLdm2dUNet(
            { ...c.unetLoop, dir: dirs.unet, steps: steps.unet, stopAfter: o.stopAfter },
            autoencoder,
            train,
            validation,
            o.progress,
          );
          r.unet.dispose();
          summary.unet = {
            step: r.step,
            finished: r.finished,
            latentScale: r.scaleFactor,
            validationMse: lastValidation(dirs.unet),
          };
          lines.push(done('U-Net', r, lastValidation(dirs.unet)));
          if (!r.finished) return { finished: false, lines, summary };
        }
        autoencoder?.dispose();
        if (runs('export')) {
          const trained = {
            autoencoder: requireFinished(
              dirs.autoencoder,
              steps.autoencoder,
              'diffreg train ldm2d --stage autoencoder',
            ),
            unet: requireFinished(dirs.unet, steps.unet, 'diffreg train ldm2d --stage unet'),
          };
          const ae = loadStageWeights(dirs.autoencoder, new Ldm2dAutoencoder(ldm));
          const unet = loadStageWeights(dirs.unet, new Ldm2dUNet(ldm));
          exportLdm(o.modelDir, ae, unet, {
            data: { ...splitOf(data), trainImages: train.length, validationImages: validation.length },
            trainingSteps: trained,
            validation: {
              autoencoderL1: lastValidation(dirs.autoencoder),
              unetNoiseMse: lastValidation(dirs.unet),
            },
          });
          for (const [name, dir] of Object.entries(dirs)) writeCurve(dir, o.modelDir, name);
          ae.dispose();
          unet.dispose();
          lines.push(`LDM written to ${o.modelDir}`);
        }
        return { finished: true, lines, summary };
      } finally {
        disposeSlices(data);
      }
    },
  };
}

const NETWORK_STAGES = ['all', 'network', 'export', 'evaluate'] as const;

/** The identity's displacement on the network grid: the "before" row. */
const identity = (moving: Tensor) => zeros([1, 2, ...moving.shape.slice(2)]);

/**
 * The network-grid scores on the validation patients' mid-ventricular slices of the identity and of
 * every variant trained in the run folder with this LDM; written to `modelDir`/evaluation.json.
 */
function evaluateVariants(o: RecipeRunOptions, loaded: LoadedLdm, pairs: readonly AcdcSlice[]) {
  const rows: ({ name: string } & SliceScores)[] = [{ name: 'identity', ...sliceScores(pairs, identity) }];
  const skipped: string[] = [];
  for (const variant of LDM_MORPH_VARIANTS) {
    const dir = stageDir(o, 'ldmmorph', variant);
    if (latestCheckpointStep(dir) === undefined) continue;
    const record = readNetworkRecord(dir);
    if (Object.entries(record.ldm).some(([file, hash]) => loaded.sha256[file] !== hash)) {
      skipped.push(`${variant} (trained with another LDM)`);
      continue;
    }
    const network = loadStageWeights(dir, new LdmMorph(record.config));
    // The registry method's noise: one generator per pair, seeded alike.
    const predict = (moving: Tensor, fixed: Tensor) =>
      predictDisplacement(network, loaded.ldm, moving, fixed, new Generator(FEATURE_NOISE_SEED));
    rows.push({ name: `${variant} (step ${latestCheckpointStep(dir)})`, ...sliceScores(pairs, predict) });
    network.dispose();
  }
  const evaluation = {
    patients: pairs.map((p) => `${p.id} slice ${p.slice}`),
    direction: 'ES moving → ED fixed',
    grid: 'network grid: the slice fills the central 112 of 128 pixels; labels warped nearest-neighbour',
    rows,
    skipped,
  };
  writeFileAtomic(join(o.modelDir, 'evaluation.json'), JSON.stringify(evaluation, null, 2) + '\n');
  return evaluation;
}

/** One evaluation row as a line. */
export const scoreLine = (r: { name: string } & SliceScores) =>
  `${r.name}: myocardium ${r.dice.myocardium.toFixed(3)}, LV ${r.dice.LV.toFixed(3)}, mean ${r.myocardiumLvMean.toFixed(3)}, RV ${r.dice.RV.toFixed(3)}; det J ≤ 0 ${r.foldedPercent.toFixed(3)} %; ${r.secondsPerPair.toFixed(3)} s per pair`;

/** `diffreg train ldmmorph`. */
export function ldmMorphRecipe(c: LdmMorphRecipeConfig = LDM_MORPH_RECIPE_CONFIG): TrainingRecipe {
  return {
    name: 'ldmmorph',
    summary: 'LDM-Morph registration network on the LDM of diffreg train ldm2d (same --run and --out)',
    stages: NETWORK_STAGES,
    settings: [
      { name: 'network-steps', help: `network steps (default ${c.steps.network})` },
      {
        name: 'variant',
        min: 0,
        help: `what to train and export: ${LDM_MORPH_VARIANTS.map((v, i) => `${i} ${v}`).join(', ')} (default ${LDM_MORPH_DEFAULT_VARIANT})`,
      },
    ],
    async run(o): Promise<RecipeResult> {
      const stage = oneOf('stage', o.stage, NETWORK_STAGES);
      const variant: LdmMorphVariant =
        LDM_MORPH_VARIANTS[
          integer('--variant', o.settings.variant ?? LDM_MORPH_DEFAULT_VARIANT, {
            min: 0,
            max: LDM_MORPH_VARIANTS.length - 1,
          })
        ];
      const steps = o.settings['network-steps'] ?? c.steps.network;
      const dir = stageDir(o, 'ldmmorph', variant);
      const runs = (s: (typeof NETWORK_STAGES)[number]) => stage === 'all' || stage === s;
      const lines: string[] = [];
      const summary: Record<string, unknown> = { variant };
      const loaded = loadLdm(o.modelDir);
      const data = await acdcSlices(o, c);
      try {
        const pairs = middleSlices(data);
        if (runs('network')) {
          const r = trainNetwork(
            { ...c.networkLoop, dir, steps, stopAfter: o.stopAfter, variant, network: c.network },
            loaded.ldm,
            loaded.sha256,
            slicesOf(data, 'train'),
            pairs,
            o.progress,
          );
          r.network.dispose();
          summary.network = { step: r.step, finished: r.finished, validationLoss: lastValidation(dir) };
          lines.push(done(`network (${variant})`, r, lastValidation(dir)));
          if (!r.finished) return { finished: false, lines, summary };
        }
        if (runs('export')) {
          const step = requireFinished(
            dir,
            steps,
            `diffreg train ldmmorph --stage network --variant ${LDM_MORPH_VARIANTS.indexOf(variant)}`,
          );
          const record = readNetworkRecord(dir);
          const network = loadStageWeights(dir, new LdmMorph(record.config));
          exportNetwork(o.modelDir, network, record, {
            data: splitOf(data),
            trainingSteps: step,
            validationLoss: lastValidation(dir),
          });
          writeCurve(dir, o.modelDir, 'network');
          network.dispose();
          lines.push(`network (${variant}) added to ${o.modelDir}`);
        }
        if (runs('evaluate')) {
          const evaluation = evaluateVariants(o, loaded, pairs);
          summary.evaluation = evaluation;
          lines.push(...evaluation.rows.map(scoreLine), ...evaluation.skipped.map((s) => `skipped: ${s}`));
          lines.push(`evaluation written to ${join(o.modelDir, 'evaluation.json')}`);
        }
        return { finished: true, lines, summary };
      } finally {
        disposeSlices(data);
        loaded.dispose();
      }
    },
  };
}

export const LDM_MORPH_RECIPES: readonly TrainingRecipe[] = [ldm2dRecipe(), ldmMorphRecipe()];
