/**
 * The committed benchmark of issue 7: identity, elastix B-spline and the default registration (`diffreg
 * register`'s defaults: descriptors by modality, the default model; on the lung cases also point matching) on LPBA40 (atlas S01 → S11–S40), ACDC
 * (patients 001–100) and 20 synthetic lung CT cases, results in bench/harness/<dataset>/. Runs are
 * resumable (methods already scored for a case are kept), so the schedule below first covers a
 * spread of cases of every dataset, then completes them:
 *
 *   nohup node --import tsx bench/harness/run.ts > bench/harness/run.log 2>&1 &
 *   node --import tsx bench/harness/run.ts --methods identity,default-register lpba40 S11..S20
 *   node --import tsx bench/harness/run.ts --elastix elastix-bspline acdc patient001   # @itk-wasm cross-check → acdc-elastix-bspline/
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runBenchCommand } from '../../src/eval/bench/index.ts';
import { loadDefaultModel } from '../../src/models/index.ts';

const { values, positionals } = parseArgs({
  options: { elastix: { type: 'string' }, methods: { type: 'string' } },
  allowPositionals: true,
});
const elastix = values.elastix ?? 'elastix-native-bspline';
const [only, onlyCases] = positionals;
/** The methods run on a dataset: --methods, else identity, elastix and the default registration (and matching where there are landmarks). */
const methodsFor = (dataset: string) =>
  values.methods?.split(',') ?? [
    'identity',
    elastix,
    'default-register',
    ...(dataset === 'lung-synthetic' ? ['default-match'] : []),
  ];
const here = dirname(fileURLToPath(import.meta.url));
/** ACDC patients spread over the five groups of 20 (DCM, HCM, MINF, NOR, RV): `perGroup` from each. */
const acdcSpread = (perGroup: number) =>
  Array.from({ length: 5 * perGroup }, (_, n) => {
    const number = 20 * (n % 5) + 1 + Math.floor(n / 5) * Math.floor(20 / perGroup);
    return `patient${String(number).padStart(3, '0')}`;
  }).join(',');
const schedule: [string, string][] = only
  ? [[only, onlyCases ?? '']]
  : [
      ['lpba40', 'S11..S14'],
      ['lung-synthetic', '4'],
      ['acdc', acdcSpread(1)],
      ['lpba40', 'S11..S20'],
      ['acdc', acdcSpread(2)],
      ['lung-synthetic', '8'],
      ['lpba40', 'S11..S40'],
      ['acdc', acdcSpread(4)],
      ['lung-synthetic', '20'],
      ['acdc', 'patient001..patient100'],
    ];

for (const [dataset, cases] of schedule) {
  let last = 0;
  const report = await runBenchCommand(
    {
      dataset,
      methods: methodsFor(dataset),
      model: loadDefaultModel,
      cases: cases || undefined,
      // the default engine writes bench/harness/<dataset>; another (e.g. the wasm cross-check) its own folder
      outDir: join(here, elastix === 'elastix-native-bspline' ? dataset : `${dataset}-${elastix}`),
      resume: true,
      commandLine: ['node', '--import', 'tsx', 'bench/harness/run.ts', ...process.argv.slice(2)],
    },
    ({ stage, done, total }) => {
      if (done === last) return;
      last = done;
      console.log(`${new Date().toISOString()} ${stage} ${done}/${total}`);
    },
  );
  for (const a of report.aggregate) {
    const m = a.metrics;
    const show = (v: number | undefined) => (v === undefined ? '–' : v.toFixed(3));
    console.log(
      `${dataset} ${a.method}: ${a.cases} cases, Dice ${show(m.diceMean?.mean)}, TRE ${show(m.treMean?.mean)} mm, HD95 ${show(m.hd95Mean?.mean)} mm, ${show(m.seconds?.mean)} s`,
    );
  }
}
