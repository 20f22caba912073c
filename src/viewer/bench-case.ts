/**
 * A case of a `diffreg bench` run, reopened for the viewer from its results folder: the run's own
 * command line (results.json) names the dataset and where its data are, so the case loads exactly as
 * the benchmark loaded it; with a method, the method registers it again to give its field (the
 * benchmark keeps scores and overlays, not fields).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RegistrationDataset } from '../data/dataset.ts';
import { checkCaseId } from '../data/dataset.ts';
import { openBenchDataset } from '../eval/bench/command.ts';
import type { BenchmarkReport } from '../eval/bench/report.ts';
import { methodEntry } from '../methods/method.ts';
import type { LatentDiffusionModel } from '../models/index.ts';
import { fail } from '../util/errors.ts';
import { readJsonFile } from '../util/json.ts';
import type { ProgressFn } from '../util/progress.ts';
import { optionalInteger, parse } from '../cli/args.ts';
import { benchCommand } from '../cli/commands/bench.ts';
import { landmarkRows, type ViewerInputs } from './scene.ts';

export interface BenchCaseOptions {
  dir: string;
  caseId: string;
  method?: string;
  model: () => LatentDiffusionModel;
  progress?: ProgressFn;
}

/** The dataset and settings of the run in `dir`, from the command line it recorded. */
function benchRun(dir: string) {
  const path = join(dir, 'results.json');
  if (!existsSync(path)) fail(dir, 'no results.json: not a diffreg bench results folder');
  const report = readJsonFile(path, 'bench results') as BenchmarkReport;
  const line = report?.run?.commandLine;
  const at = Array.isArray(line) ? line.indexOf('bench') : -1;
  if (at < 0) fail(path, 'run.commandLine holds no bench command line; its cases cannot be reopened');
  const { values } = parse(benchCommand, line.slice(at + 1));
  const text = (name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const quick = Boolean(values.quick);
  const seed = optionalInteger(values, 'seed', { min: 0 });
  const dataset: RegistrationDataset = openBenchDataset({
    dataset: text('dataset') ?? fail(path, 'the recorded command line has no --dataset'),
    quick,
    seed,
    dataRoot: text('data'),
    images: text('images'),
    landmarks: text('landmarks'),
    count: optionalInteger(values, 'count'),
  });
  return { dataset, quick, seed, methods: report.methods.map((m) => m.name) };
}

export async function openBenchCase(options: BenchCaseOptions): Promise<ViewerInputs> {
  const { dataset, quick, seed, methods } = benchRun(options.dir);
  checkCaseId(dataset.name, dataset.caseIds, options.caseId);
  if (options.method !== undefined && !methods.includes(options.method))
    fail('--method', `${options.method} did not run in this benchmark (its methods: ${methods.join(', ')})`);
  const item = await dataset.load(options.caseId);
  const result =
    options.method === undefined
      ? undefined
      : await methodEntry(options.method)
          .create({ dataset: dataset.name, model: options.model })
          .register(item, { quick, seed, progress: options.progress });
  const title = `${dataset.name} ${options.caseId}`;
  return {
    fixed: item.fixed,
    moving: item.moving,
    field: result?.field,
    labels: item.fixedLabels,
    movingLabels: item.movingLabels,
    points:
      item.fixedPoints &&
      landmarkRows(item.fixedPoints, {
        truth: item.movingPoints,
        predicted: result?.movingPointsPredicted,
        field: result?.field,
      }),
    pointsSource: result && `${options.method}${result.movingPointsPredicted ? '' : ': p + u(p)'}`,
    titles: {
      fixed: `${title} fixed`,
      moving: `${title} moving`,
      field: options.method && `${options.method} (registered again for this view)`,
    },
  };
}
