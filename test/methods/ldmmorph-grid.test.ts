/**
 * LDM-Morph's slice grid, checked against geometry worked out by hand: spacing from the longest side
 * of the field of view over 112 pixels, centre on the slice's field-of-view centre, the slice filling
 * the central 112 pixels; images min–max normalised and resampled (0 in the padding); a network
 * displacement back to world mm on the fixed slice, in-plane only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arange, full, stack, tidy, zeros } from '../../src/engine/index.ts';
import { multiply3, Volume, type Mat3, type Vec3 } from '../../src/geometry/index.ts';
import {
  sliceFieldOnFixed,
  sliceGrid,
  sliceImageOnGrid,
  sliceLabelsOnGrid,
} from '../../src/methods/ldmmorph/grid.ts';

/** Rotations about x and z (row-major) and their product. */
const rotation = (axis: 'x' | 'z', angle: number): Mat3 => {
  const [co, si] = [Math.cos(angle), Math.sin(angle)];
  return axis === 'z' ? [co, -si, 0, si, co, 0, 0, 0, 1] : [1, 0, 0, 0, co, -si, 0, si, co];
};
const aboutZ = rotation('z', Math.PI / 6);
/** A tilted plane: 20° about x, then 30° about z, so the slice normal is not along z. */
const tilted = multiply3(aboutZ, rotation('x', Math.PI / 9));
const column = (d: Mat3, a: number): Vec3 => [d[a], d[3 + a], d[6 + a]];
const [c, s] = [Math.cos(Math.PI / 6), Math.sin(Math.PI / 6)];

function slice(dims: [number, number], spacing: Vec3, origin: Vec3, direction: Mat3, f: (p: Vec3) => number) {
  const v = new Volume({
    data: new Float32Array(dims[0] * dims[1]),
    dims: [...dims, 1],
    spacing,
    origin,
    direction,
  });
  for (let j = 0, t = 0; j < dims[1]; j++)
    for (let i = 0; i < dims[0]; i++, t++) v.data[t] = f(v.voxelToWorld([i, j, 0]));
  return v;
}

const near = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('sliceGrid: 128² pixels of (longest field-of-view side)/112 mm, centred on the slice, in its direction', () => {
  // 100 × 1.5 = 150 mm by 80 × 2 = 160 mm: 160/112 mm pixels.
  const fixed = slice([100, 80], [1.5, 2, 8], [10, -20, 30], aboutZ, () => 0);
  const grid = sliceGrid(fixed, [128, 128]);
  assert.deepEqual(grid.dims, [128, 128, 1]);
  grid.spacing.forEach((v, a) => near(v, [160 / 112, 160 / 112, 8][a], 1e-12, `spacing ${a}`));
  assert.deepEqual(grid.direction, aboutZ);
  // The field of view's centre, voxel (49.5, 39.5, 0), by hand: origin + R·(1.5·49.5, 2·39.5, 0).
  const expected = [10 + c * 74.25 - s * 79, -20 + s * 74.25 + c * 79, 30];
  grid.voxelToWorld([63.5, 63.5, 0]).forEach((v, a) => near(v, expected[a], 1e-9, `centre ${a}`));
  // The long side spans exactly the central 112 pixels: its outer voxel edges land on 7.5 and 119.5.
  const edge = (i: number, j: number) => grid.worldToVoxel(fixed.voxelToWorld([i, j, 0]));
  near(edge(0, -0.5)[1], 7.5, 1e-9, 'first row edge');
  near(edge(0, 79.5)[1], 119.5, 1e-9, 'last row edge');
  // The short side is centred too: 150 mm = 105 pixels, from 11 to 116.
  near(edge(-0.5, 0)[0], 11, 1e-9, 'first column edge');
  near(edge(99.5, 0)[0], 116, 1e-9, 'last column edge');
  assert.throws(() => sliceGrid(new Volume({ data: new Float32Array(8), dims: [2, 2, 2] }), [128, 128]), {
    message: /^fixed slice: expected one 2-D slice \(dims \[nx, ny, 1\]\), got 2x2x2 voxels$/,
  });
});

test('sliceImageOnGrid: min–max normalised, resampled linearly, 0 in the padding; blank slices give none', () => {
  // Intensity linear in world position: interpolation reproduces it inside the slice.
  const f = (p: Vec3) => 300 + 2 * p[0] - p[1] + 0.5 * p[2];
  const fixed = slice([60, 40], [2, 2, 5], [-50, 20, 7], tilted, f);
  const grid = sliceGrid(fixed, [128, 128]);
  const corners = [
    fixed.voxelToWorld([0, 0, 0]),
    fixed.voxelToWorld([59, 0, 0]),
    fixed.voxelToWorld([0, 39, 0]),
    fixed.voxelToWorld([59, 39, 0]),
  ].map(f);
  const [lo, hi] = [Math.min(...corners), Math.max(...corners)];
  tidy(() => {
    const image = sliceImageOnGrid(fixed, grid, 'fixed')!;
    assert.deepEqual([...image.shape], [1, 1, 128, 128]);
    const at = (i: number, j: number) => image.select(2, i).select(2, j).item();
    // Pixel (64, 60) lies inside the slice at world w.
    const w = grid.voxelToWorld([64, 60, 0]);
    near(at(64, 60), (f(w) - lo) / (hi - lo), 1e-5, 'normalised intensity');
    assert.equal(at(2, 2), 0, 'padding');
    assert.ok(image.min().item() >= 0 && image.max().item() <= 1 + 1e-6);
  });
  assert.equal(
    sliceImageOnGrid(
      slice([10, 10], [1, 1, 1], [0, 0, 0], aboutZ, () => 7),
      grid,
      'x',
    ),
    undefined,
  );
  const stackOf = new Volume({ data: new Float32Array(18), dims: [3, 3, 2] });
  assert.throws(() => sliceImageOnGrid(stackOf, grid, 'moving image'), {
    message: /^moving image: expected one 2-D slice/,
  });
});

test('sliceLabelsOnGrid keeps the label values', () => {
  const labels = slice([30, 30], [3, 3, 8], [0, 0, 0], aboutZ, (p) => (p[0] > 20 ? 3 : 1));
  tidy(() => {
    const t = sliceLabelsOnGrid(labels, sliceGrid(labels, [128, 128]));
    assert.deepEqual([...t.shape], [1, 1, 128, 128]);
    assert.deepEqual([...new Set(t.toTypedArray() as Float32Array)].sort(), [0, 1, 3]);
  });
});

test('sliceFieldOnFixed: network pixels to world mm on the fixed slice, nothing through the plane', () => {
  const fixed = slice([50, 30], [1.2, 1.2, 6], [5, 5, 5], tilted, () => 0);
  const grid = sliceGrid(fixed, [64, 64]);
  const pixel = grid.spacing[0];
  near(pixel, 60 / (0.875 * 64), 1e-12, 'pixel');
  const [d0, d1, d2] = [0, 1, 2].map((a) => column(tilted, a));
  tidy(() => {
    // u = (1, −2) pixels everywhere: pixel·(d0 − 2·d1) mm.
    const constant = stack([full([64, 64], 1), full([64, 64], -2)], 0).unsqueeze(0);
    const field = sliceFieldOnFixed(constant, grid, fixed);
    assert.deepEqual(field.dims, fixed.dims);
    assert.equal(field.components, 3);
    for (const t of [0, 777, fixed.size - 1])
      [0, 1, 2].forEach((r) =>
        near(field.data[r * fixed.size + t], pixel * (d0[r] - 2 * d1[r]), 1e-5, `voxel ${t} component ${r}`),
      );
    // u0 = 0.01·(i − 31.5), linear along grid axis 0: read where each fixed voxel lies on the grid.
    const ramp = stack(
      [arange(0, 64, 1).float().sub(31.5).mul(0.01).reshape(64, 1).expand([64, 64]), zeros([64, 64])],
      0,
    ).unsqueeze(0);
    const sloped = sliceFieldOnFixed(ramp, grid, fixed);
    for (const [i, j] of [
      [0, 0],
      [17, 9],
      [49, 29],
    ]) {
      const g = grid.worldToVoxel(fixed.voxelToWorld([i, j, 0]));
      const t = i + 50 * j;
      const u = [0, 1, 2].map((r) => sloped.data[r * fixed.size + t]);
      [0, 1, 2].forEach((r) =>
        near(u[r], 0.01 * (g[0] - 31.5) * pixel * d0[r], 1e-5, `ramp at (${i}, ${j})`),
      );
      near(u[0] * d2[0] + u[1] * d2[1] + u[2] * d2[2], 0, 1e-6, 'through-plane component');
    }
    assert.throws(() => sliceFieldOnFixed(zeros([1, 3, 64, 64]), grid, fixed), {
      message: /^network displacement: expected \(1, 2, H, W\), got \[1, 3, 64, 64\]$/,
    });
  });
});
