import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fieldFromFunction, Volume, type Vec3 } from '../../src/geometry/index.ts';
import { identityMethod } from '../../src/methods/baselines/index.ts';
import type { RegistrationCase, RegistrationMethod } from '../../src/methods/method.ts';
import type { RegistrationDataset } from '../../src/data/index.ts';
import { encodePng } from '../../src/util/png.ts';
import {
  BENCH_SEED,
  openBenchDataset,
  runBenchmark,
  selectCases,
  type BenchmarkReport,
} from '../../src/eval/bench/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-bench-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const dims: Vec3 = [24, 20, 16];
const spacing: Vec3 = [2, 2, 2];
/** Label boxes (voxel ranges, inclusive) of the fixed image; the moving image has them 2 voxels further along i. */
const boxes = [
  { label: 1, i: [4, 11], j: [3, 9], k: [3, 8] },
  { label: 2, i: [6, 10], j: [12, 16], k: [6, 12] },
];
const SHIFT = 2; // voxels along i = 4 mm along x

function labels(offset: number): Volume<Uint8Array> {
  const data = new Uint8Array(dims[0] * dims[1] * dims[2]);
  for (let k = 0, t = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, t++)
        for (const b of boxes)
          if (
            i >= b.i[0] + offset &&
            i <= b.i[1] + offset &&
            j >= b.j[0] &&
            j <= b.j[1] &&
            k >= b.k[0] &&
            k <= b.k[1]
          )
            data[t] = b.label;
  return new Volume({ data, dims, spacing, origin: [-10, 0, 5] });
}

function makeCase(id: string): RegistrationCase {
  const fixedLabels = labels(0);
  const movingLabels = labels(SHIFT);
  const fixedPoints: Vec3[] = [fixedLabels.voxelToWorld([6, 5, 5]), fixedLabels.voxelToWorld([8, 14, 9])];
  return {
    id,
    fixed: fixedLabels.withData(Float32Array.from(fixedLabels.data, (v) => 100 * v)),
    moving: movingLabels.withData(Float32Array.from(movingLabels.data, (v) => 100 * v)),
    fixedLabels,
    movingLabels,
    fixedPoints,
    movingPoints: fixedPoints.map(([x, y, z]) => [x + SHIFT * spacing[0], y, z]),
    labelSet: [1, 2],
    labelNames: { 1: 'box', 2: 'other box' },
    labelGroups: { 'both boxes': [1, 2] },
    modality: 'mr',
  };
}

const dataset: RegistrationDataset = {
  name: 'toy',
  description: 'two label boxes shifted by 4 mm',
  caseIds: ['a', 'b'],
  load: async (id) => makeCase(id),
  citation: 'none',
};

let truthCalls = 0;
/** Returns the true transform u = (4, 0, 0) mm. */
const truth: RegistrationMethod = {
  name: 'truth',
  description: 'the known shift',
  async register(item) {
    truthCalls++;
    return {
      field: fieldFromFunction(item.fixed, () => [SHIFT * spacing[0], 0, 0]),
      seconds: 1.5,
      peakRssMb: 100,
    };
  },
};
/** Predicts moving points directly (point matching) with 1 mm error along z. */
const matcher: RegistrationMethod = {
  name: 'matcher',
  description: 'points only',
  async register(item) {
    const predicted = (item.movingPoints as Vec3[]).map(([x, y, z]) => [x, y, z + 1] as Vec3);
    const png = encodePng(2, 1, Uint8Array.from([0, 255]), 1);
    const figures = [{ name: 'its picture', caption: 'what the matcher saw', png }];
    return { movingPointsPredicted: predicted, seconds: 0.5, peakRssMb: 50, figures };
  },
};
const broken: RegistrationMethod = {
  name: 'broken',
  description: 'always fails',
  async register() {
    throw new Error('no convergence\nsecond line');
  },
};

function parseCsv(text: string): Record<string, string>[] {
  const [header, ...rows] = text
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  return rows.map((r) => Object.fromEntries(header.map((h, n) => [h, r[n]])));
}

test('runBenchmark: metrics per case and aggregated, JSON/CSV/Markdown/HTML/PNG written and parseable', async () => {
  const outDir = join(dir, 'run');
  const events: number[] = [];
  const report = await runBenchmark(
    {
      dataset,
      methods: [identityMethod, truth, matcher, broken],
      outDir,
      seed: 7,
      overlays: 1,
      commandLine: ['diffreg', 'bench'],
    },
    (e) => events.push(e.done),
  );
  assert.equal(events.at(-1), 8);

  const json = JSON.parse(readFileSync(join(outDir, 'results.json'), 'utf8')) as BenchmarkReport;
  assert.deepEqual(json.run.commandLine, ['diffreg', 'bench']);
  assert.equal(json.run.seed, 7);
  assert.equal(json.run.versions.node, process.version);
  assert.ok(json.run.machine.cores >= 1 && json.run.machine.ramGb > 0);
  const scores = (method: string, id: string) =>
    json.cases.find((c) => c.method === method && c.caseId === id);
  // identity: every landmark 4 mm off; Dice of boxes overlapping 6 of 8 and 3 of 5 voxels along i
  const identity = scores('identity', 'a');
  assert.deepEqual(identity?.tre?.errors, [4, 4]);
  assert.ok(Math.abs((identity?.dice?.perLabel['1'] as number) - 0.75) < 1e-12);
  assert.ok(Math.abs((identity?.dice?.perLabel['2'] as number) - 0.6) < 1e-12);
  assert.equal(identity?.tre?.initialMean, 4);
  // the boxes (8·7·6 = 336 and 5·5·7 = 175 voxels) lie apart along j: their union shares 252 + 105
  // of 511 voxels in each map
  const union = 357 / 511;
  assert.ok(Math.abs((identity?.diceGroups?.['both boxes'] as number) - union) < 1e-12);
  assert.ok(Math.abs((identity?.diceStructuresMean as number) - (0.75 + 0.6 + union) / 3) < 1e-12);
  // truth: exact
  const exact = scores('truth', 'b');
  assert.ok((exact?.tre?.mean as number) < 1e-5);
  assert.deepEqual([exact?.dice?.mean, exact?.hd95?.mean, exact?.percentNonPositiveJacobian], [1, 0, 0]);
  assert.ok(Math.abs(exact?.sdLogJ as number) < 1e-6);
  assert.ok(Math.abs(exact?.stdJacobian as number) < 1e-6); // constant field: det J = 1 everywhere
  assert.equal(exact?.diceStructuresMean, 1);
  assert.equal(exact?.seconds, 1.5);
  // point matching: TRE from the predicted points, no field metrics
  const points = scores('matcher', 'a');
  assert.ok(Math.abs((points?.tre?.mean as number) - 1) < 1e-12);
  assert.equal(points?.dice, undefined);
  assert.equal(scores('broken', 'a')?.error, 'no convergence');

  const aggregate = json.aggregate.find((a) => a.method === 'identity');
  assert.equal(aggregate?.metrics.treMean?.mean, 4);
  assert.ok(Math.abs((aggregate?.dicePerLabel?.['1'] as number) - 0.75) < 1e-12);
  assert.equal(aggregate?.trePooled?.count, 4);
  assert.ok(Math.abs((aggregate?.dicePerGroup?.['both boxes'] as number) - union) < 1e-12);
  assert.ok(
    Math.abs((aggregate?.metrics.diceStructuresMean?.mean as number) - (0.75 + 0.6 + union) / 3) < 1e-12,
  );
  assert.equal(aggregate?.metrics.stdJacobian?.mean, 0);
  assert.deepEqual(
    [json.aggregate.find((a) => a.method === 'broken')?.failures, report.aggregate.length],
    [2, 4],
  );

  const casesText = readFileSync(join(outDir, 'cases.csv'), 'utf8');
  assert.match(
    casesText,
    /^case,method,.*,peak_rss_mb,dice_structures_mean,std_jacobian,tre_confident_mean,error\n/,
  );
  const rows = parseCsv(casesText);
  assert.equal(rows.length, 8);
  const row = rows.find((r) => r.case === 'b' && r.method === 'identity');
  assert.deepEqual(
    [Number(row?.tre_mean), Number(row?.tre_initial), Number(row?.tre_points), Number(row?.dice_mean)],
    [4, 4, 2, 0.675],
  );
  assert.ok(Math.abs(Number(row?.dice_structures_mean) - (0.75 + 0.6 + union) / 3) < 1e-6);
  assert.equal(row?.std_jacobian, '0');
  assert.equal(rows.find((r) => r.method === 'broken')?.error, 'no convergence');
  const labelRows = parseCsv(readFileSync(join(outDir, 'labels.csv'), 'utf8'));
  assert.equal(labelRows.length, 2 * 2 * 3); // cases × field methods × (labels + union)
  assert.equal(labelRows.find((r) => r.method === 'identity' && r.label === '2')?.name, 'other box');
  const unionRow = labelRows.find((r) => r.method === 'identity' && r.label === '1+2');
  assert.deepEqual([unionRow?.name, unionRow?.hd95], ['both boxes', '']);
  assert.ok(Math.abs(Number(unionRow?.dice) - union) < 1e-6);

  const markdown = readFileSync(join(outDir, 'summary.md'), 'utf8');
  assert.match(markdown, /\| identity \| 2\/2 \| 4\.00 ± 0\.00 \|/);
  assert.match(markdown, /\| broken \| 0\/2 \|/);
  assert.match(markdown, /\| truth \| 1\.000 \| 1\.000 \|/);
  assert.match(
    markdown,
    /\| Dice mean ± sd \| Dice labels\+unions \| HD95 \(mm\) \| %NJD \| SDlogJ \| std det J \|/,
  );
  assert.match(
    markdown,
    /\| truth \| 2\/2 \|.* \| 1\.000 ± 0\.000 \| 1\.000 ± 0\.000 \| 0\.00 ± 0\.00 \| 0\.000 ± 0\.000 \| 0\.000 ± 0\.000 \| 0\.000 ± 0\.000 \|/,
  );
  assert.match(markdown, /label unions both boxes \(box ∪ other box\)\./);
  assert.match(
    markdown,
    /\| method \| Dice box \| Dice other box \| Dice both boxes \|\n.*\n\| identity \| 0\.750 \| 0\.600 \| 0\.699 \|/,
  );
  const html = readFileSync(join(outDir, 'report.html'), 'utf8');
  assert.ok((html.match(/<svg /g) ?? []).length >= 6);
  for (const text of [
    '<th>Dice labels+unions</th>',
    '<th>std det J</th>',
    '<th>Dice both boxes</th>',
    'box ∪ other box',
  ])
    assert.ok(html.includes(text), text);
  // Case a: 3 overlays (the methods that ran) and the matcher's own picture; case b has no pictures.
  assert.equal((html.match(/data:image\/png;base64,/g) ?? []).length, 4);
  assert.ok(html.includes('a — matcher: what the matcher saw'));
  const picture = readFileSync(join(outDir, 'overlays', 'a_matcher_its_picture.png'));
  assert.equal(picture.readUInt32BE(16), 2);
  assert.equal(scores('matcher', 'b')?.figures, undefined);
  const png = readFileSync(join(outDir, 'overlays', 'a_truth.png'));
  assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
  assert.equal(png.readUInt32BE(16), 3 * 24 + 2 * 4); // three axial panels of 24 columns, 4-pixel gaps
  assert.equal(JSON.parse(readFileSync(join(outDir, 'cases', 'b.json'), 'utf8')).length, 4);
});

test('runBenchmark resume: scored methods are reused, new ones run', async () => {
  const outDir = join(dir, 'resume');
  await runBenchmark({ dataset, methods: [truth], outDir, overlays: 0 });
  const calls = truthCalls;
  const report = await runBenchmark({
    dataset,
    methods: [truth, identityMethod],
    outDir,
    overlays: 0,
    resume: true,
  });
  assert.equal(truthCalls, calls);
  assert.equal(report.cases.length, 4);
  assert.equal(report.aggregate.find((a) => a.method === 'identity')?.metrics.treMean?.mean, 4);
  assert.ok(existsSync(join(outDir, 'report.html')));
  // A run of one method keeps the others scored on disk in the tables, described as before.
  const one = await runBenchmark({ dataset, methods: [identityMethod], outDir, overlays: 0, resume: true });
  assert.equal(truthCalls, calls);
  assert.deepEqual(
    one.methods.map((m) => m.name),
    ['identity', 'truth'],
  );
  assert.equal(one.methods[1].description, truth.description);
  assert.deepEqual(
    one.aggregate.map((a) => [a.method, a.metrics.treMean?.mean]),
    report.aggregate.map((a) => [a.method, a.metrics.treMean?.mean]).reverse(),
  );
  assert.match(readFileSync(join(outDir, 'summary.md'), 'utf8'), /\| truth \| 2\/2 \|/);
  // Without resume a run reports its own methods only.
  const fresh = await runBenchmark({ dataset, methods: [identityMethod], outDir, overlays: 0 });
  assert.deepEqual(
    fresh.aggregate.map((a) => a.method),
    ['identity'],
  );
});

test('runBenchmark: one-line errors for bad method names and unknown cases', async () => {
  const outDir = join(dir, 'bad');
  const renamed = { ...identityMethod, name: 'bad name' };
  await assert.rejects(
    runBenchmark({ dataset, methods: [renamed], outDir }),
    /method "bad name": name may use/,
  );
  await assert.rejects(
    runBenchmark({ dataset, methods: [identityMethod, identityMethod], outDir }),
    /identity is listed twice/,
  );
  await assert.rejects(
    runBenchmark({ dataset, methods: [identityMethod], cases: ['z'], outDir }),
    /toy case "z": unknown/,
  );
});

test('selectCases and dataset names of the bench command', () => {
  const ids = ['S11', 'S12', 'S13', 'S14', 'S15'];
  assert.deepEqual(selectCases(ids, 'S12..S14'), ['S12', 'S13', 'S14']);
  assert.deepEqual(selectCases(ids, '2,S15'), ['S11', 'S12', 'S15']);
  assert.deepEqual(selectCases(ids, 'S13, S11 ,S13'), ['S13', 'S11']);
  assert.throws(() => selectCases(ids, 'S14..S12'), /cases "S14\.\.S12": expected first\.\.last/);
  assert.throws(() => selectCases(ids, 'S99'), /cases "S99": not a case id of this dataset/);
  assert.throws(() => openBenchDataset({ dataset: 'oasis' }), /dataset: expected one of lpba40, acdc/);
  assert.throws(() => openBenchDataset({ dataset: 'dirlab-4dct' }), /dataset dirlab-4dct: needs images/);
  // One default seed for the synthetic cases and the methods: the committed benchmark's lung cases.
  assert.equal(openBenchDataset({ dataset: 'lung-synthetic' }).caseIds[0], 'lung-s1-01');
  assert.equal(BENCH_SEED, 1);
});
