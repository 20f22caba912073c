import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Random,
  Volume,
  composeFields,
  fieldFromFunction,
  inverseWarpPoints,
  resampleVolume,
  transformPoints,
  warpPoints,
  warpVolume,
  type Mat3,
  type Vec3,
} from '../../src/geometry/index.ts';

const rotation: Mat3 = (() => {
  // 30° about z then 20° about x: a direction that mixes all axes
  const [c, s, a, b] = [
    Math.cos(Math.PI / 6),
    Math.sin(Math.PI / 6),
    Math.cos(Math.PI / 9),
    Math.sin(Math.PI / 9),
  ];
  return [c, -s * a, s * b, s, c * a, -c * b, 0, b, a];
})();

function randomVolume(dims: Vec3, init: Partial<ConstructorParameters<typeof Volume>[0]> = {}, seed = 1) {
  const random = new Random(seed);
  const data = new Float32Array(dims[0] * dims[1] * dims[2]).map(() => random.uniform() * 100 - 50);
  return new Volume({ data, dims, ...init });
}

function checkTranslation(direction: Mat3 | undefined, tolerance: number) {
  const moving = randomVolume([7, 6, 5], { spacing: [2, 1.5, 3], origin: [4, -8, 1], direction });
  const shift: Vec3 = [2, -1, 1]; // voxels along i, j, k
  const m = moving.indexToWorld;
  const world = [0, 1, 2].map(
    (r) => m[r * 4] * shift[0] + m[r * 4 + 1] * shift[1] + m[r * 4 + 2] * shift[2],
  ) as Vec3;
  const field = fieldFromFunction(moving, () => world);
  const warped = warpVolume(moving, field, { outside: -1000 });
  const [nx, ny, nz] = moving.dims;
  let insideCount = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const [si, sj, sk] = [i + shift[0], j + shift[1], k + shift[2]];
        const inside = si < nx && sj >= 0 && sk < nz;
        const expected = inside ? moving.data[moving.offset(si, sj, sk)] : -1000;
        const actual = warped.data[moving.offset(i, j, k)];
        assert.ok(Math.abs(actual - expected) <= tolerance, `voxel ${i},${j},${k}: ${actual} vs ${expected}`);
        if (inside) insideCount++;
      }
    }
  }
  assert.equal(insideCount, 5 * 5 * 4);
}

test('an integer-voxel translation reproduces the shifted data exactly (anisotropic spacing)', () => {
  checkTranslation(undefined, 0);
});

test('an integer-voxel translation on a rotated grid matches to float32 precision of the field', () => {
  // the world displacement A·shift is stored in float32 (~1e-7 relative), so the index is not exactly integral
  checkTranslation(rotation, 1e-4);
});

test('nearest-neighbour warp of labels keeps the label set and the data type', () => {
  const dims: Vec3 = [12, 10, 8];
  const labels = new Uint8Array(12 * 10 * 8).map((_, t) => [0, 3, 7, 12][Math.floor((t % 12) / 3)]);
  const volume = new Volume({ data: labels, dims, spacing: [1.2, 0.9, 2] });
  const field = fieldFromFunction(volume, (p) => [1.7 * Math.sin(p[1] / 3), 0.6 * Math.cos(p[0] / 4), 1.3]);
  const warped = warpVolume(volume, field, { interpolation: 'nearest' });
  assert.ok(warped.data instanceof Uint8Array);
  assert.deepEqual(
    [...new Set(warped.data)].sort((a, b) => a - b),
    [0, 3, 7, 12],
  );
});

test('resampling a linear image onto another grid through an affine is exact (different spacing, origin, direction)', () => {
  const f = (p: Vec3) => 0.5 * p[0] - 0.25 * p[1] + 0.125 * p[2] + 3;
  const moving = new Volume({
    data: new Float32Array(20 * 22 * 18),
    dims: [20, 22, 18],
    spacing: [1, 1.1, 1.3],
    origin: [-10, -12, -11],
  });
  const [nx, ny, nz] = moving.dims;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++) moving.data[moving.offset(i, j, k)] = f(moving.voxelToWorld([i, j, k]));
  const fixed = new Volume({
    data: new Uint8Array(6 * 5 * 4),
    dims: [6, 5, 4],
    spacing: [2, 1.7, 2.5],
    origin: [-4, -3, -2],
    direction: rotation,
  });
  const T = [0.98, 0.1, 0, 0.5, -0.1, 0.97, 0.05, -0.3, 0, -0.04, 1.02, 0.2, 0, 0, 0, 1];
  const warped = resampleVolume(moving, fixed, { affine: T });
  const plain = resampleVolume(moving, fixed);
  for (let k = 0; k < 4; k++) {
    for (let j = 0; j < 5; j++) {
      for (let i = 0; i < 6; i++) {
        const p = fixed.voxelToWorld([i, j, k]);
        const q = transformPoints([p], T)[0];
        assert.ok(Math.abs(warped.data[fixed.offset(i, j, k)] - f(q)) < 1e-4, `affine at ${i},${j},${k}`);
        assert.ok(Math.abs(plain.data[fixed.offset(i, j, k)] - f(p)) < 1e-4, `identity at ${i},${j},${k}`);
      }
    }
  }
});

test('the outside value starts half a voxel beyond the last voxel centre', () => {
  const moving = new Volume({ data: Float32Array.of(5, 7), dims: [2, 1, 1] });
  const shifts = [-0.4, -0.6, 1.4, 1.6];
  const values = shifts.map(
    (s) =>
      warpVolume(
        moving,
        fieldFromFunction(new Volume({ data: new Float32Array(1), dims: [1, 1, 1] }), () => [s, 0, 0]),
        { outside: -1 },
      ).data[0],
  );
  assert.deepEqual(values, [5, -1, 7, -1]);
});

test('warping twice equals one warp through composeFields(outer, inner)', () => {
  const f = (p: Vec3) => 2 * p[0] - p[1] + 0.5 * p[2];
  const grid = new Volume({ data: new Float32Array(16 * 14 * 12), dims: [16, 14, 12], spacing: [1.5, 1, 2] });
  const image = fieldFromFunction(grid, (p) => [f(p), 0, 0]);
  const moving = grid.withData(image.data.slice(0, grid.size));
  const outer = fieldFromFunction(grid, (p) => [0.8 * Math.sin(p[1] / 4), 0.5 * Math.cos(p[2] / 5), 0.7]);
  const inner = fieldFromFunction(grid, (p) => [0.6, -0.4 * Math.sin(p[0] / 6), 0.3 * Math.cos(p[1] / 3)]);
  const twice = warpVolume(warpVolume(moving, outer), inner);
  const once = warpVolume(moving, composeFields(outer, inner));
  // compare away from the border, where both chains stay inside the grid
  for (let k = 3; k < 9; k++)
    for (let j = 3; j < 11; j++)
      for (let i = 3; i < 13; i++) {
        const t = grid.offset(i, j, k);
        assert.ok(
          Math.abs(twice.data[t] - once.data[t]) < 1e-3,
          `voxel ${i},${j},${k}: ${twice.data[t]} vs ${once.data[t]}`,
        );
      }
});

test('warpPoints maps p to p + u(p) and inverseWarpPoints undoes it', () => {
  const grid = new Volume({
    data: new Float32Array(20 * 20 * 20),
    dims: [20, 20, 20],
    spacing: [2, 2, 2],
    direction: rotation,
  });
  const field = fieldFromFunction(grid, (p) => [3 * Math.sin(p[1] / 10), 2 * Math.cos(p[0] / 12), 1.5]);
  const fixedPoints: Vec3[] = [grid.voxelToWorld([5, 6, 7]), grid.voxelToWorld([10.5, 12.25, 9.75])];
  const moved = warpPoints(fixedPoints, field);
  // voxel centre: exactly the stored displacement
  const t = grid.offset(5, 6, 7);
  const n = grid.size;
  assert.deepEqual(moved[0], [
    fixedPoints[0][0] + field.data[t],
    fixedPoints[0][1] + field.data[t + n],
    fixedPoints[0][2] + field.data[t + 2 * n],
  ]);
  const back = inverseWarpPoints(moved, field);
  assert.ok(back.residual <= 1e-4, `residual ${back.residual}`);
  back.points.forEach((p, i) => p.forEach((v, a) => assert.ok(Math.abs(v - fixedPoints[i][a]) < 1e-3)));
});

test('transformPoints applies a 4×4 affine and rejects a bad last row', () => {
  const T = [0, -1, 0, 10, 1, 0, 0, 0, 0, 0, 2, -1, 0, 0, 0, 1];
  assert.deepEqual(transformPoints([[1, 2, 3]], T), [[8, 1, 5]]);
  assert.throws(
    () => transformPoints([[1, 2, 3]], [...T.slice(0, 15), 2]),
    /affine: last row must be 0 0 0 1/,
  );
});
