/**
 * The whole MedDIFT feature and matching path against the authors' reference (run with MONAI on the
 * tiny fixture networks): every stage from its stored input, then the chain end to end. Matches must be
 * identical (the fixture keeps only keypoints with a top-1/top-2 margin above 1.6e-4), similarities
 * within 1e-5.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { noGrad, tidy, type Tensor } from '../../src/engine/index.ts';
import {
  descriptorsAt,
  featureLevelsForDraw,
  matchDescriptors,
  perLevelCosines,
  resizeForEncoder,
  similarityMaps,
  type FeatureGrid,
} from '../../src/methods/meddift/index.ts';
import { levelArray, sampleLevel } from '../../src/methods/meddift/sampling.ts';
import { tinyFixtureModel } from '../helpers/fixture-model.ts';
import { networkGridSize } from '../../src/models/index.ts';
import { requireShared } from '../helpers/shared.ts';
import { assertBitExact, assertClose, get, loadTensors } from '../helpers/tensors.ts';

const LEVELS = [0, 1, 2, 3];
const SPACING: [number, number, number] = [0.6835, 0.6835, 1.25];
const SHAPE: [number, number, number] = [64, 64, 64];

/** Compares a JS array with a reference tensor: max |a − b| ≤ atol. */
function assertValuesClose(actual: ArrayLike<number>, expected: Tensor, name: string, atol: number): void {
  const theirs = expected.toTypedArray() as Float32Array;
  assert.equal(actual.length, theirs.length, `${name}: length`);
  let worst = 0;
  for (let i = 0; i < theirs.length; i++) worst = Math.max(worst, Math.abs(actual[i] - theirs[i]));
  assert.ok(worst <= atol, `${name}: max abs error ${worst.toExponential(3)} > ${atol}`);
}

test('MedDIFT encoder input size: 128·max(round(n/128), 1), half to even', () => {
  assert.deepEqual(
    [64, 100, 192, 320, 448, 141, 40].map(networkGridSize),
    [128, 128, 256, 256, 512, 128, 128],
  );
});

test('MedDIFT feature path reproduces the reference stage by stage and end to end', (t) => {
  const root = requireShared(t, 'fixtures');
  if (!root) return;
  const ref = loadTensors(join(root, 'meddift-tiny', 'meddift_tiny.safetensors'));
  const model = tinyFixtureModel(root);
  const flat = Array.from(get(ref, 'fixed_keypoints').toTypedArray() as BigInt64Array, Number);
  const points = Array.from({ length: flat.length / 3 }, (_, i) => flat.slice(i * 3, i * 3 + 3));
  const expectedMatches = Array.from(get(ref, 'matches').toTypedArray() as BigInt64Array, Number);

  const ours: Record<string, Tensor[]> = {};
  noGrad(() => {
    for (const img of ['fixed', 'moving']) {
      ours[img] = tidy(() => {
        const resized = resizeForEncoder(get(ref, `${img}_image`));
        const r = resized.squeeze(0).squeeze(0);
        for (const k of [0, 63, 127])
          assertClose(r.select(0, k), get(ref, `${img}_resized_w${k}`), `${img} resized w${k}`, 1e-6);
        assertClose(r.select(1, 64), get(ref, `${img}_resized_h64`), `${img} resized h64`, 1e-6);
        assertClose(r.select(2, 64), get(ref, `${img}_resized_d64`), `${img} resized d64`, 1e-6);
        const distribution = model.autoencoder.encode(resized);
        assertClose(distribution.mu, get(ref, `${img}_z_mu`), `${img} z_mu`);
        assertClose(distribution.sigma, get(ref, `${img}_z_sigma`), `${img} z_sigma`);
        // Each stage from its stored input: the latent and noise steps are bit for bit.
        const latent = model.sampleLatent(
          { mu: get(ref, `${img}_z_mu`), sigma: get(ref, `${img}_z_sigma`) },
          get(ref, `${img}_eps_vae`),
        );
        assertBitExact(latent, get(ref, `${img}_latent`), `${img} latent`);
        const noisy = model.scheduler.addNoise(get(ref, `${img}_latent`), get(ref, `${img}_noise`), 20);
        assertBitExact(noisy, get(ref, `${img}_noisy_latent`), `${img} noisy latent`);
        const levels = model.decoderTaps(get(ref, `${img}_noisy_latent`), 20, { spacingMm: SPACING }, LEVELS);
        levels.forEach((l, i) =>
          assertClose(l.unsqueeze(0), get(ref, `${img}_up_block_${i}`), `${img} up_block_${i}`),
        );
        // The chain from our own encoding, with the reference's random draws.
        const chained = featureLevelsForDraw(
          model,
          distribution,
          SPACING,
          { eps: get(ref, `${img}_eps_vae`), noise: get(ref, `${img}_noise`) },
          { timestep: 20, levels: LEVELS },
        );
        chained.forEach((l, i) =>
          assertClose(l.unsqueeze(0), get(ref, `${img}_up_block_${i}`), `${img} chained up_block_${i}`),
        );
        return chained;
      });
    }
  });

  const stored = (img: string): FeatureGrid => ({
    levels: LEVELS.map((l) => get(ref, `${img}_up_block_${l}`).squeeze(0)),
    shape: SHAPE,
    spacing: SPACING,
  });
  const fixed = stored('fixed');
  const moving = stored('moving');
  for (const l of LEVELS) {
    const rows = sampleLevel(levelArray(fixed.levels[l]), SHAPE, points);
    assertValuesClose(rows, get(ref, `src_feat_level${l}`), `src_feat_level${l}`, 2e-5);
    // Every voxel of one slab, each row of channels laid out as the reference's (C, 64, 64) slab.
    const slab: number[][] = [];
    for (let h = 0; h < SHAPE[1]; h++) for (let d = 0; d < SHAPE[2]; d++) slab.push([31, h, d]);
    const values = sampleLevel(levelArray(moving.levels[l]), SHAPE, slab);
    const c = moving.levels[l].shape[0];
    const planar = Float32Array.from(
      { length: values.length },
      (_, i) => values[(i % slab.length) * c + Math.floor(i / slab.length)],
    );
    assertValuesClose(planar, get(ref, `moving_upsampled_level${l}_w31`), `moving level ${l} slab w31`, 1e-5);
  }

  const query = descriptorsAt(fixed, points);
  assertClose(query.mul(4), get(ref, 'src_descriptor'), 'source descriptors', 1e-5);
  // Small slabs, so the scan crosses many slab boundaries.
  const raw = matchDescriptors(query, moving, { slabVoxels: 3 * 64 * 64 });
  assert.deepEqual(Array.from(raw.voxels), expectedMatches);
  assertValuesClose(raw.best, get(ref, 'max_similarity'), 'max_similarity', 1e-5);
  assertValuesClose(raw.secondBest, get(ref, 'second_best_similarity'), 'second_best_similarity', 1e-5);
  const matched = points.map((_, i) => expectedMatches.slice(i * 3, i * 3 + 3));
  const cosines = perLevelCosines(fixed, points, moving, matched);
  assertValuesClose(
    points.flatMap((_, i) => cosines.map((c) => c[i])),
    get(ref, 'per_level_cosine_at_match'),
    'per-level cosines',
    1e-5,
  );
  assertValuesClose(
    similarityMaps(query.narrow(0, 0, 1), moving)[0],
    get(ref, 'similarity_map_kp0'),
    'similarity map of keypoint 0',
    1e-5,
  );

  // End to end from the images, with our own encoder and U-Net outputs: the same matches.
  const grid = (img: string): FeatureGrid => ({ levels: ours[img], shape: SHAPE, spacing: SPACING });
  const e2e = matchDescriptors(descriptorsAt(grid('fixed'), points), grid('moving'));
  assert.deepEqual(Array.from(e2e.voxels), expectedMatches);
});
