/**
 * A benchmark case reopened for the viewer: report.html names it by its results folder and case id,
 * and `diffreg view --bench DIR --case ID` loads it as the run did (its recorded command line), with a
 * method's field when asked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reportHtml, type BenchmarkReport } from '../../src/eval/bench/report.ts';
import { openBenchCase } from '../../src/viewer/bench-case.ts';
import { requireShared } from '../helpers/shared.ts';

test('report.html gives each case its view command; the case reopens with the field of a method', async (t) => {
  const data = requireShared(t, 'data', 'lung');
  if (!data) return;
  const dir = mkdtempSync(join(tmpdir(), 'diffreg bench '));
  const caseId = 'lung-s1-01';
  const report = {
    run: {
      date: '2026-01-01T00:00:00Z',
      commandLine: [
        'bin/diffreg.js',
        'bench',
        '--dataset',
        'lung-synthetic',
        '--methods',
        'identity',
        '--quick',
        '--count',
        '1',
        '--data',
        join(data, '..'),
        '--out',
        dir,
      ],
      seed: 0,
      quick: true,
      versions: {},
      machine: { cpu: 'cpu', cores: 2, ramGb: 24, os: 'linux', loadAverageStart: [0, 0, 0] },
    },
    dataset: { name: 'lung-synthetic', description: 'synthetic lung pairs', citation: 'none' },
    methods: [{ name: 'identity', description: 'no registration' }],
    cases: [{ caseId, method: 'identity', seconds: 0, peakRssMb: 0 }],
    aggregate: [],
    overlays: [],
  } satisfies BenchmarkReport;
  writeFileSync(join(dir, 'results.json'), JSON.stringify(report));
  // The folder name has spaces: the command quotes it.
  assert.match(
    reportHtml(report, dir),
    new RegExp(`bin/diffreg\\.js view --bench '${dir}' --case ${caseId}</code>`),
  );

  const model = () => assert.fail('identity uses no model');
  const inputs = await openBenchCase({ dir, caseId, method: 'identity', model });
  assert.ok(inputs.field, 'the method gives its field');
  assert.ok(inputs.field.sameGrid(inputs.fixed));
  assert.ok(inputs.points && inputs.points.length > 0);
  for (const row of inputs.points) {
    assert.deepEqual(row.moving, row.fixed, 'identity: p + u(p) = p');
    assert.ok(row.truth, 'the true moving positions');
  }
  assert.equal(inputs.titles.fixed, `lung-synthetic ${caseId} fixed`);
  await assert.rejects(
    openBenchCase({ dir, caseId, method: 'elastix-bspline', model }),
    /^DiffregError: --method: elastix-bspline did not run in this benchmark \(its methods: identity\)$/,
  );
  await assert.rejects(openBenchCase({ dir, caseId: 'x', model }), /lung-synthetic case "x": unknown/);
});
