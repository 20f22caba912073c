import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Random, Volume, distanceTransform, type Vec3 } from '../../src/geometry/index.ts';

function bruteForce(mask: Volume, spacing: Vec3): Float64Array {
  const [nx, ny, nz] = mask.dims;
  const features: Vec3[] = [];
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++) if (mask.data[mask.offset(i, j, k)]) features.push([i, j, k]);
  const out = new Float64Array(mask.size);
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++) {
        let best = Infinity;
        for (const [a, b, c] of features) {
          best = Math.min(best, Math.hypot((i - a) * spacing[0], (j - b) * spacing[1], (k - c) * spacing[2]));
        }
        out[mask.offset(i, j, k)] = best;
      }
  return out;
}

test('distance to one voxel is the anisotropic Euclidean distance', () => {
  const spacing: Vec3 = [0.7, 1.9, 2.5];
  const mask = new Volume({ data: new Uint8Array(6 * 5 * 4), dims: [6, 5, 4], spacing });
  mask.data[mask.offset(1, 3, 2)] = 1;
  const d = distanceTransform(mask);
  assert.ok(Math.abs(d.data[mask.offset(5, 0, 0)] - Math.hypot(4 * 0.7, 3 * 1.9, 2 * 2.5)) < 1e-5);
  assert.equal(d.data[mask.offset(1, 3, 2)], 0);
});

test('distance transform equals brute force on random sparse features', () => {
  const spacing: Vec3 = [1.2, 0.8, 2];
  const random = new Random(9);
  const mask = new Volume({
    data: new Uint8Array(13 * 11 * 9).map(() => (random.uniform() < 0.02 ? 1 : 0)),
    dims: [13, 11, 9],
    spacing,
  });
  assert.ok(mask.data.some((v) => v === 1));
  const expected = bruteForce(mask, spacing);
  distanceTransform(mask).data.forEach((d, t) =>
    assert.ok(Math.abs(d - expected[t]) < 1e-4, `voxel ${t}: ${d} vs ${expected[t]}`),
  );
});

test('an empty mask gives Infinity everywhere', () => {
  const mask = new Volume({ data: new Uint8Array(4 * 3 * 2), dims: [4, 3, 2] });
  assert.ok(distanceTransform(mask).data.every((d) => d === Infinity));
});
