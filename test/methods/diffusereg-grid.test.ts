/**
 * DiffuseReg's network grid: placement over the fixed image's field of view, images resampled through
 * world coordinates (the same content on an axis-aligned and on a permuted, oblique grid gives the same
 * tensor), labels kept by nearest neighbour, and a network displacement back to world mm on the fixed grid.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { full, stack, tidy } from '../../src/engine/index.ts';
import { Volume, type Mat3, type Vec3 } from '../../src/geometry/index.ts';
import {
  fieldOnFixed,
  imageOnGrid,
  labelsOnGrid,
  networkGrid,
  NETWORK_DIMS,
  NETWORK_SPACING,
} from '../../src/methods/diffusereg/grid.ts';

// 30° about z, as an oblique short-axis stack might be.
const c = Math.cos(Math.PI / 6);
const s = Math.sin(Math.PI / 6);
const oblique: Mat3 = [c, -s, 0, s, c, 0, 0, 0, 1];

/** A volume whose intensity at each voxel is f(world position). */
function sampled(dims: Vec3, spacing: Vec3, origin: Vec3, direction: Mat3, f: (p: Vec3) => number): Volume {
  const grid = new Volume({
    data: new Float32Array(dims[0] * dims[1] * dims[2]),
    dims,
    spacing,
    origin,
    direction,
  });
  for (let k = 0, t = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, t++) grid.data[t] = f(grid.voxelToWorld([i, j, k]));
  return grid;
}

test('networkGrid: 64×64×16 at 3×3×10 mm in the fixed direction, centred on the fixed field of view', () => {
  const fixed = sampled([50, 40, 9], [1.5, 1.5, 8], [-30, 20, -40], oblique, () => 0);
  const grid = networkGrid(fixed);
  assert.deepEqual(grid.dims, NETWORK_DIMS);
  assert.deepEqual(grid.spacing, NETWORK_SPACING);
  assert.deepEqual(grid.direction, oblique);
  const centre = grid.voxelToWorld([31.5, 31.5, 7.5]);
  const expected = fixed.voxelToWorld([24.5, 19.5, 4]);
  centre.forEach((v, a) => assert.ok(Math.abs(v - expected[a]) < 1e-9, `axis ${a}: ${v} vs ${expected[a]}`));
});

test('imageOnGrid: the same content on two differently gridded volumes gives the same tensor', () => {
  // Intensity linear in world position: trilinear resampling reproduces it exactly inside both images.
  const f = (p: Vec3) => 100 + p[0] + 0.5 * p[1] + 2 * p[2];
  const fixed = sampled([100, 100, 12], [2.5, 2.5, 15], [-120, -130, -90], [1, 0, 0, 0, 1, 0, 0, 0, 1], f);
  const grid = networkGrid(fixed);
  // The moving image: axes permuted (j runs along world x, i along world y) and finer.
  const moving = sampled([140, 140, 40], [2, 2, 5], [-140, -140, -100], [0, 1, 0, 1, 0, 0, 0, 0, 1], f);
  tidy(() => {
    const a = imageOnGrid(fixed, grid, 'ct');
    const b = imageOnGrid(moving, grid, 'ct');
    assert.deepEqual(a.shape, [1, 1, ...NETWORK_DIMS]);
    // CT window [−1000, 1000] → [0, 1]: voxel (10, 20, 5) lies at world w, intensity (f(w) + 1000)/2000.
    const w = grid.voxelToWorld([10, 20, 5]);
    const at = (t: typeof a) => t.select(2, 10).select(2, 20).select(2, 5).item();
    assert.ok(Math.abs(at(a) - (f(w) + 1000) / 2000) < 1e-5);
    assert.ok(Math.abs(at(b) - at(a)) < 1e-5);
    // The network grid lies inside both images: they agree everywhere.
    assert.ok(a.sub(b).abs().max().item() < 1e-5);
  });
});

test('labelsOnGrid keeps label values; fieldOnFixed maps network voxels to world mm on the fixed grid', () => {
  const fixed = sampled([30, 20, 6], [4, 4, 12], [10, -5, 3], oblique, (p) => (p[2] > 30 ? 3 : 1));
  const grid = networkGrid(fixed);
  tidy(() => {
    const labels = labelsOnGrid(fixed, grid);
    const values = new Set(labels.toTypedArray() as Float32Array);
    assert.deepEqual([...values].sort(), [0, 1, 3]);
    // Constant (1, 0, 0.5) network voxels = 3 mm along grid axis 0 and 5 mm along axis 2.
    const u = stack([full([64, 64, 16], 1), full([64, 64, 16], 0), full([64, 64, 16], 0.5)], 0).unsqueeze(0);
    const field = fieldOnFixed(u, grid, fixed);
    assert.deepEqual(field.dims, fixed.dims);
    const expected = [0, 1, 2].map((r) => oblique[r * 3] * 3 + oblique[r * 3 + 2] * 5);
    for (const t of [0, 777, fixed.size - 1])
      expected.forEach((e, comp) => assert.ok(Math.abs(field.data[comp * fixed.size + t] - e) < 1e-5));
    assert.throws(() => fieldOnFixed(u.squeeze(0), grid, fixed), /network displacement: expected \(1, 3/);
  });
});
