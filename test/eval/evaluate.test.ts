import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Volume, fieldFromFunction, zeroField, type Vec3 } from '../../src/geometry/index.ts';
import type { RegistrationCase } from '../../src/methods/method.ts';
import { evaluateCase } from '../../src/eval/bench/index.ts';

const near = (a: number | undefined, b: number, tol = 1e-9) =>
  assert.ok(a !== undefined && Math.abs(a - b) <= tol, `${a} vs ${b}`);

/** A label map whose rows j = 0, 1 are `rows[j]` along i, repeated over two slices k. */
function labelMap(rows: number[][]): Volume<Uint8Array> {
  const dims: Vec3 = [rows[0].length, rows.length, 2];
  const data = new Uint8Array(dims[0] * dims[1] * dims[2]);
  for (let k = 0, t = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++, t++) data[t] = rows[j][i];
  return new Volume({ data, dims, spacing: [1.5, 1.5, 8] });
}

function labelledCase(labelGroups?: Record<string, number[]>): RegistrationCase {
  const fixedLabels = labelMap([
    [1, 1, 2, 2, 3, 3],
    [1, 2, 2, 3, 3, 0],
  ]);
  const movingLabels = labelMap([
    [1, 2, 2, 3, 3, 3],
    [1, 1, 2, 2, 3, 0],
  ]);
  const image = (v: Volume<Uint8Array>) => v.withData(Float32Array.from(v.data));
  return {
    id: 'hand',
    fixed: image(fixedLabels),
    moving: image(movingLabels),
    fixedLabels,
    movingLabels,
    labelSet: [1, 2, 3],
    labelGroups,
    modality: 'mr',
  };
}

test('evaluateCase: Dice of label unions and the mean over labels and unions, hand-counted', () => {
  const groups = { 'LV+myocardium': [2, 3], 'whole heart': [1, 2, 3], absent: [9] };
  const item = labelledCase(groups);
  // u = 0: the moving labels are compared as they are. Per slice, label 1: 3 and 3 voxels, 2 shared
  // → 2/3; label 2: 4 and 4, 2 shared → 1/2; label 3: 4 and 4, 3 shared → 3/4; {2, 3}: 8 and 8,
  // 7 shared → 7/8; {1, 2, 3}: 11 and 11, all shared → 1. A union in neither map is left out.
  const scores = evaluateCase(item, 'identity', { field: zeroField(item.fixed), seconds: 0, peakRssMb: 0 });
  assert.deepEqual(scores.dice?.perLabel, { 1: 2 / 3, 2: 0.5, 3: 0.75 });
  assert.deepEqual(scores.diceGroups, { 'LV+myocardium': 0.875, 'whole heart': 1 });
  near(scores.diceStructuresMean, 91 / 120); // (2/3 + 1/2 + 3/4 + 7/8 + 1) / 5
  near(scores.dice?.mean, (2 / 3 + 0.5 + 0.75) / 3);

  const plain = evaluateCase(labelledCase(), 'identity', {
    field: zeroField(item.fixed),
    seconds: 0,
    peakRssMb: 0,
  });
  assert.equal(plain.diceGroups, undefined);
  assert.equal(plain.diceStructuresMean, undefined);
});

test('evaluateCase: std det J is 0 for an affine field and hand-computed for a ramp', () => {
  // u = A·x: det J = det(I + A) everywhere, so its standard deviation is 0
  const grid = new Volume({
    data: new Uint8Array(6 * 5 * 4),
    dims: [6, 5, 4],
    spacing: [1.2, 0.8, 2],
    origin: [-3, 4, 10],
  });
  const A = [0.2, 0.1, 0, -0.05, 0.1, 0.03, 0, 0.04, -0.1];
  const affine = fieldFromFunction(
    grid,
    (p) => [0, 1, 2].map((r) => A[3 * r] * p[0] + A[3 * r + 1] * p[1] + A[3 * r + 2] * p[2]) as Vec3,
  );
  const item: RegistrationCase = { id: 'affine', fixed: grid, moving: grid, modality: 'ct' };
  const affineScores = evaluateCase(item, 'affine', { field: affine, seconds: 0, peakRssMb: 0 });
  near(affineScores.stdJacobian, 0, 1e-5);

  // u_x = 0, 0, 2, 2 mm along i (unit spacing): ∂u_x/∂x = 0 (one-sided), 1, 1 (central), 0 (one-sided)
  // → det J = 1, 2, 2, 1 in every row: mean 1.5, population sd 0.5
  const line = new Volume({ data: new Uint8Array(4 * 2 * 2), dims: [4, 2, 2] });
  const ramp = fieldFromFunction(line, (p) => [p[0] >= 2 ? 2 : 0, 0, 0]);
  const rampItem: RegistrationCase = { id: 'ramp', fixed: line, moving: line, modality: 'ct' };
  near(evaluateCase(rampItem, 'ramp', { field: ramp, seconds: 0, peakRssMb: 0 }).stdJacobian, 0.5, 1e-12);
});

test('evaluateCase: TRE of all matches and of the more confident half, hand-computed', () => {
  const grid = new Volume({ data: new Float32Array(8), dims: [2, 2, 2] });
  const fixedPoints: Vec3[] = [
    [0, 0, 0],
    [1, 0, 0],
    [0, 1, 0],
    [1, 1, 0],
  ];
  const item: RegistrationCase = {
    id: 'points',
    fixed: grid,
    moving: grid,
    fixedPoints,
    movingPoints: fixedPoints,
    modality: 'ct',
  };
  // Errors 1, 2, 3, 4 mm along z; the first and third matches are the confident ones.
  const predicted = fixedPoints.map((p, i): Vec3 => [p[0], p[1], i + 1]);
  const result = { movingPointsPredicted: predicted, seconds: 0, peakRssMb: 0 };
  const scores = evaluateCase(item, 'matcher', { ...result, pointConfidence: [0.9, 0.1, 0.8, 0.2] });
  near(scores.tre?.mean, 2.5);
  near(scores.treConfidentMean, 2);
  assert.equal(evaluateCase(item, 'matcher', result).treConfidentMean, undefined);
});
