/** `diffreg train`: trains the default model's two stages, exports and evaluates it (resumable). */
import { resolve } from 'node:path';
import { DEFAULT_MODEL_PLAN } from '../../models/default/plan.ts';
import { runTraining, TRAINING_STAGES, type TrainingStage } from '../../models/default/run.ts';
import { oneOf } from '../../util/is.ts';
import { optionalInteger, required, type Command } from '../args.ts';
import { checkOutputs } from '../outputs.ts';
import { lineProgress, terminalProgress } from '../progress.ts';
import { applyThreads, printJson } from './common.ts';

export const trainCommand: Command = {
  name: 'train',
  summary:
    'train the default model (MAISI architecture, small width) on the shared data; resumes after an interruption',
  usage: 'diffreg train --data DIR --run DIR [--stage STAGE] [--out DIR] [options]',
  options: {
    data: { type: 'string' },
    run: { type: 'string' },
    out: { type: 'string' },
    stage: { type: 'string' },
    'autoencoder-steps': { type: 'string' },
    'unet-steps': { type: 'string' },
    'stop-after': { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
  help: [
    ['--data DIR', 'training data in the layout of ../shared/data (lung/, brain-lpba40/, cardiac-acdc/)'],
    ['--run DIR', 'checkpoints, JSON-lines logs and loss curves of each stage; a rerun resumes from them'],
    ['--stage STAGE', `one of ${TRAINING_STAGES.join(', ')} (default all)`],
    ['--out DIR', 'where export writes the model files and evaluation reads them (default RUN/model)'],
    [
      '--autoencoder-steps N',
      `autoencoder optimisation steps (default ${DEFAULT_MODEL_PLAN.autoencoder.steps})`,
    ],
    ['--unet-steps N', `diffusion U-Net optimisation steps (default ${DEFAULT_MODEL_PLAN.diffusion.steps})`],
    ['--stop-after N', 'stop each training stage after step N (resume later with the same options)'],
    ['--threads N', 'libtorch threads (on a shared 2-core machine 1 is often faster in wall time)'],
    ['--json', 'print a JSON summary (steps, final losses, evaluation) on stdout'],
  ],
  async run(values) {
    applyThreads(values);
    const stage: TrainingStage = oneOf('--stage', values.stage ?? 'all', TRAINING_STAGES);
    const runDir = resolve(required(values, 'run'));
    const options = {
      stage,
      dataDir: resolve(required(values, 'data')),
      runDir,
      modelDir: resolve(typeof values.out === 'string' ? values.out : resolve(runDir, 'model')),
      autoencoderSteps: optionalInteger(values, 'autoencoder-steps'),
      unetSteps: optionalInteger(values, 'unet-steps'),
      stopAfter: optionalInteger(values, 'stop-after'),
      // A bar on a terminal; a line every 10 steps when stderr goes to a log file.
      progress: process.stderr.isTTY ? terminalProgress() : lineProgress(10),
    };
    checkOutputs(
      [
        { option: 'run', path: runDir },
        { option: 'out', path: options.modelDir },
      ],
      values,
      ['data'],
    );
    const result = await runTraining(options);
    if (values.json) {
      printJson(result);
    } else {
      const lines = [
        result.autoencoder &&
          `autoencoder: step ${result.autoencoder.step}${result.autoencoder.finished ? ' (finished)' : ''}, validation L1 ${result.autoencoder.finalValidation?.toFixed(4) ?? '-'}`,
        result.diffusion &&
          `diffusion U-Net: step ${result.diffusion.step}${result.diffusion.finished ? ' (finished)' : ''}, validation MSE ${result.diffusion.finalValidation?.toFixed(4) ?? '-'}, scale factor ${result.diffusion.scaleFactor.toFixed(4)}`,
        result.exported && `model written to ${result.exported}`,
        (result.reconstructions || result.samples) && `evaluation and figures written to ${options.modelDir}`,
        !result.finished && `stopped early (--stop-after); run the same command without it to continue`,
      ];
      process.stdout.write(`${lines.filter(Boolean).join('\n')}\n`);
    }
    return 0;
  },
};
