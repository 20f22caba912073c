import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Volume,
  checkField,
  displacementNorms,
  fieldFromFunction,
  fieldFromVoxelUnits,
  fieldToVoxelUnits,
  sampleField,
  zeroField,
  type Mat3,
  type Vec3,
} from '../../src/geometry/index.ts';
import { DiffregError } from '../../src/util/errors.ts';

// Array axis i points to +y (posterior), j to −x (right), k to +z; spacing 2, 3, 4 mm.
const direction: Mat3 = [0, -1, 0, 1, 0, 0, 0, 0, 1];
const grid = new Volume({
  data: new Float32Array(5 * 4 * 3),
  dims: [5, 4, 3],
  spacing: [2, 3, 4],
  origin: [10, -20, 30],
  direction,
});

function close(actual: readonly number[], expected: readonly number[], tolerance: number, what: string) {
  actual.forEach((v, n) =>
    assert.ok(Math.abs(v - expected[n]) <= tolerance, `${what}[${n}]: ${v} vs ${expected[n]}`),
  );
}

test('zeroField has the grid geometry and 3 zero components', () => {
  const u = zeroField(grid);
  assert.equal(u.components, 3);
  assert.ok(u.sameGrid(grid));
  assert.equal(u.data.length, 3 * 60);
  assert.ok(u.data.every((v) => v === 0));
});

test('checkField rejects a scalar volume with a one-line message', () => {
  assert.throws(
    () => checkField(grid),
    (e: unknown) =>
      e instanceof DiffregError &&
      e.message === 'displacement field: expected 3 components (a displacement field), got 1',
  );
});

test('sampleField reproduces an affine field exactly inside the grid and replicates edges outside', () => {
  const affine = (p: Vec3): Vec3 => [0.1 * p[0] - 0.2 * p[2] + 1, 0.05 * p[1] + 2, -0.1 * p[0] + 3];
  const u = fieldFromFunction(grid, affine);
  const inside: Vec3[] = [grid.voxelToWorld([1.3, 2.7, 0.4]), grid.voxelToWorld([3.9, 0.2, 1.5])];
  sampleField(u, inside).forEach((v, n) => close(v, affine(inside[n]), 1e-5, 'inside'));
  // 10 voxels beyond the last voxel along i: clamped to index 4 (same j, k)
  const beyond = grid.voxelToWorld([14, 1, 2]);
  close(sampleField(u, [beyond])[0], affine(grid.voxelToWorld([4, 1, 2])), 1e-5, 'clamped');
});

test('world ↔ Learn2Reg voxel units follow A = direction·diag(spacing), planar = (nx, ny, nz, 3) Fortran order', () => {
  const u = fieldFromFunction(grid, () => [1, 2, 3]);
  const voxel = fieldToVoxelUnits(u);
  // A·(a, b, c) = a·(0, 2, 0) + b·(−3, 0, 0) + c·(0, 0, 4) = (1, 2, 3) ⇒ a = 1, b = −1/3, c = 3/4
  const n = 60;
  const at = 2 + 5 * (1 + 4 * 2); // voxel (2, 1, 2)
  close([voxel.data[at], voxel.data[at + n], voxel.data[at + 2 * n]], [1, -1 / 3, 0.75], 1e-6, 'voxel units');
  const back = fieldFromVoxelUnits(voxel);
  close(Array.from(back.data), Array.from(u.data), 1e-6, 'round trip');
});

test('displacementNorms: max and RMS length', () => {
  const u = zeroField(grid);
  u.data[0] = 3; // voxel 0: (3, 4, 0) → 5 mm
  u.data[60] = 4;
  u.data[1 + 120] = 12; // voxel 1: (0, 0, 12) → 12 mm
  const { max, rms } = displacementNorms(u);
  assert.equal(max, 12);
  assert.ok(Math.abs(rms - Math.sqrt((25 + 144) / 60)) < 1e-12);
});
