/**
 * Settings search for the dense registration (issue 17): one method of the registry with a settings
 * object on a few cases of a benchmark dataset, scored as the harness scores them (evaluateCase), one
 * line per case and their mean. Settings are chosen with it on validation subsets and then frozen;
 * bench/harness/RESULTS.md says which cases chose what.
 *
 *   node --import tsx bench/harness/tune.ts acdc patient002,patient022 patches-register '{"affine":true}' label
 *   OVERLAY=/tmp/ov node --import tsx bench/harness/tune.ts lung-synthetic 1,2 mind-register '{}'
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setNumThreads } from '../../src/engine/index.ts';
import { evaluateCase, openBenchDataset, overlayPng } from '../../src/eval/bench/index.ts';
import { methodEntry } from '../../src/methods/method.ts';
import { loadDefaultModel, type LatentDiffusionModel } from '../../src/models/index.ts';

setNumThreads(Number(process.env.THREADS ?? 1));
const [dataset, cases, method, json = '{}', label = ''] = process.argv.slice(2);
const settings = JSON.parse(json) as object;
const ds = openBenchDataset({ dataset, seed: 1 });
let model: LatentDiffusionModel | undefined;
const registration = methodEntry(method).create({
  dataset,
  settings,
  model: () => (model ??= loadDefaultModel()),
});
const caseId = (id: string) =>
  dataset === 'lung-synthetic' && /^\d+$/.test(id) ? `lung-s1-${id.padStart(2, '0')}` : id;
const rows: number[][] = [];
for (const id of cases.split(',')) {
  const item = await ds.load(caseId(id));
  const result = await registration.register(item, { seed: 1 });
  const s = evaluateCase(item, method, result);
  if (process.env.OVERLAY)
    writeFileSync(join(process.env.OVERLAY, `${item.id}-${label}.png`), overlayPng(item, result));
  const score = s.tre ? s.tre.mean : (s.dice?.mean ?? NaN);
  const perLabel = s.dice ? Object.entries(s.dice.perLabel).map(([k, v]) => `${k}:${v.toFixed(3)}`) : [];
  rows.push([score, s.percentNonPositiveJacobian ?? 0, s.seconds]);
  console.log(
    `${label} ${dataset} ${item.id} ${method} ${json} ${s.tre ? 'TRE' : 'Dice'} ${score.toFixed(4)} ${perLabel.join(' ')} NJD ${(s.percentNonPositiveJacobian ?? 0).toFixed(4)} SDlogJ ${(s.sdLogJ ?? 0).toFixed(3)} ${s.seconds.toFixed(1)} s ${JSON.stringify(result.details ?? {})}`,
  );
}
const mean = (k: number) => rows.reduce((a, r) => a + r[k], 0) / rows.length;
console.log(
  `MEAN ${label} ${dataset} ${method} ${json} ${mean(0).toFixed(4)} NJD ${mean(1).toFixed(4)} ${mean(2).toFixed(1)} s`,
);
