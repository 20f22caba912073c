import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Volume, fieldFromFunction, zeroField, type Mat3, type Vec3 } from '../../src/geometry/index.ts';
import {
  dice,
  hausdorff95,
  jacobianStats,
  targetRegistrationError,
  unionDice,
} from '../../src/eval/metrics.ts';
import { percentile, summarize } from '../../src/util/stats.ts';
import { DiffregError } from '../../src/util/errors.ts';

const near = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('summarize: mean, sample sd, numpy-linear percentiles', () => {
  const s = summarize([10, 1, 4, 3, 2]);
  // mean 4; squared deviations 36 + 9 + 0 + 1 + 4 = 50 → sd = √(50/4)
  assert.equal(s.count, 5);
  near(s.mean, 4);
  near(s.sd, Math.sqrt(12.5));
  assert.deepEqual([s.median, s.p25, s.p75, s.max], [3, 2, 4, 10]);
  // (n − 1)·q: 3·0.25 = 0.75 → 1 + 0.75·(2 − 1)
  near(percentile([1, 2, 3, 4], 25), 1.75);
  assert.ok(Number.isNaN(summarize([7]).sd));
});

test('TRE in world mm, with and without a field', () => {
  const fixed: Vec3[] = [
    [0, 0, 0],
    [10, 10, 10],
    [1, 2, 3],
  ];
  const moving: Vec3[] = [
    [3, 4, 0],
    [10, 10, 22],
    [1, 2, 3],
  ];
  const initial = targetRegistrationError(fixed, moving);
  assert.deepEqual(initial.errors, [5, 12, 0]);
  near(initial.mean, 17 / 3);
  near(initial.sd, Math.sqrt(((5 - 17 / 3) ** 2 + (12 - 17 / 3) ** 2 + (17 / 3) ** 2) / 2));
  assert.equal(initial.median, 5);
  assert.equal(initial.max, 12);
  // a constant field (3, 4, 0): point 1 lands exactly, point 2 is off by |(−3, −4, 12)| = 13
  const grid = new Volume({
    data: new Float32Array(8),
    dims: [2, 2, 2],
    spacing: [20, 20, 20],
    origin: [-5, -5, -5],
  });
  const field = fieldFromFunction(grid, () => [3, 4, 0]);
  assert.deepEqual(targetRegistrationError(fixed, moving, { field }).errors, [0, 13, 5]);
});

test('TRE from voxel indices respects anisotropic spacing and direction', () => {
  // axis i → +y, axis j → −x, axis k → +z; spacing 0.5, 2, 3 mm
  const direction: Mat3 = [0, -1, 0, 1, 0, 0, 0, 0, 1];
  const fixedGrid = new Volume({
    data: new Uint8Array(1),
    dims: [1, 1, 1],
    spacing: [0.5, 2, 3],
    origin: [1, 1, 1],
    direction,
  });
  const movingGrid = new Volume({
    data: new Uint8Array(1),
    dims: [1, 1, 1],
    spacing: [1, 1, 1],
    origin: [0, 0, 0],
  });
  // fixed voxel (4, 1, 2) → world (1 − 2, 1 + 2, 1 + 6) = (−1, 3, 7); moving voxel (−1, 3, 3) → (−1, 3, 3): 4 mm apart
  const tre = targetRegistrationError([[4, 1, 2]], [[-1, 3, 3]], { fixedGrid, movingGrid });
  near(tre.errors[0], 4, 1e-12);
  // world moving point with the same fixed voxel index: (2, 7, 7) is (3, 4, 0) away → 5 mm
  near(targetRegistrationError([[4, 1, 2]], [[2, 7, 7]], { fixedGrid }).errors[0], 5, 1e-12);
  assert.throws(
    () => targetRegistrationError([[0, 0, 0]], []),
    (e: unknown) =>
      e instanceof DiffregError && e.message === 'landmarks: 1 fixed points but 0 moving points',
  );
});

function boxes(dims: Vec3, spacing: Vec3, fill: (i: number, j: number, k: number) => number): Volume {
  const v = new Volume({ data: new Uint8Array(dims[0] * dims[1] * dims[2]), dims, spacing });
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++) v.data[v.offset(i, j, k)] = fill(i, j, k);
  return v;
}
const inside = (x: number, lo: number, hi: number) => x >= lo && x < hi;

test('Dice of two boxes with known overlap; absent labels', () => {
  // label 1: 4×4×4 boxes shifted by one voxel → overlap 3×4×4 = 48 → 2·48/128 = 0.75
  // label 2: only in the fixed map → 0; label 5: requested but absent from both → excluded
  const fixed = boxes([10, 8, 8], [1, 1, 1], (i, j, k) =>
    inside(i, 0, 4) && inside(j, 0, 4) && inside(k, 0, 4) ? 1 : i === 9 ? 2 : 0,
  );
  const warped = boxes([10, 8, 8], [1, 1, 1], (i, j, k) =>
    inside(i, 1, 5) && inside(j, 0, 4) && inside(k, 0, 4) ? 1 : 0,
  );
  const all = dice(fixed, warped);
  assert.deepEqual(all.perLabel, [
    { label: 1, value: 0.75 },
    { label: 2, value: 0 },
  ]);
  near(all.mean, 0.375);
  const chosen = dice(fixed, warped, { labels: [1, 5] });
  assert.deepEqual(chosen.perLabel, [{ label: 1, value: 0.75 }]);
  near(chosen.mean, 0.75);
  const other = new Volume({ data: new Uint8Array(10 * 8 * 8), dims: [10, 8, 8], spacing: [2, 1, 1] });
  assert.throws(
    () => dice(fixed, other),
    (e: unknown) =>
      e instanceof DiffregError &&
      e.message === 'label maps: must lie on the same grid (spacing, origin or direction differ)',
  );
});

test('Dice of a label union, hand-counted', () => {
  // 6×2×1 maps, rows j = 0 and 1:      fixed 1 1 2 2 3 3 / 1 2 2 3 3 0
  //                                     warped 1 2 2 3 3 3 / 1 1 2 2 3 0
  // union {2, 3}: 8 voxels in each, 4 + 3 shared → 14/16; union {1, 2, 3}: all 11 nonzero shared → 1
  const rows = (a: number[], b: number[]) => boxes([6, 2, 1], [1, 1, 1], (i, j) => (j === 0 ? a : b)[i]);
  const fixed = rows([1, 1, 2, 2, 3, 3], [1, 2, 2, 3, 3, 0]);
  const warped = rows([1, 2, 2, 3, 3, 3], [1, 1, 2, 2, 3, 0]);
  assert.equal(unionDice(fixed, warped, [2, 3]), 0.875);
  assert.equal(unionDice(fixed, warped, [3, 2, 1]), 1);
  // a one-label union is that label's Dice: label 2 shares 2 of 4 + 4 voxels
  assert.equal(unionDice(fixed, warped, [2]), dice(fixed, warped, { labels: [2] }).mean);
  assert.equal(unionDice(fixed, warped, [2]), 0.5);
  assert.ok(Number.isNaN(unionDice(fixed, warped, [7, 8])));
  assert.throws(() => unionDice(fixed, warped, []), /label union: expected one or more finite label values/);
});

test('HD95 of boxes shifted by a known distance, anisotropic spacing', () => {
  // 10×10×8 boxes shifted by 3 voxels along i at 1.5 mm: every face voxel facing the shift is 4.5 mm
  // from the other surface and none is farther, and those faces hold ≥ 5 % of the surface → 4.5 mm
  // (scipy: distance_transform_edt on the eroded-surface masks gives 4.5 as well)
  const spacing: Vec3 = [1.5, 1, 2];
  const fixed = boxes([20, 16, 14], spacing, (i, j, k) =>
    inside(i, 3, 13) && inside(j, 2, 12) && inside(k, 2, 10) ? 1 : 0,
  );
  const warped = boxes([20, 16, 14], spacing, (i, j, k) =>
    inside(i, 6, 16) && inside(j, 2, 12) && inside(k, 2, 10) ? 1 : 0,
  );
  const result = hausdorff95(fixed, warped);
  assert.equal(result.perLabel.length, 1);
  near(result.perLabel[0].value, 4.5, 1e-9);
  // identical maps → 0; a label present in one map only → Infinity
  near(hausdorff95(fixed, fixed).mean, 0);
  const lonely = boxes([20, 16, 14], spacing, (i) => (i === 0 ? 3 : 0));
  assert.deepEqual(hausdorff95(fixed, lonely, { labels: [3] }).perLabel, [{ label: 3, value: Infinity }]);
});

test('HD95 of two spheres (radius 6) offset by 4 voxels along i is 4 mm', () => {
  const ball = (ci: number) => (i: number, j: number, k: number) =>
    (i - ci) ** 2 + (j - 15) ** 2 + (k - 15) ** 2 <= 36 ? 1 : 0;
  const a = boxes([31, 31, 31], [1, 1, 1], ball(15));
  const b = boxes([31, 31, 31], [1, 1, 1], ball(19));
  near(hausdorff95(a, b).mean, 4, 1e-9);
  // Dice of the same spheres: 925 voxels each, 493 shared (counted independently with numpy)
  near(dice(a, b).mean, (2 * 493) / (925 + 925));
});

test('Jacobian statistics: analytic affine field and a hand-computed folding', () => {
  const [c, s] = [Math.cos(0.4), Math.sin(0.4)];
  const grid = new Volume({
    data: new Uint8Array(7 * 6 * 5),
    dims: [7, 6, 5],
    spacing: [0.7, 1.4, 2.5],
    direction: [c, 0, s, 0, 1, 0, -s, 0, c],
  });
  const A = [1.2, 0.1, 0, 0, 0.9, 0.05, 0.02, 0, 1.1];
  const detA = 1.2 * (0.9 * 1.1) - 0.1 * (0 * 1.1 - 0.05 * 0.02); // = 1.1881
  const u = fieldFromFunction(
    grid,
    (p) =>
      [0, 1, 2].map((r) => A[3 * r] * p[0] + A[3 * r + 1] * p[1] + A[3 * r + 2] * p[2] - p[r] + 1) as Vec3,
  );
  const stats = jacobianStats(u);
  assert.equal(stats.count, 210);
  near(stats.mean, detA, 1e-5);
  assert.ok(stats.std < 1e-5 && stats.sdLogJ < 1e-5 && stats.percentNonPositive === 0);
  near(jacobianStats(zeroField(grid)).mean, 1, 0);

  // u_x steps by −3 mm between i = 3 and 4 (unit grid 8×4×4): det = −0.5 at i = 3, 4 and 1 elsewhere
  const line = new Volume({ data: new Uint8Array(8 * 4 * 4), dims: [8, 4, 4] });
  const step = fieldFromFunction(line, (p) => [p[0] >= 4 ? -3 : 0, 0, 0]);
  const folded = jacobianStats(step);
  near(folded.fractionNonPositive, 0.25);
  near(folded.percentNonPositive, 25);
  near(folded.mean, 0.625, 1e-12);
  near(folded.std, Math.sqrt((6 * 0.375 ** 2 + 2 * 1.125 ** 2) / 8), 1e-12);
  // log clip: 0 (¾ of voxels) and log(1e-9) (¼): population sd = |log 1e-9|·√(¼·¾)
  near(folded.sdLogJ, Math.abs(Math.log(1e-9)) * Math.sqrt(0.25 * 0.75), 1e-9);
  assert.deepEqual([folded.min, folded.max], [-0.5, 1]);
  // crop 1 keeps i = 1…6, j, k = 1…2: 2 of 6 columns fold
  near(jacobianStats(step, { crop: 1 }).fractionNonPositive, 1 / 3);
  // a mask over i ≥ 4 keeps 4 columns, one folding
  const mask = line.withData(new Uint8Array(line.size).map((_, t) => (t % 8 >= 4 ? 1 : 0)));
  near(jacobianStats(step, { mask }).fractionNonPositive, 0.25);
  const crop = jacobianStats(step, { mask, crop: 1 });
  assert.equal(crop.count, 3 * 2 * 2);
});
