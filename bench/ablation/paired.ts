/**
 * The ablation's table from a harness results folder (bench/ablation/run.sh): the registration of
 * every case of a dataset on each descriptor, and each descriptor's paired difference to the fused
 * descriptor without the diffusion features ('classical': MIND-SSC + patches) — for 'fused', what the
 * diffusion features add. Primary metric: mean TRE where the cases have landmarks, else mean Dice.
 *
 *   node --import tsx bench/ablation/paired.ts DIR DATASET [CASE,CASE,…]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AUTO_DESCRIPTORS, withDescriptor } from '../../src/methods/meddift/index.ts';
import type { Modality } from '../../src/data/case.ts';
import type { CaseScores } from '../../src/eval/bench/index.ts';
import { summarize } from '../../src/util/stats.ts';

const [dir, dataset, only] = process.argv.slice(2);
if (!dir || !dataset) {
  console.error('usage: node --import tsx bench/ablation/paired.ts DIR DATASET [CASE,CASE,…]');
  process.exit(2);
}
const modality: Modality = dataset.startsWith('lung') ? 'ct' : 'mr';
const descriptors = ['fused', 'classical', 'diffusion', 'mind', 'patches'] as const;
/** The harness method registering with a descriptor: the default one runs as default-register. */
const methodOf = (d: (typeof descriptors)[number]) =>
  d === AUTO_DESCRIPTORS[modality] ? 'default-register' : withDescriptor('meddift-register', d);

const rows: CaseScores[] = readdirSync(join(dir, dataset, 'cases'))
  .filter((f) => f.endsWith('.json'))
  .flatMap((f) => JSON.parse(readFileSync(join(dir, dataset, 'cases', f), 'utf8')) as CaseScores[])
  .filter((r) => !r.error && (!only || only.split(',').includes(r.caseId)));
const byTre = rows.some((r) => r.tre);
const metric = (r: CaseScores) => (byTre ? r.tre!.mean : r.dice!.mean);
/** Whether a difference of the primary metric (this − reference) is an improvement. */
const improves = (delta: number) => (byTre ? delta < 0 : delta > 0);

/** A method's rows by case id. */
const scores = (method: string) => new Map(rows.filter((r) => r.method === method).map((r) => [r.caseId, r]));

/** Two-sided exact sign test: the probability of a split at least this uneven with p = ½. */
function signTest(wins: number, losses: number): number {
  const n = wins + losses;
  const k = Math.min(wins, losses);
  let tail = 0;
  for (let i = 0; i <= k; i++) {
    let c = 1;
    for (let j = 0; j < i; j++) c = (c * (n - j)) / (j + 1);
    tail += c / 2 ** n;
  }
  return Math.min(1, 2 * tail);
}

const f = (x: number, digits: number) => x.toFixed(digits);
const digits = byTre ? 3 : 4;
const reference = scores(methodOf('classical'));
const name = byTre ? 'TRE (mm)' : 'Dice';
console.log(
  `| descriptor | method | cases | ${name} mean ± sd | %NJD | time (s) | − classical, paired (mean ± sd) | better / worse than classical (sign test p) |`,
);
console.log('|---|---|---|---|---|---|---|---|');
for (const d of descriptors) {
  const method = methodOf(d);
  const values = [...scores(method).values()];
  if (values.length === 0) continue;
  const m = summarize(values.map(metric));
  const njd = summarize(values.map((r) => r.percentNonPositiveJacobian ?? 0));
  const time = summarize(values.map((r) => r.seconds));
  const deltas = values
    .filter((r) => reference.has(r.caseId))
    .map((r) => metric(r) - metric(reference.get(r.caseId)!));
  const diff = summarize(deltas);
  const wins = deltas.filter(improves).length;
  const losses = deltas.filter((delta) => delta !== 0 && !improves(delta)).length;
  const comparison =
    d === 'classical' || deltas.length === 0
      ? ['–', '–']
      : [
          `${diff.mean >= 0 ? '+' : ''}${f(diff.mean, digits)} ± ${f(diff.sd, digits)}`,
          `${wins} / ${losses} of ${deltas.length} (p = ${signTest(wins, losses).toPrecision(2)})`,
        ];
  console.log(
    `| ${d} | ${method} | ${values.length} | ${f(m.mean, digits)} ± ${f(m.sd, digits)} | ${f(njd.mean, 4)} | ${f(time.mean, 1)} | ${comparison.join(' | ')} |`,
  );
}
