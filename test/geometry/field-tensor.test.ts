/**
 * Tensors ↔ volumes and fields on working grids: layout round trip, grid positions, lattice placement
 * against interpolation with align_corners = false, and world vectors through direction and spacing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, Generator, randn, tidy } from '../../src/engine/index.ts';
import {
  fieldFromFunction,
  fieldToTensor,
  gridPositions,
  latticeOver,
  tensorToField,
  tensorToVoxels,
  volumeToTensor,
  Volume,
  type Mat3,
} from '../../src/geometry/index.ts';
import { assertClose } from '../helpers/tensors.ts';

// 90° about z: voxel axis 0 runs along world +y, axis 1 along world −x.
const direction: Mat3 = [0, -1, 0, 1, 0, 0, 0, 0, 1];
const fixed = new Volume({
  data: Float32Array.from({ length: 4 * 3 * 2 }, (_, i) => i),
  dims: [4, 3, 2],
  spacing: [2, 3, 4],
  origin: [5, -7, 11],
  direction,
});

test('volumeToTensor puts voxel (i, j, k) at tensor [c, i, j, k]; tensorToVoxels undoes it', () => {
  const t = volumeToTensor(fixed);
  assert.deepEqual(t.shape, [1, 4, 3, 2]);
  // Voxel (3, 2, 1) is planar index 3 + 4·2 + 12·1 = 23.
  assert.equal(t.select(0, 0).select(0, 3).select(0, 2).select(0, 1).item(), 23);
  assert.deepEqual([...tensorToVoxels(t)], [...fixed.data]);
});

test('gridPositions: a grid in its own voxels is the identity; in a shifted copy it is offset', () => {
  const p = gridPositions(fixed, fixed);
  assert.deepEqual(
    [...(p.select(0, 0).select(1, 1).select(1, 0).toTypedArray() as Float32Array)].map(Math.round),
    [0, 1, 2, 3],
  );
  // The same grid moved by one voxel along its axis 1 (3 mm along world −x): positions are 1 voxel lower.
  const shifted = new Volume({ ...fixed, origin: [5 - 3, -7, 11] });
  const q = gridPositions(fixed, shifted);
  assert.ok(Math.abs(q.select(0, 1).select(0, 0).select(0, 0).select(0, 0).item() - -1) < 1e-5);
});

test('tensorToField on a lattice over the grid equals trilinear interpolation (align_corners false) mapped to world mm', () => {
  const lattice: [number, number, number] = [2, 2, 1];
  const u = randn([3, ...lattice], { generator: new Generator(2) });
  const field = tensorToField(u, latticeOver(fixed, lattice), fixed);
  assert.deepEqual(field.dims, fixed.dims);
  tidy(() => {
    const up = F.interpolate(u.unsqueeze(0), {
      size: [...fixed.dims],
      mode: 'trilinear',
      alignCorners: false,
    }).squeeze(0);
    // Lattice voxels → fixed voxels (n/l), then world = direction · diag(spacing) · voxels.
    const v = [0, 1, 2].map((a) =>
      up
        .select(0, a)
        .mul(fixed.dims[a] / lattice[a])
        .mul(fixed.spacing[a]),
    );
    // Axis 0 runs along +y, axis 1 along −x: world x = −v1, y = v0, z = v2.
    const world = [v[1].neg(), v[0], v[2]];
    const got = volumeToTensor(field);
    for (let c = 0; c < 3; c++) assertClose(got.select(0, c), world[c], `component ${c}`, 1e-5);
  });
});

test('fieldToTensor maps world mm into the grid voxels through direction and spacing, and inverts tensorToField', () => {
  // A constant world displacement (3, −6, 8) mm: along axis 0 (+y, 2 mm) −3 voxels, along axis 1
  // (−x, 3 mm) −1 voxel, along axis 2 (+z, 4 mm) 2 voxels.
  const field = fieldFromFunction(fixed, () => [3, -6, 8]);
  const t = fieldToTensor(field, fixed);
  assert.deepEqual(t.shape, [3, 4, 3, 2]);
  [-3, -1, 2].forEach((expected, c) =>
    assert.ok(Math.abs(t.select(0, c).mean().item() - expected) < 1e-5, `component ${c}`),
  );
  // Round trip on the field's own grid.
  const u = randn([3, ...fixed.dims], { generator: new Generator(5) });
  assertClose(fieldToTensor(tensorToField(u, fixed, fixed), fixed), u, 'round trip', 1e-4);
});
