/**
 * medDiftMatch on Volumes, end to end with the tiny fixture networks (random weights, so accuracy is
 * not asserted here; the default model's accuracy is tested with the model): geometry of the answers,
 * the local search window, confidence bounds, reorientation, and every option's validation message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeThoraxPhantom } from '../../src/eval/phantom.ts';
import { makeSyntheticPair } from '../../src/geometry/synthetic.ts';
import { Volume, type Vec3 } from '../../src/geometry/volume.ts';
import { reorient } from '../../src/geometry/orient.ts';
import { loadMaisiUNet } from '../../src/models/index.ts';
import { medDiftMatch, medDiftRegister } from '../../src/methods/meddift/index.ts';
import { warpPoints } from '../../src/geometry/warp.ts';
import { toNetworkInput } from '../../src/models/index.ts';
import { tinyFixtureModel } from '../helpers/fixture-model.ts';
import { requireShared } from '../helpers/shared.ts';

test('network input: RAS axis order and intensity windows', () => {
  // An LPS-ordered 3×2×2 CT volume: reoriented to RAS, axis 0 and 1 flip.
  const data = Int16Array.from([-1000, 0, 1000, 2000, -2000, 500, 0, 0, 0, 0, 0, 0]);
  const ct = new Volume({ data, dims: [3, 2, 2], spacing: [1, 2, 3] });
  const input = toNetworkInput(ct, 'ct');
  assert.deepEqual(input.image.shape, [1, 1, 3, 2, 2]);
  // RAS voxel (0,0,0) is LPS voxel (2,1,0): value 500 → (500 + 1000) / 2000.
  assert.equal(input.image.toTypedArray()[0], 0.75);
  // World positions are kept: RAS voxel (2,1,1) is LPS voxel (0,0,1).
  assert.deepEqual(input.grid.voxelToWorld([2, 1, 1]), ct.voxelToWorld([0, 0, 1]));
  assert.equal(reorient(ct, 'RAS').volume.data[0], 500);
  const mr = new Volume({ data: Float32Array.from({ length: 1000 }, (_, i) => i), dims: [10, 10, 10] });
  const v = toNetworkInput(mr, 'auto');
  assert.equal(v.modality, 'mr');
  const values = v.image.toTypedArray() as Float32Array;
  assert.ok(Math.min(...values) === 0 && Math.max(...values) === 1);
});

/** A thorax phantom and a smooth synthetic deformation of it with six landmarks. */
function phantomPair(dims: Vec3, spacing: Vec3) {
  const { image } = makeThoraxPhantom({ dims, spacing, seed: 3 });
  const pair = makeSyntheticPair(image, { seed: 5, amplitude: 8, lengthScale: 60, pointCount: 6 });
  return { image, pair, fixedPoints: pair.fixedPoints as Vec3[] };
}

test('medDiftMatch end to end on a synthetic pair: world/voxel answers, windows, confidence', (t) => {
  const root = requireShared(t, 'fixtures');
  if (!root) return;
  const model = tinyFixtureModel(root);
  const { image, pair, fixedPoints } = phantomPair([48, 48, 40], [6, 6, 7]);
  const global = medDiftMatch(model, image, pair.moving, fixedPoints, {
    search: 'global',
    consistency: true,
  });
  assert.equal(global.matches.length, 6);
  assert.equal(global.modality.fixed, 'ct');
  for (const m of global.matches) {
    const back = pair.moving.voxelToWorld(m.movingVoxel);
    m.moving.forEach((x, a) => assert.ok(Math.abs(x - back[a]) < 1e-6, 'movingVoxel and moving agree'));
    m.movingVoxel.forEach((x, a) => assert.ok(x >= 0 && x <= pair.moving.dims[a] - 1));
    assert.ok(m.similarity <= 1 + 1e-5 && m.similarity >= m.secondPeak);
    assert.ok(m.confidence >= 0 && m.confidence <= 1);
    assert.ok(Number.isFinite(m.backErrorMm));
  }
  const radiusMm = 10;
  const local = medDiftMatch(model, image, pair.moving, fixedPoints, {
    search: 'local',
    radiusMm,
    consistency: false,
    subvoxel: false,
  });
  local.matches.forEach((m, i) => {
    const d = Math.hypot(...m.moving.map((x, a) => x - fixedPoints[i][a]));
    assert.ok(d <= radiusMm + 1e-6, `match ${i} at ${d.toFixed(2)} mm is outside the ${radiusMm} mm window`);
    assert.ok(Number.isNaN(m.backErrorMm));
  });
});

test('medDiftMatch (search "registered", the default) answers with the registration of the same features, scored around it', (t) => {
  const root = requireShared(t, 'fixtures');
  if (!root) return;
  const model = tinyFixtureModel(root);
  const { image, pair, fixedPoints } = phantomPair([32, 32, 24], [9, 9, 11]);
  // The diffusion descriptor, as medDiftRegister's (the default descriptor of this CT phantom is MIND-SSC).
  const { matches, seconds } = medDiftMatch(model, image, pair.moving, fixedPoints, {
    consistency: false,
    descriptor: 'diffusion',
  });
  assert.ok(seconds.registration > 0);
  // The same features and seed give the same field: the matches are its positions p + u(p).
  const { field } = medDiftRegister(model, image, pair.moving);
  const registered = warpPoints(fixedPoints, field);
  matches.forEach((m, i) => {
    const d = Math.hypot(...m.moving.map((x, a) => x - registered[i][a]));
    assert.ok(d < 1e-6, `match ${i}: ${d} mm from its registered position`);
    const back = pair.moving.voxelToWorld(m.movingVoxel);
    m.moving.forEach((x, a) => assert.ok(Math.abs(x - back[a]) < 1e-6, 'movingVoxel and moving agree'));
    assert.ok(Number.isFinite(m.similarity) && m.confidence >= 0 && m.confidence <= 1);
  });
});

test('medDiftMatch rejects bad options with one-line messages', (t) => {
  const root = requireShared(t, 'fixtures');
  if (!root) return;
  const model = tinyFixtureModel(root);
  const image = new Volume({ data: new Float32Array(32 * 32 * 32), dims: [32, 32, 32] });
  const p: Vec3[] = [[10, 10, 10]];
  const cases: [object, RegExp][] = [
    [{ timestep: 1000 }, /^timestep: expected an integer in \[0, 999\], got 1000$/],
    [{ timestep: -1 }, /^timestep: expected an integer in \[0, 999\], got -1$/],
    [{ levels: [0, 4] }, /^level: expected an integer in \[0, 3\], got 4$/],
    [{ levels: [] }, /^levels: expected at least one level$/],
    [{ search: 'local', radiusMm: 0 }, /^radiusMm: expected a finite number > 0, got 0$/],
    [{ search: 'local', radiusMm: -5 }, /^radiusMm: expected a finite number > 0, got -5$/],
    [{ search: 'nearby' }, /^search: expected one of registered, local, global, got "nearby"$/],
    [{ search: 'global', radiusMm: 5 }, /^radiusMm: only with search "local" or "registered"$/],
    [
      { initial: { kind: 'identity' } },
      /^initial: only with search "local" \(search "registered" registers first\)$/,
    ],
    [{ levelWeights: [1, 1] }, /^levelWeights: only with the diffusion descriptor$/],
    [
      { descriptor: 'diffusion', levelWeights: [1, 1] },
      /^levelWeights: expected 4 weights \(one per level\), got 2$/,
    ],
    [{ noiseDraws: 0 }, /^noiseDraws: expected an integer in \[1, 64\], got 0$/],
  ];
  for (const [options, message] of cases)
    assert.throws(() => medDiftMatch(model, image, image, p, options), { message });
  assert.throws(() => medDiftMatch(model, image, image, [[500, 0, 0]]), {
    message: /^fixed points: point 0 at \(500.0, 0.0, 0.0\) mm lies outside the image$/,
  });
  assert.throws(() => loadMaisiUNet('/nonexistent/unet.pt'), {
    message: /^\/nonexistent\/unet.pt: checkpoint file not found$/,
  });
});
