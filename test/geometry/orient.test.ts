/**
 * Axis alignment of grids: which directions reorientation alone makes agree (flips, permutations), and
 * the resampling of a rotated volume onto axes parallel to another grid's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alignAxes, parallelAxes, reorient } from '../../src/geometry/orient.ts';
import { IDENTITY3, Volume, type Mat3, type Vec3 } from '../../src/geometry/volume.ts';

/** Row-major rotation by `degrees` about world axis z. */
function rotationZ(degrees: number): Mat3 {
  const [c, s] = [Math.cos((degrees * Math.PI) / 180), Math.sin((degrees * Math.PI) / 180)];
  return [c, -s, 0, s, c, 0, 0, 0, 1];
}

/** A volume whose values are a linear function of world position (trilinear resampling keeps it exact). */
function ramp(dims: Vec3, spacing: Vec3, direction: Mat3, origin: Vec3): Volume<Float32Array> {
  const grid = new Volume({
    data: new Float32Array(dims[0] * dims[1] * dims[2]),
    dims,
    spacing,
    direction,
    origin,
  });
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++) grid.data[grid.offset(i, j, k)] = value(grid.voxelToWorld([i, j, k]));
  return grid;
}

function value(p: Vec3): number {
  return 100 + 2 * p[0] - p[1] + 0.5 * p[2];
}

test('parallel axes: flips and permutations are, rotations are not', () => {
  const volume = ramp([6, 5, 4], [1, 2, 3], IDENTITY3, [0, 0, 0]);
  for (const codes of ['RAS', 'LPI', 'SRA', 'ILP'])
    assert.ok(parallelAxes(IDENTITY3, reorient(volume, codes).volume.direction), codes);
  assert.ok(
    parallelAxes(
      rotationZ(20),
      reorient(ramp([6, 5, 4], [1, 1, 1], rotationZ(20), [0, 0, 0]), 'SAR').volume.direction,
    ),
  );
  assert.ok(parallelAxes(IDENTITY3, rotationZ(0.001)), 'a rotation far below a voxel is left alone');
  assert.ok(!parallelAxes(IDENTITY3, rotationZ(20)));
  assert.ok(!parallelAxes(rotationZ(10), rotationZ(-10)));
});

test('alignAxes: the volume itself when parallel, else resampled with its dims, spacing and centre kept', () => {
  const plain = ramp([6, 5, 4], [1, 2, 3], IDENTITY3, [0, 0, 0]);
  assert.equal(alignAxes(plain, reorient(plain, 'RAI').volume.direction), plain);

  // Anisotropic and rotated 30° about z: the new axes take the dims and spacing of their closest axes.
  const direction = rotationZ(30);
  const volume = ramp([20, 14, 10], [1, 1.5, 2.5], direction, [3, -4, 5]);
  volume.data[0] = -50;
  const aligned = alignAxes(volume, IDENTITY3);
  assert.deepEqual(aligned.direction, IDENTITY3);
  assert.deepEqual(aligned.dims, [20, 14, 10]);
  assert.deepEqual(aligned.spacing, [1, 1.5, 2.5]);
  const centre = (v: Volume) => v.voxelToWorld(v.dims.map((n) => (n - 1) / 2) as Vec3);
  centre(aligned).forEach((c, a) => assert.ok(Math.abs(c - centre(volume)[a]) < 1e-9));
  // Same world positions: where both voxels' neighbours lie inside the source, the ramp is reproduced.
  let checked = 0;
  for (let k = 0; k < aligned.dims[2]; k++)
    for (let j = 0; j < aligned.dims[1]; j++)
      for (let i = 0; i < aligned.dims[0]; i++) {
        const p = aligned.voxelToWorld([i, j, k]);
        const source = volume.worldToVoxel(p);
        const v = aligned.data[aligned.offset(i, j, k)];
        if (source.every((x, a) => x >= 1 && x <= volume.dims[a] - 2)) {
          assert.ok(Math.abs(v - value(p)) < 1e-3, `voxel ${i},${j},${k}: ${v} vs ${value(p)}`);
          checked++;
        } else if (!volume.containsIndex(source)) {
          assert.equal(v, -50, 'outside the source: its minimum (background)');
        }
      }
  assert.ok(checked > aligned.size / 3, `${checked} voxels checked`);

  // Onto another oblique direction: the closest axes swap, and so do dims and spacing.
  const swapped = alignAxes(volume, [0, 1, 0, 1, 0, 0, 0, 0, 1]);
  assert.deepEqual(swapped.dims, [14, 20, 10]);
  assert.deepEqual(swapped.spacing, [1.5, 1, 2.5]);
});
