/**
 * The intensity refinement (methods/dense/refine.ts) on analytic cases: moving a displacement between
 * lattices over one field of view, and recovering a known translation of a smooth image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, tidy } from '../../src/engine/index.ts';
import { displacementOnLattice, refineDisplacement } from '../../src/methods/dense/refine.ts';

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
  assert.throws(
    () => refineDisplacement(fixed, fixed, undefined, { learningRate: 0 }),
    /learningRate: expected a finite number > 0, got 0/,
  );
  assert.throws(
    () => refineDisplacement(fixed, blobs([16, 16, 4]), undefined),
    /refine images: expected two \(1, 1, W, H, D\) tensors of one shape/,
  );
});
