import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Volume,
  fieldFromFunction,
  jacobianDeterminant,
  zeroField,
  type Mat3,
  type Vec3,
} from '../../src/geometry/index.ts';

// 30° about z then 20° about x
const [c, s, a, b] = [
  Math.cos(Math.PI / 6),
  Math.sin(Math.PI / 6),
  Math.cos(Math.PI / 9),
  Math.sin(Math.PI / 9),
];
const rotation: Mat3 = [c, -s * a, s * b, s, c * a, -c * b, 0, b, a];
const grid = new Volume({
  data: new Float32Array(9 * 8 * 7),
  dims: [9, 8, 7],
  spacing: [0.8, 1.3, 2.1],
  origin: [-3, 4, -5],
  direction: rotation,
});

test('the zero field has det J = 1 at every voxel (anisotropic spacing, rotated direction)', () => {
  assert.ok(jacobianDeterminant(zeroField(grid)).data.every((d) => d === 1));
});

test('an affine field u(x) = (A − I)x + t has det J = det(A) at every voxel', () => {
  const A = [1.1, 0.2, 0, -0.1, 0.9, 0.15, 0.05, 0, 1.2];
  // det A by cofactors along the first row: 1.1·(0.9·1.2 − 0.15·0) − 0.2·(−0.1·1.2 − 0.15·0.05) + 0 = 1.2135
  const detA = 1.2135;
  const t: Vec3 = [2, -1, 0.5];
  const u = fieldFromFunction(
    grid,
    (p) =>
      [0, 1, 2].map((r) => A[3 * r] * p[0] + A[3 * r + 1] * p[1] + A[3 * r + 2] * p[2] - p[r] + t[r]) as Vec3,
  );
  const det = jacobianDeterminant(u).data;
  assert.equal(det.length, grid.size);
  det.forEach((d, i) => assert.ok(Math.abs(d - detA) < 1e-4, `voxel ${i}: ${d}`));
});

test('a reflection gives det J = −1 and a 1-D step gives the central-difference value', () => {
  const mirror = fieldFromFunction(grid, (p) => [-2 * p[0], 0, 0]); // x → −x
  jacobianDeterminant(mirror).data.forEach((d) => assert.ok(Math.abs(d + 1) < 1e-5));
  // u_x jumps by −3 mm between i = 3 and i = 4 on a unit grid: (u[i+1] − u[i−1])/2 = −1.5 at i = 3, 4
  const line = new Volume({ data: new Float32Array(8 * 3 * 3), dims: [8, 3, 3] });
  const step = fieldFromFunction(line, (p) => [p[0] >= 4 ? -3 : 0, 0, 0]);
  const det = jacobianDeterminant(step);
  assert.deepEqual(
    Array.from({ length: 8 }, (_, i) => det.data[line.offset(i, 1, 1)]),
    [1, 1, 1, -0.5, -0.5, 1, 1, 1],
  );
});
