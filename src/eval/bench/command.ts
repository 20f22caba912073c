/**
 * `diffreg bench --dataset … --methods … --cases …`: resolves names to a dataset and to methods of the
 * registry (src/methods/method.ts) and runs the harness. Datasets: lpba40, acdc, lung-synthetic (from
 * the data folder), dirlab-4dct, dirlab-copdgene (need `images`, the folder holding the DIR-Lab .img
 * files) and learn2reg (needs `images`, the task folder).
 */
import { join } from 'node:path';
import { methodEntry } from '../../methods/method.ts';
import type { LatentDiffusionModel } from '../../models/index.ts';
import { fail } from '../../util/errors.ts';
import { oneOf } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { acdcDataset } from '../../data/acdc.ts';
import { defaultDataRoot, type RegistrationDataset } from '../../data/dataset.ts';
import { dirLabDataset } from '../../data/dirlab.ts';
import { learn2regDataset } from '../../data/learn2reg.ts';
import { lpba40Dataset } from '../../data/lpba40.ts';
import { syntheticLungDataset } from '../../data/lung.ts';
import { BENCH_SEED, runBenchmark, type BenchmarkOptions } from './harness.ts';
import type { BenchmarkReport } from './report.ts';

export const BENCH_DATASETS = [
  'lpba40',
  'acdc',
  'lung-synthetic',
  'dirlab-4dct',
  'dirlab-copdgene',
  'learn2reg',
] as const;
export type BenchDatasetName = (typeof BENCH_DATASETS)[number];

export interface BenchCommandOptions {
  dataset: string;
  /** Method names, as a list or comma-separated. */
  methods: string[] | string;
  /** Case selection (see selectCases); default all (quick mode: the first two). */
  cases?: string;
  outDir: string;
  quick?: boolean;
  seed?: number;
  /** Data folder of lpba40, acdc and lung-synthetic (default ../shared/data or DIFFREG_DATA). */
  dataRoot?: string;
  /** DIR-Lab image folder or Learn2Reg task folder. */
  images?: string;
  /** DIR-Lab landmark folder (default <data>/lung/landmarks). */
  landmarks?: string;
  /** Number of synthetic lung cases (default 20). */
  count?: number;
  /** Cases with overlays (default 3). */
  overlays?: number;
  resume?: boolean;
  commandLine?: string[];
  /** The latent diffusion model of the methods that use one (loaded once, on first use). */
  model?: () => LatentDiffusionModel;
}

/**
 * Case ids chosen by a comma-separated list of ids, ranges `first..last` (inclusive, in dataset
 * order) and bare counts `N` (the first N cases) when N is not itself an id.
 */
export function selectCases(ids: readonly string[], spec: string): string[] {
  const chosen: string[] = [];
  for (const item of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const range = /^(.+)\.\.(.+)$/.exec(item);
    if (ids.includes(item)) chosen.push(item);
    else if (range) {
      const [a, b] = [ids.indexOf(range[1]), ids.indexOf(range[2])];
      if (a < 0 || b < 0 || b < a)
        fail(`cases ${JSON.stringify(item)}`, 'expected first..last with known ids in dataset order');
      chosen.push(...ids.slice(a, b + 1));
    } else if (/^\d+$/.test(item) && Number(item) > 0) chosen.push(...ids.slice(0, Number(item)));
    else
      fail(
        `cases ${JSON.stringify(item)}`,
        `not a case id of this dataset (e.g. ${ids.slice(0, 2).join(', ')})`,
      );
  }
  if (chosen.length === 0) fail('cases', `${JSON.stringify(spec)} selects no case`);
  return [...new Set(chosen)];
}

export function openBenchDataset(
  options: Pick<
    BenchCommandOptions,
    'dataset' | 'dataRoot' | 'images' | 'landmarks' | 'count' | 'seed' | 'quick'
  >,
): RegistrationDataset {
  const name = oneOf('dataset', options.dataset, BENCH_DATASETS);
  const root = options.dataRoot ?? defaultDataRoot();
  const images = () =>
    options.images ?? fail(`dataset ${name}`, 'needs images (the folder holding the images)');
  switch (name) {
    case 'lpba40':
      return lpba40Dataset({ root: join(root, 'brain-lpba40') });
    case 'acdc':
      return acdcDataset({ root: join(root, 'cardiac-acdc') });
    case 'lung-synthetic':
      return syntheticLungDataset({
        ctPath: join(root, 'lung', 'ct-thorax-256.nii.gz'),
        count: options.count ?? (options.quick ? 2 : 20),
        seed: options.seed ?? BENCH_SEED,
        quick: options.quick,
      });
    case 'dirlab-4dct':
    case 'dirlab-copdgene':
      return dirLabDataset({
        suite: name === 'dirlab-4dct' ? '4dct' : 'copdgene',
        imageDir: images(),
        landmarkDir: options.landmarks ?? join(root, 'lung', 'landmarks'),
      });
    case 'learn2reg':
      return learn2regDataset({ root: images() });
  }
}

/** The CLI's bench command: resolve names, run, return the report (files are in outDir). */
export async function runBenchCommand(
  options: BenchCommandOptions,
  progress?: ProgressFn,
): Promise<BenchmarkReport> {
  const dataset = openBenchDataset(options);
  const names = (Array.isArray(options.methods) ? options.methods : options.methods.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  let loaded: LatentDiffusionModel | undefined;
  const load = options.model;
  const model = load ? () => (loaded ??= load()) : undefined;
  const methods = names.map(methodEntry).map((entry) => entry.create({ dataset: dataset.name, model }));
  const cases = options.cases
    ? selectCases(dataset.caseIds, options.cases)
    : options.quick
      ? dataset.caseIds.slice(0, 2)
      : undefined;
  const benchmark: BenchmarkOptions = {
    dataset,
    methods,
    cases,
    outDir: options.outDir,
    quick: options.quick,
    seed: options.seed,
    overlays: options.overlays,
    resume: options.resume,
    commandLine: options.commandLine,
  };
  return runBenchmark(benchmark, progress);
}
