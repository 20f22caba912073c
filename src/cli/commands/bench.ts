/** `diffreg bench`: run methods on a dataset and write per-case results, tables and an HTML report. */
import { BENCH_DATASETS, runBenchCommand } from '../../eval/bench/command.ts';
import { BENCH_SEED } from '../../eval/bench/harness.ts';
import { DESCRIPTORS, isFeatureMethod, withDescriptor } from '../../methods/meddift/index.ts';
import { METHODS } from '../../methods/method.ts';
import { oneOf } from '../../util/is.ts';
import { DESCRIPTOR_HELP } from './match.ts';
import { optionalInteger, required, type Command } from '../args.ts';
import { MODEL_HELP, MODEL_INPUTS, MODEL_OPTIONS, modelLoader } from '../model.ts';
import { checkOutputs } from '../outputs.ts';
import { terminalProgress } from '../progress.ts';
import { applyThreads, printJson } from './common.ts';

export const benchCommand: Command = {
  name: 'bench',
  summary: 'evaluate registration methods on a dataset and write tables and an HTML report',
  usage: 'diffreg bench --dataset NAME --methods A,B --out DIR [--cases SPEC] [--quick]',
  options: {
    dataset: { type: 'string' },
    methods: { type: 'string' },
    descriptor: { type: 'string' },
    cases: { type: 'string' },
    out: { type: 'string' },
    quick: { type: 'boolean' },
    seed: { type: 'string' },
    data: { type: 'string' },
    images: { type: 'string' },
    landmarks: { type: 'string' },
    count: { type: 'string' },
    resume: { type: 'boolean' },
    threads: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    ...MODEL_OPTIONS,
  },
  help: [
    ['--dataset NAME', `one of ${BENCH_DATASETS.join(', ')}`],
    ['--methods A,B', 'methods of the registry, comma-separated:'],
    ...METHODS.map((m): [string, string] => [`  ${m.name}`, m.summary]),
    [
      '--descriptor NAME',
      `the feature methods of --methods (default-*, meddift-*, mind-*, …) on: ${DESCRIPTOR_HELP}`,
    ],
    ['--cases SPEC', 'case ids, ranges a..b or a count N (default all; --quick: two)'],
    ['--out DIR', 'results folder (JSON/CSV per case, summary.md, report.html, overlays)'],
    ['--quick', 'few cases, small settings (smoke test)'],
    ['--seed N', `seed of synthetic cases and of the methods (default ${BENCH_SEED})`],
    ['--data DIR', 'evaluation data folder (default ../shared/data)'],
    ['--images DIR', 'DIR-Lab image folder or Learn2Reg task folder'],
    ['--landmarks DIR', 'DIR-Lab landmark folder'],
    ['--count N', 'number of synthetic lung cases (default 20)'],
    ['--resume', 'keep finished cases of an earlier run in --out'],
    ['--threads N', 'CPU threads (default all cores)'],
    ['--json', 'print the aggregated results as JSON'],
    ...MODEL_HELP,
  ],
  async run(values) {
    applyThreads(values);
    const seed = optionalInteger(values, 'seed', { min: 0 });
    const count = optionalInteger(values, 'count');
    const outDir = required(values, 'out');
    const descriptor =
      values.descriptor === undefined ? undefined : oneOf('--descriptor', values.descriptor, DESCRIPTORS);
    const methods = required(values, 'methods')
      .split(',')
      .map((m) => m.trim())
      .map((m) => (descriptor && isFeatureMethod(m) ? withDescriptor(m, descriptor) : m));
    const loadModel = modelLoader(values);
    checkOutputs([{ option: 'out', path: outDir }], values, ['data', 'images', 'landmarks', ...MODEL_INPUTS]);
    const report = await runBenchCommand(
      {
        dataset: required(values, 'dataset'),
        methods,
        cases: values.cases as string | undefined,
        outDir,
        quick: Boolean(values.quick),
        seed,
        dataRoot: values.data as string | undefined,
        images: values.images as string | undefined,
        landmarks: values.landmarks as string | undefined,
        count,
        resume: Boolean(values.resume),
        commandLine: process.argv.slice(1),
        model: loadModel,
      },
      terminalProgress(),
    );
    if (values.json) printJson(report);
    else process.stderr.write(`results in ${values.out}\n`);
    return 0;
  },
};
