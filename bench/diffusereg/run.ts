/**
 * bench/diffusereg: seconds per pair and peak memory of DiffuseReg's samplers as a user runs them
 * (`diffreg register --method diffusereg`: whole, uncropped ACDC ES → ED volumes resampled onto the
 * network grid and the field brought back onto the fixed grid), beside the bootstrap network, on one
 * validation patient per ACDC group (never trained on). The target: DDIM-10 under 15 s per pair
 * on 2 cores. Appends to bench/diffusereg/RESULTS.md with the machine and its load.
 * Usage: node --import tsx bench/diffusereg/run.ts [--ddpm] [patient017 …]
 */
import { loadAverage, machineLine } from '../machine.ts';
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { acdcDataset } from '../../src/data/acdc.ts';
import { diffuseRegMethod, voxelMorphMethod } from '../../src/methods/diffusereg/method.ts';
import type { RegistrationMethod } from '../../src/methods/method.ts';
import { summarize } from '../../src/util/stats.ts';
import { sharedPath } from '../../test/helpers/shared.ts';

const args = process.argv.slice(2);
const ddpm = args.includes('--ddpm');
const patients = args.filter((a) => !a.startsWith('--'));
const ids =
  patients.length > 0 ? patients : ['patient017', 'patient037', 'patient057', 'patient077', 'patient097'];

const methods: [string, RegistrationMethod, number][] = [
  ['bootstrap network (voxelmorph)', voxelMorphMethod, 1],
  ['DDIM-10', diffuseRegMethod({ sampler: 'ddim', steps: 10 }), 10],
  ['DDIM-10, 5 samples', diffuseRegMethod({ sampler: 'ddim', steps: 10, samples: 5 }), 50],
  ['DDIM-50', diffuseRegMethod({ sampler: 'ddim', steps: 50 }), 50],
  ...(ddpm
    ? [['DDPM-2000', diffuseRegMethod({ sampler: 'ddpm' }), 2000] as [string, RegistrationMethod, number]]
    : []),
];

const loadStart = loadAverage();
const dataset = acdcDataset({ root: sharedPath('data', 'cardiac-acdc'), cropMargin: 0 });
const cases = await Promise.all(ids.map((id) => dataset.load(id)));
// One untimed pair first: the weights load and the first libtorch calls allocate.
await diffuseRegMethod({ sampler: 'ddim', steps: 2 }).register(cases[0]);

const rows: string[] = [];
for (const [name, method, passes] of methods) {
  // DDPM-2000 on the first patient only: about 2000 network passes per pair.
  const runOn = name.startsWith('DDPM') ? cases.slice(0, 1) : cases;
  const seconds: number[] = [];
  let peak = 0;
  for (const item of runOn) {
    const r = await method.register(item, { seed: 0 });
    seconds.push(r.seconds);
    peak = Math.max(peak, r.peakRssMb);
  }
  const s = summarize(seconds);
  rows.push(
    `| ${name} | ${runOn.length} | ${s.mean.toFixed(2)} | ${Math.min(...seconds).toFixed(2)} – ${s.max.toFixed(2)} | ${passes} | ${((1000 * s.mean) / passes).toFixed(0)} | ${peak.toFixed(0)} |`,
  );
  process.stdout.write(`${rows.at(-1)}\n`);
}

const dims = cases.map((c) => c.fixed.dims.join('×')).join(', ');
const machine = machineLine();
const entry = [
  `## ${new Date().toISOString()}`,
  '',
  `machine: ${machine}; load average at start ${loadStart}, at end ${loadAverage()}`,
  `command: node --import tsx bench/diffusereg/run.ts ${args.join(' ')}`,
  `pairs: ${ids.join(', ')} (ES → ED, whole volumes ${dims})`,
  '',
  '| method | pairs | s per pair (mean) | min – max | network passes | ms per pass (incl. resampling) | peak RSS MB |',
  '|---|---|---|---|---|---|---|',
  ...rows,
  '',
].join('\n');
process.stdout.write(`${entry}\n`);
appendFileSync(fileURLToPath(new URL('./RESULTS.md', import.meta.url)), `${entry}\n`);
