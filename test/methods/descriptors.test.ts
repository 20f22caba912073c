/**
 * The descriptors matching and registration run on (MIND-SSC and patches themselves:
 * test/engine/descriptors.test.ts): thick-slice dilations, the fused descriptor's levels and group
 * weights, one-line errors for bad options.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, dispose } from '../../src/engine/index.ts';
import { Volume } from '../../src/geometry/volume.ts';
import { axisDilation, descriptorFeatures } from '../../src/methods/descriptors/index.ts';
import {
  AUTO_DESCRIPTORS,
  concreteDescriptor,
  describeImage,
  FUSED_WEIGHTS,
  medDiftMatch,
  usesDiffusionModel,
} from '../../src/methods/meddift/index.ts';
import { methodEntry } from '../../src/methods/method.ts';
import { tinyFixtureModel } from '../helpers/fixture-model.ts';
import { requireShared } from '../helpers/shared.ts';

test('thick slices: neighbour distances in mm, none across 10-mm slices', () => {
  assert.deepEqual(axisDilation([1.4, 1.4, 10], 2), [2, 2, 0]);
  assert.deepEqual(axisDilation([1, 1, 1], 2), [2, 2, 2]);
  assert.deepEqual(axisDilation([0.7, 0.7, 1.4], 2), [2, 2, 1]);
  assert.deepEqual(axisDilation([0.7, 0.7, 2.5], 1), [1, 1, 0]);
});

test('descriptorFeatures: one level on the RAS grid, downsampled on request; bad options in one line', () => {
  const volume = new Volume({
    data: Float32Array.from({ length: 16 * 16 * 12 }, (_, i) => i % 16),
    dims: [16, 16, 12],
  });
  const full = descriptorFeatures(volume, 'mind', { modality: 'mr' });
  assert.deepEqual(full.grid.levels[0].shape, [12, 16, 16, 12]);
  const half = descriptorFeatures(volume, 'patches', { modality: 'mr', downsample: 2 });
  assert.deepEqual(half.grid.levels[0].shape, [27, 8, 8, 6]);
  assert.deepEqual(half.grid.shape, [16, 16, 12], 'positions still map to the full grid');
  dispose([...full.grid.levels, ...half.grid.levels]);
  assert.throws(() => descriptorFeatures(volume, 'patches', { downsample: 0 }), {
    message: /^downsample: expected an integer in \[1, 16\], got 0$/,
  });
  assert.throws(() => descriptorFeatures(volume, 'sift' as never), {
    message: /^descriptor: expected one of mind, patches, got "sift"$/,
  });
});

/** A volume of scrambled intensities in [0, 100] (a multiplicative hash of the voxel index). */
const scrambled = (dims: [number, number, number], spacing: [number, number, number]) =>
  new Volume({
    data: Float32Array.from({ length: dims[0] * dims[1] * dims[2] }, (_, i) => (i * 7919) % 101),
    dims,
    spacing,
  });

test('the fused descriptor: the diffusion levels, then MIND-SSC and patches, weighted by group', (t) => {
  const root = requireShared(t, 'fixtures');
  if (!root) return;
  const model = tinyFixtureModel(root);
  const volume = scrambled([24, 24, 16], [4, 4, 5]);
  const options = { modality: 'ct' as const, generator: new Generator(0) };
  const diffusion = describeImage('diffusion', model, volume, options, 'image');
  const fused = describeImage('fused', model, volume, { ...options, generator: new Generator(0) }, 'image');
  const n = diffusion.grid.levels.length;
  assert.equal(fused.grid.levels.length, n + 2);
  assert.deepEqual(
    fused.grid.levels.map((l) => l.shape[0]),
    [...diffusion.grid.levels.map((l) => l.shape[0]), 12, 27],
  );
  assert.deepEqual(fused.grid.shape, diffusion.grid.shape);
  assert.deepEqual(fused.grid.weights, [
    ...new Array(n).fill(FUSED_WEIGHTS.diffusion / n),
    FUSED_WEIGHTS.mind,
    FUSED_WEIGHTS.patches,
  ]);
  // The same generator seed: the diffusion levels are those of the diffusion descriptor.
  const same = diffusion.grid.levels.every((l, i) => l.sub(fused.grid.levels[i]).abs().max().item() === 0);
  assert.ok(same, 'diffusion levels reproduced');
  dispose([...diffusion.grid.levels, ...fused.grid.levels]);
  assert.throws(
    () => medDiftMatch(model, volume, volume, [[10, 10, 10]], { descriptor: 'fused', levelWeights: [1] }),
    {
      message: /^levelWeights: only with the diffusion descriptor$/,
    },
  );
});

test("the classical descriptor: MIND-SSC and patches, each weighted as in 'fused', with no model", () => {
  const volume = scrambled([20, 18, 12], [1, 1, 2]);
  const options = { modality: 'mr' as const, generator: new Generator(0) };
  const classical = describeImage('classical', undefined, volume, options, 'image');
  const alone = (['mind', 'patches'] as const).map((kind) =>
    describeImage(kind, undefined, volume, options, 'image'),
  );
  assert.deepEqual(classical.grid.weights, [FUSED_WEIGHTS.mind, FUSED_WEIGHTS.patches]);
  assert.deepEqual(
    classical.grid.levels.map((l) => l.shape),
    [
      [12, 20, 18, 12],
      [27, 20, 18, 12],
    ],
  );
  assert.deepEqual(classical.grid.shape, [20, 18, 12]);
  const same = alone.every((a, i) => a.grid.levels[0].sub(classical.grid.levels[i]).abs().max().item() === 0);
  assert.ok(same, 'each level is its descriptor alone');
  dispose([...classical.grid.levels, ...alone.flatMap((a) => a.grid.levels)]);
  assert.equal(usesDiffusionModel('classical'), false);
  assert.equal(methodEntry('classical-register').usesModel, false);
});

test("'auto': the fixed image's modality picks the descriptor; a CT pair never loads the diffusion model", async () => {
  const volume = (air: boolean) =>
    new Volume({
      data: Float32Array.from({ length: 20 * 20 * 12 }, (_, i) =>
        air && i % 3 === 0 ? -1000 : (i * 37) % 200,
      ),
      dims: [20, 20, 12],
      spacing: [4, 4, 4],
    });
  const [ct, mr] = [volume(true), volume(false)];
  // Air (below −500 at the first percentile) makes it CT; explicit modalities win over the guess.
  assert.equal(concreteDescriptor('auto', ct), AUTO_DESCRIPTORS.ct);
  assert.equal(concreteDescriptor('auto', mr), AUTO_DESCRIPTORS.mr);
  assert.equal(concreteDescriptor('auto', ct, 'mr'), AUTO_DESCRIPTORS.mr);
  assert.equal(concreteDescriptor('patches', ct), 'patches');
  assert.deepEqual(AUTO_DESCRIPTORS, { mr: 'fused', ct: 'mind' });
  let loads = 0;
  const method = methodEntry('default-register').create({
    dataset: 'test',
    settings: { iterations: 2, maxLatticeVoxels: 4096, affine: false },
    model: () => {
      loads++;
      throw new Error('the diffusion model was loaded');
    },
  });
  const result = await method.register({ id: 'ct', fixed: ct, moving: ct, modality: 'ct' });
  assert.equal(loads, 0);
  assert.deepEqual(result.field?.dims, ct.dims);
  // A diffusion-feature setting the resolved descriptor would ignore is refused in one line.
  const withTimestep = methodEntry('default-register').create({
    dataset: 'test',
    settings: { timestep: 5 },
    model: () => {
      throw new Error('the diffusion model was loaded');
    },
  });
  await assert.rejects(() => withTimestep.register({ id: 'ct', fixed: ct, moving: ct, modality: 'ct' }), {
    message: /^timestep: only with the diffusion model's features; the descriptor of this pair is mind$/,
  });
});
