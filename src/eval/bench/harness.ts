/**
 * The benchmark harness: every method on every selected case of one dataset, scored the same way,
 * written as a results folder (report.ts). Cases are loaded one at a time; after each case its
 * scores are written (`cases/<case>.json`) and the tables refreshed, so an interrupted run keeps what
 * it finished and `resume` picks it up.
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineInfo } from '../../engine/index.ts';
import type { RegistrationMethod, RegistrationResult } from '../../methods/method.ts';
import { nativeElastixVersion } from '../../methods/baselines/elastix.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { fail } from '../../util/errors.ts';
import { integer } from '../../util/is.ts';
import { stageReporter, type ProgressFn } from '../../util/progress.ts';
import type { RegistrationDataset } from '../../data/dataset.ts';
import { evaluateCase, type CaseScores } from './evaluate.ts';
import { overlayPng } from './overlay.ts';
import { aggregate, toJson, writeReport, type BenchmarkReport, type RunInfo } from './report.ts';

/**
 * The seed of the methods' random draws and of synthetic cases when none is given: that of the
 * committed benchmark (bench/harness/run.ts; its lung cases are lung-s1-01…), so that `diffreg bench`
 * with defaults reproduces it.
 */
export const BENCH_SEED = 1;

export interface BenchmarkOptions {
  dataset: RegistrationDataset;
  methods: RegistrationMethod[];
  /** Case ids to run (default all of the dataset's). */
  cases?: string[];
  outDir: string;
  /** Passed to the methods (fewer iterations); default false. */
  quick?: boolean;
  /** Passed to the methods and recorded (default BENCH_SEED). */
  seed?: number;
  /** Recorded in the report (default process.argv). */
  commandLine?: string[];
  /** Cases (the first ones) with PNG overlays for every method (default 3). */
  overlays?: number;
  /** Slice axis of the overlays: 2 axial, 1 coronal, 0 sagittal (default: the dataset's, else 2). */
  overlayAxis?: 0 | 1 | 2;
  /** Reuse the scores of methods already in `cases/<case>.json` from an earlier run in outDir. */
  resume?: boolean;
}

/** Version of an installed package (its package.json next to its resolved entry point). */
function packageVersion(name: string): string | undefined {
  try {
    let dir = dirname(fileURLToPath(import.meta.resolve(name)));
    while (
      !existsSync(join(dir, 'package.json')) ||
      JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name !== name
    ) {
      if (dirname(dir) === dir) return undefined;
      dir = dirname(dir);
    }
    return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
  } catch {
    return undefined;
  }
}

/** Versions of what produced the numbers; absent components are left out. */
async function versions(): Promise<Record<string, string>> {
  const out: Record<string, string> = { node: process.version };
  const own = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json');
  if (existsSync(own)) out.diffreg = JSON.parse(readFileSync(own, 'utf8')).version;
  try {
    out.libtorch = engineInfo().version;
  } catch {
    // the native addon is not built: the baselines do not need it
  }
  const wasm = packageVersion('@itk-wasm/elastix');
  if (wasm) out['@itk-wasm/elastix'] = wasm;
  const native = await nativeElastixVersion();
  if (native) out['elastix (native)'] = native.replace(/^elastix version:\s*/i, '');
  return out;
}

function checkMethods(methods: RegistrationMethod[]): void {
  if (methods.length === 0) fail('methods', 'none given');
  const names = methods.map((m) => m.name);
  for (const name of names) {
    if (!/^[A-Za-z0-9_-]+$/.test(name))
      fail(`method ${JSON.stringify(name)}`, 'name may use letters, digits, - and _ only');
  }
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) fail('methods', `${twice} is listed twice`);
}

/** File-safe form of a case id. */
const fileName = (id: string) => id.replace(/[^A-Za-z0-9_.-]/g, '_');

/** The method's own pictures of a case, written beside the overlays; their entries for the report. */
function writeFigures(outDir: string, caseId: string, method: string, result: RegistrationResult) {
  return result.figures?.map(({ name, caption, png }) => {
    const file = join('overlays', `${fileName(caseId)}_${method}_${fileName(name)}.png`);
    writeFileAtomic(join(outDir, file), png);
    return { caption, file };
  });
}

/**
 * When resuming, the report keeps the methods an earlier run scored on the same cases and this run
 * does not name (a run of one more method leaves the others in the tables): returns what adds a
 * case's earlier scores of such methods to the report, with their descriptions from the earlier
 * results.json. Without resume it adds nothing.
 */
function earlierMethodsOf(outDir: string, resume: boolean) {
  const file = join(outDir, 'results.json');
  const described: BenchmarkReport['methods'] =
    resume && existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')).methods ?? []) : [];
  return (report: BenchmarkReport, earlier: CaseScores[]) => {
    if (!resume) return;
    for (const c of earlier) {
      if (!report.methods.some((m) => m.name === c.method))
        report.methods.push(
          described.find((m) => m.name === c.method) ?? {
            name: c.method,
            description: 'scored by an earlier run',
          },
        );
    }
    report.cases.push(...earlier);
  };
}

/** Runs the benchmark and writes the results folder; returns the report written. */
export async function runBenchmark(
  options: BenchmarkOptions,
  progress?: ProgressFn,
): Promise<BenchmarkReport> {
  const { dataset, methods, outDir } = options;
  checkMethods(methods);
  const seed = integer('seed', options.seed ?? BENCH_SEED, { min: 0, max: 0xffffffff });
  const quick = options.quick ?? false;
  const overlayCount = integer('overlays', options.overlays ?? 3, { min: 0 });
  const caseIds = options.cases ?? dataset.caseIds;
  for (const id of caseIds)
    if (!dataset.caseIds.includes(id)) fail(`${dataset.name} case ${JSON.stringify(id)}`, 'unknown');
  if (caseIds.length === 0) fail(dataset.name, 'no cases to run');

  const started = performance.now();
  const run: RunInfo = {
    date: new Date().toISOString(),
    commandLine: options.commandLine ?? process.argv,
    seed,
    quick,
    versions: await versions(),
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      ramGb: totalmem() / 2 ** 30,
      os: `${platform()} ${release()}`,
      loadAverageStart: loadavg(),
    },
  };
  const report: BenchmarkReport = {
    run,
    dataset: { name: dataset.name, description: dataset.description, citation: dataset.citation },
    methods: methods.map((m) => ({ name: m.name, description: m.description })),
    cases: [],
    aggregate: [],
    overlays: [],
  };
  const names = methods.map((m) => m.name);
  const keepEarlier = earlierMethodsOf(outDir, options.resume ?? false);
  const step = stageReporter(progress, `bench ${dataset.name}`, caseIds.length * methods.length);
  let done = 0;
  for (const [position, id] of caseIds.entries()) {
    const caseFile = join(outDir, 'cases', `${fileName(id)}.json`);
    const earlier: CaseScores[] =
      options.resume && existsSync(caseFile) ? JSON.parse(readFileSync(caseFile, 'utf8')) : [];
    const reused = (name: string) => earlier.find((c) => c.method === name && !c.error);
    keepEarlier(
      report,
      earlier.filter((c) => !names.includes(c.method)),
    );
    const overlayFile = (name: string) => join('overlays', `${fileName(id)}_${name}.png`);
    if (methods.every((m) => reused(m.name))) {
      report.cases.push(...methods.map((m) => reused(m.name) as CaseScores));
      for (const name of names) {
        if (position < overlayCount && existsSync(join(outDir, overlayFile(name)))) {
          report.overlays.push({ caseId: id, method: name, file: overlayFile(name) });
        }
      }
      step((done += methods.length));
      continue;
    }
    const item = await dataset.load(id);
    report.dataset.labelNames ??= item.labelNames
      ? Object.fromEntries(Object.entries(item.labelNames).map(([k, v]) => [String(k), v]))
      : undefined;
    report.dataset.labelGroups ??= item.labelGroups;
    const scores: CaseScores[] = [];
    for (const method of methods) {
      const kept = reused(method.name);
      const overlayWanted = position < overlayCount && !existsSync(join(outDir, overlayFile(method.name)));
      let result: RegistrationResult | undefined;
      if (kept && !overlayWanted) scores.push(kept);
      else {
        try {
          result = await method.register(item, { quick, seed });
          const scored = kept ?? evaluateCase(item, method.name, result);
          if (position < overlayCount) scored.figures = writeFigures(outDir, id, method.name, result);
          scores.push(scored);
        } catch (e) {
          scores.push({
            caseId: id,
            method: method.name,
            seconds: NaN,
            peakRssMb: NaN,
            error: (e as Error).message.split('\n')[0],
          });
        }
        if (result && position < overlayCount)
          writeFileAtomic(
            join(outDir, overlayFile(method.name)),
            overlayPng(item, result, { axis: options.overlayAxis ?? dataset.overlayAxis ?? 2 }),
          );
      }
      if (position < overlayCount && existsSync(join(outDir, overlayFile(method.name)))) {
        report.overlays.push({ caseId: id, method: method.name, file: overlayFile(method.name) });
      }
      step(++done);
    }
    writeFileAtomic(caseFile, toJson([...earlier.filter((c) => !names.includes(c.method)), ...scores]));
    report.cases.push(...scores);
    report.aggregate = aggregate(
      report.cases,
      report.methods.map((m) => m.name),
    );
    writeReport(outDir, report);
  }
  run.machine.loadAverageEnd = loadavg();
  run.wallSeconds = (performance.now() - started) / 1000;
  report.aggregate = aggregate(
    report.cases,
    report.methods.map((m) => m.name),
  );
  writeReport(outDir, report);
  return report;
}
