/** `diffreg train [RECIPE]`: runs a training recipe's stages (resumable), exports and evaluates its model. */
import { resolve } from 'node:path';
import { TRAINING_RECIPES, trainingRecipe } from '../../methods/recipes.ts';
import { DiffregError } from '../../util/errors.ts';
import { oneOf } from '../../util/is.ts';
import { optionalInteger, required, type Command, type OptionSpec } from '../args.ts';
import { checkOutputs } from '../outputs.ts';
import { lineProgress, terminalProgress } from '../progress.ts';
import { applyThreads, printJson } from './common.ts';

/** Without a recipe name, `diffreg train` trains the default model (the spelling before recipes). */
const DEFAULT_RECIPE = 'default';

const settingOptions: OptionSpec = Object.fromEntries(
  TRAINING_RECIPES.flatMap((r) => r.settings.map((s) => [s.name, { type: 'string' as const }])),
);

export const trainCommand: Command = {
  name: 'train',
  summary: 'train a model by its recipe on the shared data; resumes after an interruption',
  usage: 'diffreg train [RECIPE] --data DIR --run DIR [--stage STAGE] [--out DIR] [options]',
  positionals: 1,
  options: {
    data: { type: 'string' },
    run: { type: 'string' },
    out: { type: 'string' },
    stage: { type: 'string' },
    'stop-after': { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    ...settingOptions,
  },
  help: [
    ...TRAINING_RECIPES.map((r): [string, string] => [
      r.name,
      `${r.summary}; stages ${r.stages.join(', ')}${r.name === DEFAULT_RECIPE ? ' (the default recipe)' : ''}`,
    ]),
    ['--data DIR', 'training data in the layout of ../shared/data (lung/, brain-lpba40/, cardiac-acdc/)'],
    ['--run DIR', 'checkpoints, JSON-lines logs and loss curves of each stage; a rerun resumes from them'],
    ['--stage STAGE', "one of the recipe's stages (default all)"],
    ['--out DIR', 'where export writes the model files and evaluation reads them (default RUN/model)'],
    ...TRAINING_RECIPES.flatMap((r) =>
      r.settings.map((s): [string, string] => [`--${s.name} N`, `${r.name}: ${s.help}`]),
    ),
    ['--stop-after N', 'stop each training stage after step N (resume later with the same options)'],
    ['--threads N', 'libtorch threads (on a shared 2-core machine 1 is often faster in wall time)'],
    ['--json', 'print a JSON summary (steps, final losses, evaluation) on stdout'],
  ],
  async run(values, positionals) {
    applyThreads(values);
    const recipe = trainingRecipe(positionals[0] ?? DEFAULT_RECIPE);
    const foreign = Object.keys(settingOptions).find(
      (name) => values[name] !== undefined && !recipe.settings.some((s) => s.name === name),
    );
    if (foreign) throw new DiffregError(`--${foreign}: not a setting of the ${recipe.name} recipe`);
    const runDir = resolve(required(values, 'run'));
    const options = {
      stage: oneOf('--stage', values.stage ?? 'all', recipe.stages),
      dataDir: resolve(required(values, 'data')),
      runDir,
      modelDir: resolve(typeof values.out === 'string' ? values.out : resolve(runDir, 'model')),
      stopAfter: optionalInteger(values, 'stop-after'),
      settings: Object.fromEntries(
        recipe.settings.map((s) => [s.name, optionalInteger(values, s.name, { min: s.min ?? 1 })]),
      ),
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
    const result = await recipe.run(options);
    if (values.json) printJson(result.summary);
    else {
      const lines = [
        ...result.lines,
        ...(result.finished
          ? []
          : ['stopped early (--stop-after); run the same command without it to continue']),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return 0;
  },
};
