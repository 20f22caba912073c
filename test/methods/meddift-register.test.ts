/**
 * medDiftRegister: the lattice → world-mm field conversion against a hand-computed case (reoriented,
 * anisotropic grid), joint PCA properties, and the whole pipeline with the tiny fixture networks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, dispose, randn, tensor, tidy, zeros } from '../../src/engine/index.ts';
import { makeThoraxPhantom } from '../../src/eval/phantom.ts';
import { reorient } from '../../src/geometry/orient.ts';
import { latticeOver, tensorToField } from '../../src/geometry/field-tensor.ts';
import { Volume } from '../../src/geometry/volume.ts';
import {
  checkVolumeAxes,
  latticeDims,
  medDiftMatch,
  medDiftRegister,
  pcaBasis,
  registerFeatures,
} from '../../src/methods/meddift/index.ts';
import { descriptorFeatures } from '../../src/methods/descriptors/index.ts';
import { tinyFixtureModel } from '../helpers/fixture-model.ts';
import { requireShared } from '../helpers/shared.ts';

test('lattice displacement → world-mm field on an LPS-ordered, anisotropic fixed grid', () => {
  // Fixed stored in LPS order (identity direction); its RAS view flips axes 0 and 1.
  const fixed = new Volume({
    data: new Float32Array(8 * 6 * 4),
    dims: [8, 6, 4],
    spacing: [1.5, 2, 3],
    origin: [10, -5, 7],
  });
  const ras = reorient(fixed, 'RAS').volume;
  // One lattice voxel of displacement along RAS axis 0 on a lattice of half the size: 2 fixed voxels
  // along RAS axis 0 = toward patient right = −x in LPS, 2 × 1.5 mm.
  const u = tidy(() => zeros([3, 4, 3, 2]).add(tensor([1, 0, 0]).reshape(3, 1, 1, 1)));
  const field = tensorToField(u, latticeOver(ras, [4, 3, 2]), fixed);
  assert.deepEqual(field.dims, fixed.dims);
  const n = fixed.size;
  for (let i = 0; i < n; i++) {
    assert.ok(
      Math.abs(field.data[i] + 3) < 1e-5 &&
        Math.abs(field.data[n + i]) < 1e-6 &&
        Math.abs(field.data[2 * n + i]) < 1e-6,
    );
  }
});

test('lattice size and joint PCA basis', () => {
  // One spacing for all axes: clinical CT of 0.7 × 0.7 × 2.5 mm (358.4 × 358.4 × 352.5 mm) at
  // ∛(358.4² · 352.5 / 64³) = 5.567 mm; a 10-mm slice stack (150 × 150 × 100 mm) at 2.0475 mm, its 10
  // slices sampled 49 times; an image smaller than the budget keeps its spacing.
  assert.deepEqual(latticeDims([512, 512, 141], [0.7, 0.7, 2.5], 64 ** 3), [64, 64, 63]);
  assert.deepEqual(latticeDims([100, 100, 10], [1.5, 1.5, 10], 64 ** 3), [73, 73, 49]);
  assert.deepEqual(latticeDims([40, 40, 40], [1, 1, 1], 64 ** 3), [40, 40, 40]);
  const a = randn([40, 5, 5, 5], { generator: new Generator(1) });
  const b = randn([40, 5, 5, 5], { generator: new Generator(2) });
  const { mean, basis } = pcaBasis(a.reshape(40, -1), b.reshape(40, -1), 6);
  assert.deepEqual(basis.shape, [40, 6]);
  const pa = basis.t().matmul(a.reshape(40, -1).sub(mean)).reshape(6, 5, 5, 5);
  // Principal components are uncorrelated: off-diagonal covariance ≈ 0, variances descending.
  const flat = tidy(() => {
    const x = pa.reshape(6, -1).add(0);
    const all = x.sub(x.mean(1, true));
    return all.matmul(all.t()).div(all.shape[1]).toTypedArray() as Float32Array;
  });
  for (let i = 0; i < 6; i++)
    for (let j = 0; j < 6; j++)
      if (i !== j) assert.ok(Math.abs(flat[i * 6 + j]) < 0.35 * Math.sqrt(flat[i * 7] * flat[j * 7]));
});

test('registerFeatures: a shifted copy gives its shift, with one lattice, a coarser search lattice, and the affine stage', () => {
  // moving = fixed with its origin moved by d, so moving(x) = fixed(x − d) and the pull-back field
  // warped(p) = moving(p + u(p)) = fixed(p) is u = d everywhere.
  const { image } = makeThoraxPhantom({ dims: [48, 48, 40], spacing: [4, 4, 4], seed: 3 });
  const d = [6, -4, 3];
  const moving = new Volume({
    data: image.data,
    dims: image.dims,
    spacing: image.spacing,
    origin: image.origin.map((v, a) => v + d[a]) as [number, number, number],
  });
  const f = descriptorFeatures(image, 'patches', { modality: 'ct' });
  const m = descriptorFeatures(moving, 'patches', { modality: 'ct' });
  const settings = [
    { affine: false },
    { affine: false, maxSearchLatticeVoxels: 12 ** 3 },
    { affine: true, maxSearchLatticeVoxels: 12 ** 3 },
  ];
  const medians: number[] = [];
  for (const extra of settings) {
    const { field, lattice } = registerFeatures(f, m, image, {
      maxLatticeVoxels: 24 ** 3,
      iterations: 40,
      ...extra,
    });
    // 192 × 192 × 160 mm at ∛(192² · 160 / 24³) = 7.53 mm.
    assert.deepEqual(lattice.dims, [25, 25, 21]);
    // Median error over the inner half of the image (the borders replicate, so they may lag).
    const [nx, ny, nz] = image.dims;
    const errors: number[] = [];
    for (let k = nz / 4; k < (3 * nz) / 4; k++)
      for (let j = ny / 4; j < (3 * ny) / 4; j++)
        for (let i = nx / 4; i < (3 * nx) / 4; i++) {
          const at = image.offset(i, j, k);
          errors.push(Math.hypot(...[0, 1, 2].map((c) => field.data[c * image.size + at] - d[c])));
        }
    errors.sort((a, b) => a - b);
    const median = errors[errors.length >> 1];
    medians.push(median);
    // Within a quarter of a lattice voxel (7.5 mm) of the 7.8-mm shift; measured 1.46, 1.49, 0.79 mm.
    assert.ok(median < 1.9, `${JSON.stringify(extra)}: median error ${median.toFixed(2)} mm of |d| = 7.8 mm`);
  }
  // The affine stage takes the shift as a whole, leaving the deformable stages nothing to smooth away.
  assert.ok(medians[2] < 0.7 * medians[0], `affine ${medians[2].toFixed(2)} vs ${medians[0].toFixed(2)} mm`);
  dispose([...f.grid.levels, ...m.grid.levels]);
});

test('medDiftRegister end to end with the tiny networks: field on the fixed grid, small for an identical pair', (t) => {
  const root = requireShared(t, 'fixtures');
  if (!root) return;
  const model = tinyFixtureModel(root);
  const { image } = makeThoraxPhantom({ dims: [40, 40, 32], spacing: [7, 7, 8], seed: 2 });
  const result = medDiftRegister(model, image, image, {
    maxLatticeVoxels: 20 ** 3,
    iterations: 20,
    searchRadius: 2,
  });
  assert.ok(result.field.sameGrid(image));
  assert.equal(result.field.components, 3);
  let worst = 0;
  for (const v of result.field.data) worst = Math.max(worst, Math.abs(v));
  console.log(`# identical pair: max |u| ${worst.toFixed(2)} mm (lattice ${result.lattice.dims.join('x')})`);
  assert.ok(worst < 7, 'displacements stay below one voxel for an identical pair');
});

test('medDiftRegister and medDiftMatch refuse 2-D images, single slices and thin slabs, naming the image', (t) => {
  const root = requireShared(t, 'fixtures');
  if (!root) return;
  const model = tinyFixtureModel(root);
  const volume = (dims: [number, number, number]) =>
    new Volume({ data: Float32Array.from({ length: dims[0] * dims[1] * dims[2] }, (_, i) => i % 17), dims });
  const good = volume([32, 32, 32]);
  const fewVoxels = (dims: number[]) =>
    `${dims.join('x')} voxels is not a 3-D volume: at least 4 voxels along every axis are needed`;
  const refused: [Volume, string][] = [
    [volume([32, 32, 1]), fewVoxels([32, 32, 1])],
    [volume([1, 32, 32]), fewVoxels([1, 32, 32])],
    [volume([32, 32, 3]), fewVoxels([32, 32, 3])],
    // 8 mm thick, 256 mm wide: 1/32.
    [
      volume([256, 8, 256]),
      '256x8x256 voxels is a slab, not a 3-D volume: its thinnest axis \\(8 mm\\) is less than 1/16 of its widest \\(256 mm\\)',
    ],
  ];
  for (const [flat, text] of refused) {
    const message = (subject: string) => new RegExp(`^${subject}: ${text}`);
    assert.throws(() => medDiftRegister(model, flat, good), {
      name: 'DiffregError',
      message: message('fixed image'),
    });
    assert.throws(() => medDiftRegister(model, good, flat), { message: message('moving image') });
    assert.throws(() => medDiftMatch(model, good, flat, [[10, 10, 0]]), { message: message('moving image') });
  }
  // A short-axis cardiac stack is a volume: 6 slices of 10 mm under 48 × 48 voxels of 1.5 mm.
  assert.doesNotThrow(() =>
    checkVolumeAxes(
      new Volume({ data: new Float32Array(48 * 48 * 6), dims: [48, 48, 6], spacing: [1.5, 1.5, 10] }),
      'stack',
    ),
  );
});
