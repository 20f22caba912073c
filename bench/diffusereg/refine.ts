/**
 * bench/diffusereg/refine.ts: what DiffuseReg's field contributes once the intensity refinement
 * (methods/dense/refine.ts, the method's default 50 iterations at 1.5 mm) runs after it. The same
 * refinement from four starts — the identity, the bootstrap network's field, DiffuseReg DDIM-10 — and
 * the unrefined fields, scored as the harness scores ACDC (evaluateCase: Dice RV / myocardium / LV on
 * each fixed image's grid after the heart crop, % det J ≤ 0), on the 20 validation patients (never
 * trained on; the refinement's settings were chosen on training patients 001, 021, 041, 061).
 * Appends to bench/diffusereg/RESULTS.md.
 * Usage: node --import tsx bench/diffusereg/refine.ts [patient017 …]
 */
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { noGrad, tidy } from '../../src/engine/index.ts';
import { evaluateCase, openBenchDataset } from '../../src/eval/bench/index.ts';
import { acdcSplit } from '../../src/data/acdc.ts';
import { REFINE_DEFAULTS } from '../../src/methods/dense/refine.ts';
import {
  bootstrapDisplacement,
  diffuseRegMethod,
  refinedField,
  voxelMorphMethod,
} from '../../src/methods/diffusereg/method.ts';
import type { RegistrationCase, RegistrationMethod } from '../../src/methods/method.ts';
import { measured } from '../../src/util/measure.ts';
import { summarize } from '../../src/util/stats.ts';
import { loadAverage, machineLine } from '../machine.ts';

const args = process.argv.slice(2);
const ids =
  args.length > 0
    ? args
    : Array.from({ length: 100 }, (_, i) => `patient${String(i + 1).padStart(3, '0')}`).filter(
        (id) => acdcSplit(id) === 'validation',
      );
const iterations = REFINE_DEFAULTS.iterations;

/** The refinement from the bootstrap network's field, or from the identity. */
function refinedFrom(start: 'identity' | 'bootstrap'): RegistrationMethod {
  return {
    name: `${start} + refinement`,
    description: '',
    async register(item: RegistrationCase) {
      const { value, seconds, peakRssMb } = await measured(async () =>
        noGrad(() =>
          tidy(() => {
            const initial = start === 'bootstrap' ? bootstrapDisplacement(item) : undefined;
            return refinedField(item, initial, iterations);
          }),
        ),
      );
      return { field: value, seconds, peakRssMb };
    },
  };
}

const methods: [string, RegistrationMethod][] = [
  ['identity + refinement', refinedFrom('identity')],
  ['bootstrap network, unrefined', voxelMorphMethod],
  ['bootstrap network + refinement', refinedFrom('bootstrap')],
  ['DiffuseReg DDIM-10, unrefined', diffuseRegMethod({ refine: 0 })],
  ['DiffuseReg DDIM-10 + refinement (the default)', diffuseRegMethod({})],
];

const loadStart = loadAverage();
const dataset = openBenchDataset({ dataset: 'acdc', seed: 1 });
type Scores = { dice: number[]; rv: number[]; myo: number[]; lv: number[]; njd: number[]; seconds: number[] };
const scores = methods.map((): Scores => ({ dice: [], rv: [], myo: [], lv: [], njd: [], seconds: [] }));
for (const id of ids) {
  const item = await dataset.load(id);
  const line: string[] = [id];
  for (const [k, [name, method]] of methods.entries()) {
    const s = evaluateCase(item, name, await method.register(item, { seed: 1 }));
    const per = s.dice!.perLabel;
    const row = scores[k];
    row.dice.push(s.dice!.mean);
    row.rv.push(per['1']);
    row.myo.push(per['2']);
    row.lv.push(per['3']);
    row.njd.push(s.percentNonPositiveJacobian ?? 0);
    row.seconds.push(s.seconds);
    line.push(`${s.dice!.mean.toFixed(3)}`);
  }
  process.stdout.write(`${line.join(' ')}\n`);
}

const mean = (v: number[]) => summarize(v).mean;
const rows = methods.map(([name], k) => {
  const r = scores[k];
  const sd = summarize(r.dice).sd;
  return `| ${name} | ${mean(r.dice).toFixed(3)} ± ${sd.toFixed(3)} | ${[r.rv, r.myo, r.lv].map((v) => mean(v).toFixed(3)).join(' / ')} | ${mean(r.njd).toFixed(3)} | ${mean(r.seconds).toFixed(1)} |`;
});
const entry = [
  `## ${new Date().toISOString()} — refinement starts`,
  '',
  `machine: ${machineLine()}; load average at start ${loadStart}, at end ${loadAverage()}`,
  `command: node --import tsx bench/diffusereg/refine.ts ${args.join(' ')}`.trimEnd(),
  `pairs: ${ids.length} ACDC patients ES → ED (${ids.join(', ')}); refinement ${iterations} iterations`,
  '',
  '| start | mean Dice ± sd | RV / myocardium / LV | % det J ≤ 0 | s per pair |',
  '|---|---|---|---|---|',
  ...rows,
  '',
].join('\n');
process.stdout.write(`${entry}\n`);
appendFileSync(fileURLToPath(new URL('RESULTS.md', import.meta.url)), `\n${entry}`);
