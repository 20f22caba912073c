/**
 * Trains diffreg's default model on ../shared/data and ships it to models/default.
 *
 *   DIFFREG_THREADS=1 node --import tsx scripts/train-default-model.ts <stage> [--run NAME] [--ae-steps N] [--unet-steps N] [--stop-after N]
 *
 * Stages: autoencoder, diffusion (needs the finished autoencoder), export (writes models/default),
 * evaluate (model card numbers and figures from the shipped files) = reconstructions (autoencoder)
 * + samples (U-Net), all. Every stage resumes from
 * .checkpoints/<run>/ after an interruption.
 */
import { parseArgs } from 'node:util';
import { join, resolve } from 'node:path';
import { setNumThreads } from '../src/engine/index.ts';
import { defaultCases, loadCases, type LoadedCase } from '../src/models/training/data.ts';
import { evaluateReconstructions, evaluateSamples } from '../src/models/training/evaluate.ts';
import {
  DEFAULT_MODEL_PLAN,
  exportDefaultModel,
  loadStageAutoencoder,
  loadStageUNet,
} from '../src/models/training/plan.ts';
import { trainAutoencoder, trainDiffusion } from '../src/models/training/train.ts';
import type { ProgressEvent } from '../src/util/progress.ts';

const root = resolve(import.meta.dirname, '..');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    run: { type: 'string', default: 'default' },
    data: { type: 'string', default: resolve(root, '..', 'shared', 'data') },
    'ae-steps': { type: 'string' },
    'unet-steps': { type: 'string' },
    'stop-after': { type: 'string' },
  },
});
const stage = positionals[0] ?? 'all';
const runDir = join(root, '.checkpoints', values.run);
const plan = DEFAULT_MODEL_PLAN;
const modelDir = join(root, 'models', 'default');
const aeSteps = Number(values['ae-steps'] ?? plan.autoencoder.steps);
const unetSteps = Number(values['unet-steps'] ?? plan.diffusion.steps);
const stopAfter = values['stop-after'] === undefined ? undefined : Number(values['stop-after']);
// One thread: on a shared 2-core machine a second thread costs more CPU than it saves wall time.
if (process.env.DIFFREG_THREADS === undefined) setNumThreads(1);

/** One log line every 10 steps (stdout is a file when run in the background). */
function printer(): (e: ProgressEvent & { detail?: string }) => void {
  return (e) => {
    if (e.done % 10 === 0 || e.done === e.total) {
      console.log(
        `${new Date().toISOString()} ${e.stage} ${e.done}/${e.total}${e.detail ? ` ${e.detail}` : ''}`,
      );
    }
  };
}

let loaded: { train: LoadedCase[]; validation: LoadedCase[] } | undefined;
async function cases(): Promise<{ train: LoadedCase[]; validation: LoadedCase[] }> {
  if (loaded) return loaded;
  const t0 = performance.now();
  const all = await loadCases(defaultCases(values.data));
  console.log(`loaded ${all.length} cases in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return {
    train: all.filter((c) => c.split === 'train'),
    validation: all.filter((c) => c.split === 'validation'),
  };
}

if (stage === 'autoencoder' || stage === 'diffusion' || stage === 'all') {
  const { train, validation } = await cases();
  if (stage !== 'diffusion') {
    const r = trainAutoencoder(
      { ...plan.autoencoder, steps: aeSteps, stopAfter, dir: join(runDir, 'autoencoder') },
      train,
      validation,
      printer(),
    );
    console.log(`autoencoder: step ${r.step}, finished ${r.finished}`);
    if (!r.finished) process.exit(0);
  }
  if (stage !== 'autoencoder') {
    const ae = loadStageAutoencoder(runDir);
    const r = trainDiffusion(
      { ...plan.diffusion, steps: unetSteps, stopAfter, dir: join(runDir, 'diffusion') },
      ae,
      train,
      validation,
      printer(),
    );
    console.log(`diffusion: step ${r.step}, finished ${r.finished}, scale factor ${r.scaleFactor}`);
    if (!r.finished) process.exit(0);
  }
}
if (stage === 'export' || stage === 'all') {
  const out = exportDefaultModel(runDir, modelDir, {
    ae: loadStageAutoencoder(runDir),
    ...loadStageUNet(runDir),
  });
  console.log(`exported ${out}`);
}
let validationOnly: LoadedCase[] | undefined;
async function validationCases(): Promise<LoadedCase[]> {
  if (loaded) return loaded.validation;
  validationOnly ??= await loadCases(defaultCases(values.data).filter((c) => c.split === 'validation'));
  return validationOnly;
}

if (stage === 'evaluate' || stage === 'reconstructions' || stage === 'all') {
  console.log(JSON.stringify(evaluateReconstructions(modelDir, await validationCases(), printer()), null, 2));
}
if (stage === 'evaluate' || stage === 'samples' || stage === 'all') {
  console.log(JSON.stringify(evaluateSamples(modelDir, runDir, await validationCases(), printer()), null, 2));
}
