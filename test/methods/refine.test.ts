/**
 * The intensity refinement (methods/dense/refine.ts) on analytic cases: moving a displacement between
 * lattices over one field of view, and recovering a known translation of a smooth image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, tidy } from '../../src/engine/index.ts';
import {
  displacementOnLattice,
  refineDisplacement,
  refineField,
  refinementLattice,
} from '../../src/methods/dense/refine.ts';
import { Grid, Volume } from '../../src/geometry/index.ts';

/**
 * A smooth image (1, 1, w, h, d) with structure at every place local NCC looks (on a plain ramp any
 * shift along it correlates perfectly): eight Gaussian blobs of σ 2 voxels, evaluated at voxel
 * p − shift (the image moved by +shift).
 */
function blobs(dims: number[], shift: number[] = [0, 0, 0]): Tensor {
  const [w, h, d] = dims;
  const data = new Float32Array(w * h * d);
  const centres = [0.3, 0.7].flatMap((x) =>
    [0.3, 0.7].flatMap((y) => [0.35, 0.65].map((z) => [x * w, y * h, z * d, 2])),
  );
  for (let i = 0; i < w; i++)
    for (let j = 0; j < h; j++)
      for (let k = 0; k < d; k++) {
        const p = [i - shift[0], j - shift[1], k - shift[2]];
        let v = 0;
        for (const [cx, cy, cz, s] of centres)
          v += Math.exp(-((p[0] - cx) ** 2 + (p[1] - cy) ** 2 + (p[2] - cz) ** 2) / (2 * s * s));
        data[(i * h + j) * d + k] = v;
      }
  return Tensor.fromArray(data, [1, 1, w, h, d]);
}

test('displacementOnLattice: a constant displacement keeps its length in mm on a finer lattice', () => {
  // 2 voxels of an 8-voxel lattice along x = 4 voxels of a 16-voxel one over the same extent; z is
  // unchanged (8 → 8), y halves (8 → 4).
  const u = tensor([2, 1, -3]).reshape([1, 3, 1, 1, 1]).expand([1, 3, 8, 8, 8]).contiguous();
  const v = displacementOnLattice(u, [16, 4, 8]);
  assert.deepEqual(v.shape, [1, 3, 16, 4, 8]);
  const means = [0, 1, 2].map((c) => v.select(1, c).mean().item());
  assert.deepEqual(
    means.map((m) => Number(m.toFixed(5))),
    [4, 0.5, -3],
  );
});

test('refineDisplacement recovers a known translation of a smooth image from the identity', () => {
  const dims = [32, 32, 16];
  const shift = [1.5, -1, 0.5];
  const fixed = blobs(dims);
  // moving(p) = fixed(p − shift), so warped(p) = moving(p + u) equals fixed(p) for u = shift.
  const moving = blobs(dims, shift);
  const u = refineDisplacement(fixed, moving, undefined, {
    controlDims: [4, 4, 4],
    iterations: 150,
    learningRate: 0.05,
    smoothness: 0.1,
    window: [9, 9, 9],
  });
  assert.deepEqual(u.shape, [1, 3, 32, 32, 16]);
  // Where the blobs are (the image above a tenth of its peak) the field is the shift.
  const mask = fixed.gt(0.1);
  const found = [0, 1, 2].map((c) =>
    tidy(() => u.select(1, c).unsqueeze(1).mul(mask).sum().div(mask.sum()).item()),
  );
  found.forEach((f, c) => assert.ok(Math.abs(f - shift[c]) < 0.05, `component ${c}: ${f} vs ${shift[c]}`));
});

test('refineDisplacement: 0 iterations give the initial displacement on the images lattice; bad options are one line', () => {
  const fixed = blobs([16, 16, 8]);
  const initial = tensor([1, 0, 0]).reshape([1, 3, 1, 1, 1]).expand([1, 3, 8, 8, 8]).contiguous();
  const u = refineDisplacement(fixed, fixed, initial, { iterations: 0 });
  // 1 voxel of 8 along x is 2 voxels of 16; z goes from 8 to 8.
  assert.equal(Number(u.select(1, 0).mean().item().toFixed(5)), 2);
  assert.throws(
    () => refineDisplacement(fixed, fixed, undefined, { window: [4, 9, 3] }),
    /window: expected odd numbers of voxels, got \[4,9,3\]$/,
  );
  assert.throws(() => refineDisplacement(fixed, fixed, undefined, { foldingCorners: 4 as never }), {
    message: /^foldingCorners: expected 1 or 8, got 4$/,
  });
  assert.throws(
    () => refineDisplacement(fixed, fixed, undefined, { learningRate: 0 }),
    /learningRate: expected a finite number > 0, got 0/,
  );
  assert.throws(
    () => refineDisplacement(fixed, blobs([16, 16, 4]), undefined),
    /refine images: expected two \(1, 1, W, H, D\) tensors of one shape/,
  );
});

test('refineDisplacement keeps the start at full resolution, or only its control-lattice resampling', () => {
  tidy(() => {
    const fixed = blobs([16, 16, 8]);
    // A start with detail finer than the 4 × 4 × 2 control lattice: x-displacement alternating ±0.5 voxel along x.
    const values = Array.from({ length: 16 * 16 * 8 }, (_, v) => (Math.floor(v / 128) % 2 ? 0.5 : -0.5));
    const start = tensor([...values, ...new Array<number>(2 * 16 * 16 * 8).fill(0)]).reshape([
      1, 3, 16, 16, 8,
    ]);
    const options = { iterations: 0, controlDims: [4, 4, 2] as [number, number, number] };
    const kept = refineDisplacement(fixed, fixed, start, options);
    assert.ok(kept.sub(start).abs().max().item() < 1e-6);
    const smoothed = refineDisplacement(fixed, fixed, start, { ...options, keepStart: false });
    const expected = displacementOnLattice(displacementOnLattice(start, [4, 4, 2]), [16, 16, 8]);
    assert.ok(smoothed.sub(expected).abs().max().item() < 1e-6);
    // The resampling does lose the detail (the test can tell the two apart).
    assert.ok(smoothed.sub(start).abs().max().item() > 0.2);
  });
});

test('refinementLattice: native spacing within the budget, a common coarser one beyond it; control lattice and window in mm', () => {
  // An ACDC-like stack fits the default budget at its own spacing: 12-mm control voxels (90 mm across
  // the slices: 7.5 → 8), a 13.5-mm window (9 voxels in-plane; 3 across the 10-mm slices, the least).
  const stack = refinementLattice(new Grid({ dims: [216, 256, 9], spacing: [1.5, 1.5, 10] }));
  assert.deepEqual(stack.grid.dims, [216, 256, 9]);
  assert.deepEqual(stack.controlDims, [27, 32, 8]);
  assert.deepEqual(stack.window, [9, 9, 3]);
  // 100³ voxels of 1 mm under a budget of 50³: 2-mm voxels; window 13.5/2 = 6.75 → 7 voxels.
  const cube = refinementLattice(new Grid({ dims: [100, 100, 100], spacing: [1, 1, 1] }), {
    maxVoxels: 125000,
    controlSpacing: 10,
  });
  assert.deepEqual(cube.grid.dims, [50, 50, 50]);
  assert.deepEqual(cube.grid.spacing, [2, 2, 2]);
  assert.deepEqual(cube.controlDims, [10, 10, 10]);
  assert.deepEqual(cube.window, [7, 7, 7]);
  assert.throws(() => refinementLattice(stack.grid, { controlSpacing: 0 }), /controlSpacing: expected/);
});

test('refineField: a translation in world mm of an obliquely gridded image, found from the identity', () => {
  // Axis 0 along world +y, axis 1 along −x; blobs placed in world mm; the moving image is the fixed
  // content moved by t, so the field is t wherever the blobs are.
  const t: [number, number, number] = [3, -2, 2];
  const grid = new Grid({ dims: [40, 40, 24], spacing: [2, 2, 2], direction: [0, -1, 0, 1, 0, 0, 0, 0, 1] });
  const centres = [-1, 1].flatMap((a) =>
    [-1, 1].flatMap((b) => [-1, 1].map((c) => [18 * a, 18 * b, 10 * c])),
  );
  const centre = grid.voxelToWorld([19.5, 19.5, 11.5]);
  const image = (shift: readonly number[]) => {
    const data = new Float32Array(grid.dims[0] * grid.dims[1] * grid.dims[2]);
    let n = 0;
    for (let k = 0; k < grid.dims[2]; k++)
      for (let j = 0; j < grid.dims[1]; j++)
        for (let i = 0; i < grid.dims[0]; i++) {
          const p = grid.voxelToWorld([i, j, k]).map((x, a) => x - centre[a] - shift[a]);
          data[n++] = centres.reduce(
            (v, c) => v + Math.exp(-((p[0] - c[0]) ** 2 + (p[1] - c[1]) ** 2 + (p[2] - c[2]) ** 2) / 32),
            0,
          );
        }
    return new Volume({ ...grid, data });
  };
  const fixed = image([0, 0, 0]);
  const field = refineField({ fixed, moving: image(t), modality: 'mr' }, undefined, {
    iterations: 150,
    learningRate: 0.05,
    smoothness: 0.1,
    controlSpacing: 20,
    windowMm: 18,
  });
  const n = fixed.size;
  const inside = [...fixed.data.keys()].filter((i) => fixed.data[i] > 0.1);
  const mean = [0, 1, 2].map((c) => inside.reduce((a, i) => a + field.data[c * n + i], 0) / inside.length);
  mean.forEach((m, c) => assert.ok(Math.abs(m - t[c]) < 0.05, `world component ${c}: ${m} mm vs ${t[c]}`));
});
