/**
 * MedDIFT on oblique grids: the same anatomy resampled onto a grid rotated 20° about z and 10° about x
 * (world positions unchanged) must register to a near-zero field and match landmarks to the same world
 * points, as a flipped or permuted grid does. Neither the networks nor the descriptors are rotation
 * invariant, so this holds only when both images are seen on axes with the same world orientation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeThoraxPhantom } from '../../src/eval/phantom.ts';
import { resampleVolume } from '../../src/geometry/warp.ts';
import { multiply3, Volume, type Mat3, type Vec3 } from '../../src/geometry/volume.ts';
import { medDiftMatch, medDiftRegister } from '../../src/methods/meddift/index.ts';
import type { DisplacementField } from '../../src/geometry/field.ts';
import { tinyFixtureModel } from '../helpers/fixture-model.ts';
import { requireShared } from '../helpers/shared.ts';

/** Row-major rotation by `degrees` about world axis `axis`. */
function rotation(axis: number, degrees: number): Mat3 {
  const [c, s] = [Math.cos((degrees * Math.PI) / 180), Math.sin((degrees * Math.PI) / 180)];
  const [a, b] = [(axis + 1) % 3, (axis + 2) % 3];
  const m: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  m[a * 3 + a] = c;
  m[a * 3 + b] = -s;
  m[b * 3 + a] = s;
  m[b * 3 + b] = c;
  return m;
}

/** `image` resampled onto a grid of the same dims and spacing, rotated by `direction` about its centre. */
function rotatedCopy(image: Volume, direction: Mat3): Volume {
  const centre = image.voxelToWorld(image.dims.map((n) => (n - 1) / 2) as Vec3);
  const offset = image.dims.map((n, a) => ((n - 1) / 2) * image.spacing[a]);
  const origin = [0, 1, 2].map(
    (r) =>
      centre[r] -
      (direction[r * 3] * offset[0] + direction[r * 3 + 1] * offset[1] + direction[r * 3 + 2] * offset[2]),
  ) as Vec3;
  const grid = new Volume({
    data: new Float32Array(image.size),
    dims: image.dims,
    spacing: image.spacing,
    origin,
    direction,
  });
  return resampleVolume(image, grid, { outside: -1000 });
}

/** Mean |u| (mm) over the body (tissue and lungs) of `image` where `other` covers the same point. */
function meanBodyDisplacement(field: DisplacementField, image: Volume, other: Volume): number {
  const n = image.size;
  let sum = 0;
  let count = 0;
  for (let k = 0; k < image.dims[2]; k++)
    for (let j = 0; j < image.dims[1]; j++)
      for (let i = 0; i < image.dims[0]; i++) {
        const o = image.offset(i, j, k);
        const inside = other
          .worldToVoxel(image.voxelToWorld([i, j, k]))
          .every((x, a) => x >= 1 && x <= other.dims[a] - 2);
        if (image.data[o] < -950 || !inside) continue;
        sum += Math.hypot(field.data[o], field.data[n + o], field.data[2 * n + o]);
        count++;
      }
  return sum / count;
}

const OBLIQUE = multiply3(rotation(2, 20), rotation(0, 10));
const OTHER_OBLIQUE = multiply3(rotation(1, 12), rotation(2, -15));
const REGISTER = { maxLatticeVoxels: 16 ** 3, iterations: 20, searchRadius: 3 };

test('medDiftRegister and medDiftMatch: an oblique copy of the same anatomy gives a near-zero field and the same points', (t) => {
  const root = requireShared(t, 'fixtures');
  if (!root) return;
  const model = tinyFixtureModel(root);
  const { image, landmarks } = makeThoraxPhantom({ dims: [48, 48, 32], spacing: [7, 7, 8], seed: 2 });
  const oblique = rotatedCopy(image, OBLIQUE);
  const cases: [string, Volume, Volume][] = [
    ['axis-aligned fixed, oblique moving', image, oblique],
    ['two different obliques', rotatedCopy(image, OTHER_OBLIQUE), oblique],
  ];
  for (const [name, fixed, moving] of cases) {
    const started = performance.now();
    const { field } = medDiftRegister(model, fixed, moving, REGISTER);
    assert.ok(field.sameGrid(fixed), `${name}: field on the fixed grid`);
    const mean = meanBodyDisplacement(field, fixed, moving);
    const points = landmarks.filter(
      (p) => moving.containsIndex(moving.worldToVoxel(p)) && fixed.containsIndex(fixed.worldToVoxel(p)),
    );
    const { matches } = medDiftMatch(model, fixed, moving, points, { consistency: false });
    const errors = matches.map((m, i) => Math.hypot(...m.moving.map((x, a) => x - points[i][a])));
    const median = [...errors].sort((a, b) => a - b)[errors.length >> 1];
    console.log(
      `# ${name}: mean |u| in the body ${mean.toFixed(2)} mm; ${points.length} landmarks matched, ` +
        `median error ${median.toFixed(2)} mm (${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
    // The truth is zero. The tiny networks' random weights make even an identical pair give 2.2 mm and a
    // copy shifted by half a voxel 6.8 mm, so the bound is below one 7 mm voxel (today's code: 22–30 mm).
    assert.ok(mean < 5, `${name}: mean |u| ${mean.toFixed(2)} mm in the body, expected < 5 mm`);
    // Identical pair: median 2.9 mm; today's code: 25 mm.
    assert.ok(median < 10, `${name}: median match error ${median.toFixed(2)} mm, expected < 10 mm`);
    matches.forEach((m) => {
      const back = moving.voxelToWorld(m.movingVoxel);
      m.moving.forEach((x, a) =>
        assert.ok(Math.abs(x - back[a]) < 1e-6, `${name}: movingVoxel is in the moving image as stored`),
      );
    });
  }
});
