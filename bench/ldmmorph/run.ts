/**
 * bench/ldmmorph: LDM-Morph on the ACDC validation patients (never trained on), ES moving → ED fixed.
 *   2-D (the paper's setting): each patient's mid-ventricular slice on its network grid (the slice
 *     fills the central 112 of 128 pixels); Dice of myocardium and LV and their mean, RV, % det J ≤ 0,
 *     seconds per pair; rows: identity and every variant trained in the run folder (the recipe's
 *     evaluate stage).
 *   3-D (--3d): whole stacks slice by slice through the registry's method, scored by the benchmark
 *     harness as the 3-D methods are (bench/harness), beside the identity.
 * Appends to bench/ldmmorph/RESULTS.md with the machine and its load.
 * Usage: node --import tsx bench/ldmmorph/run.ts --run RUN [--model DIR] [--data DIR] [--3d]
 */
import { loadAverage, machineLine } from '../machine.ts';
import { appendFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { acdcDataset, acdcSplit } from '../../src/data/acdc.ts';
import { runBenchmark } from '../../src/eval/bench/harness.ts';
import { identityMethod } from '../../src/methods/baselines/identity.ts';
import { ldmMorphMethod } from '../../src/methods/ldmmorph/method.ts';
import { ldmMorphRecipe } from '../../src/methods/ldmmorph/recipe.ts';
import type { SliceScores } from '../../src/methods/ldmmorph/evaluate.ts';
import { sharedPath } from '../../test/helpers/shared.ts';

const { values } = parseArgs({
  options: {
    run: { type: 'string' },
    model: { type: 'string' },
    data: { type: 'string' },
    '3d': { type: 'boolean' },
  },
});
if (!values.run)
  throw new Error(
    'usage: node --import tsx bench/ldmmorph/run.ts --run RUN [--model DIR] [--data DIR] [--3d]',
  );
const runDir = resolve(values.run);
const modelDir = resolve(values.model ?? join(runDir, 'model'));
const dataDir = resolve(values.data ?? sharedPath('data'));
const loadStart = loadAverage();

const fixed = (v: number | undefined, digits = 3) => (v === undefined ? '–' : v.toFixed(digits));
const rows: string[] = [];
let header: string[];
if (values['3d']) {
  const dataset = acdcDataset({ root: join(dataDir, 'cardiac-acdc') });
  const report = await runBenchmark({
    dataset,
    methods: [identityMethod, ldmMorphMethod(modelDir)],
    cases: dataset.caseIds.filter((id) => acdcSplit(id) === 'validation'),
    outDir: join(runDir, 'bench-3d'),
  });
  header = [
    `3-D, slice by slice: ${report.aggregate[0].cases} validation patients, whole stacks (cropped in-plane to the heart + 30 mm, as bench/harness), results in ${join(runDir, 'bench-3d')}`,
    '',
    '| method | Dice mean | RV | myocardium | LV | % det J ≤ 0 | s per pair |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const a of report.aggregate) {
    // Per-label Dice is keyed by label value (ACDC_LABELS: 1 RV, 2 myocardium, 3 LV).
    const d = a.dicePerLabel ?? {};
    rows.push(
      `| ${a.method} | ${fixed(a.metrics.diceMean?.mean)} | ${fixed(d['1'])} | ${fixed(d['2'])} | ${fixed(d['3'])} | ${fixed(a.metrics.percentNonPositiveJacobian?.mean)} | ${fixed(a.metrics.seconds?.mean, 2)} |`,
    );
  }
} else {
  const result = await ldmMorphRecipe().run({ stage: 'evaluate', dataDir, runDir, modelDir, settings: {} });
  const evaluation = result.summary.evaluation as {
    rows: ({ name: string } & SliceScores)[];
    patients: string[];
  };
  header = [
    `2-D: mid-ventricular slices of ${evaluation.patients.length} validation patients on the network grid (112 in 128 pixels)`,
    '',
    '| network | Dice myocardium | Dice LV | mean | Dice RV | % det J ≤ 0 | s per pair |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of evaluation.rows)
    rows.push(
      `| ${r.name} | ${fixed(r.dice.myocardium)} | ${fixed(r.dice.LV)} | ${fixed(r.myocardiumLvMean)} | ${fixed(r.dice.RV)} | ${fixed(r.foldedPercent)} | ${fixed(r.secondsPerPair)} |`,
    );
}

const machine = machineLine();
const entry = [
  `## ${new Date().toISOString()}`,
  '',
  `machine: ${machine}; load average at start ${loadStart}, at end ${loadAverage()}`,
  `command: node --import tsx bench/ldmmorph/run.ts ${process.argv.slice(2).join(' ')}`,
  `model: ${modelDir}; ES moving → ED fixed`,
  '',
  ...header,
  ...rows,
  '',
].join('\n');
process.stdout.write(`${entry}\n`);
appendFileSync(fileURLToPath(new URL('./RESULTS.md', import.meta.url)), `${entry}\n`);
