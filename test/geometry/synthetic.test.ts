import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Random,
  Volume,
  breathingField,
  composeFields,
  displacementNorms,
  makeBreathingPair,
  makeSyntheticPair,
  randomDiffeomorphicField,
  type Vec3,
} from '../../src/geometry/index.ts';
import { DiffregError } from '../../src/util/errors.ts';

// a 64×56×40 grid at 2 × 2.5 × 3 mm (128 × 140 × 120 mm), slightly rotated about z
const [c, s] = [Math.cos(0.1), Math.sin(0.1)];
const grid = new Volume({
  data: new Float32Array(64 * 56 * 40),
  dims: [64, 56, 40],
  spacing: [2, 2.5, 3],
  origin: [-60, -70, -50],
  direction: [c, -s, 0, s, c, 0, 0, 0, 1],
});

test('Random: mulberry32 and Box–Muller match an independent implementation', () => {
  // reference values from a Python transcription of mulberry32 (32-bit arithmetic by masking)
  const r = new Random(42);
  assert.deepEqual(
    [r.uint32(), r.uint32(), r.uint32(), r.uint32()],
    [2581720956, 1925393290, 3661312704, 2876485805],
  );
  const zero = new Random(0);
  assert.deepEqual([zero.uint32(), zero.uint32(), zero.uint32()], [1144304738, 1416247, 958946056]);
  const g = new Random(7);
  assert.ok(Math.abs(g.gaussian() - 0.14197043782155663) < 1e-15);
  assert.ok(Math.abs(g.gaussian() - 0.058240714748711335) < 1e-15);
  // moments of 20000 draws: mean within 4σ/√n = 0.028, variance within 0.05
  const sample = new Random(3);
  const values = Array.from({ length: 20000 }, () => sample.gaussian());
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  assert.ok(Math.abs(mean) < 0.028 && Math.abs(variance - 1) < 0.05, `mean ${mean}, variance ${variance}`);
});

test('random diffeomorphic field: reproducible, requested amplitude, no folding, accurate inverse', () => {
  const a = randomDiffeomorphicField(grid, { seed: 11, amplitude: 6, lengthScale: 40 });
  const b = randomDiffeomorphicField(grid, { seed: 11, amplitude: 6, lengthScale: 40 });
  const other = randomDiffeomorphicField(grid, { seed: 12, amplitude: 6, lengthScale: 40 });
  assert.deepEqual(a.field.data, b.field.data);
  assert.notDeepEqual(a.field.data, other.field.data);
  assert.ok(Math.abs(displacementNorms(a.field).max - 6) <= 6e-3, `max ${a.max}`);
  assert.equal(a.max, displacementNorms(a.field).max);
  assert.ok(a.minJacobian > 0.5, `min det J ${a.minJacobian}`);
  assert.ok(displacementNorms(composeFields(a.field, a.inverse)).max <= 0.01);
  const rms = randomDiffeomorphicField(grid, { seed: 11, amplitude: 2, measure: 'rms', lengthScale: 40 });
  assert.ok(Math.abs(displacementNorms(rms.field).rms - 2) <= 2e-3, `rms ${rms.rms}`);
  // same velocity pattern, so the RMS field is (nearly) a scaled copy: its max is well above 2
  assert.ok(rms.max > 3);
});

test('synthetic pair: moving(p + u(p)) ≈ fixed(p) at the landmarks, labels follow', () => {
  // a smooth fixed image: a sum of Gaussian blobs (values 0…~300)
  const centres: Vec3[] = [
    [-20, -10, 0],
    [15, 5, 20],
    [0, 30, -10],
  ];
  const fixed = grid.withData(new Float32Array(grid.size));
  const labels = grid.withData(new Uint8Array(grid.size));
  const [nx, ny, nz] = grid.dims;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++) {
        const p = grid.voxelToWorld([i, j, k]);
        const t = grid.offset(i, j, k);
        fixed.data[t] = centres.reduce(
          (sum, q) =>
            sum + 100 * Math.exp(-((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2) / 400),
          0,
        );
        labels.data[t] = fixed.data[t] > 50 ? 2 : 0;
      }
  const pair = makeSyntheticPair(fixed, { seed: 5, amplitude: 8, lengthScale: 48, pointCount: 40, labels });
  assert.equal(pair.fixedPoints.length, 40);
  // trilinear interpolation error of the fields on a 2–3 mm grid (h²/8·|u''| ≈ 0.05–0.1 mm), not mm-level
  assert.ok(pair.inverseResidual < 0.15, `inverse residual ${pair.inverseResidual}`);
  const sampleAt = (volume: Volume, p: Vec3) => {
    const [i, j, k] = volume.worldToVoxel(p).map((v, a) => Math.min(Math.max(v, 0), volume.dims[a] - 1));
    const [i0, j0, k0] = [Math.floor(i), Math.floor(j), Math.floor(k)].map((v, a) =>
      Math.min(v, volume.dims[a] - 2),
    );
    let sum = 0;
    for (const [di, dj, dk] of [
      [0, 0, 0],
      [1, 0, 0],
      [0, 1, 0],
      [1, 1, 0],
      [0, 0, 1],
      [1, 0, 1],
      [0, 1, 1],
      [1, 1, 1],
    ]) {
      const w = (di ? i - i0 : 1 - (i - i0)) * (dj ? j - j0 : 1 - (j - j0)) * (dk ? k - k0 : 1 - (k - k0));
      sum += w * volume.data[volume.offset(i0 + di, j0 + dj, k0 + dk)];
    }
    return sum;
  };
  let worst = 0;
  let moved = 0;
  pair.fixedPoints.forEach((p, n) => {
    const q = pair.movingPoints[n];
    worst = Math.max(worst, Math.abs(sampleAt(pair.moving, q) - sampleAt(fixed, p)));
    moved = Math.max(moved, Math.hypot(q[0] - p[0], q[1] - p[1], q[2] - p[2]));
  });
  // intensity gradients ≤ ~4/mm: an interpolation-level mismatch only; the points did move by mm
  assert.ok(worst < 1, `largest intensity mismatch ${worst}`);
  assert.ok(moved > 2, `largest landmark displacement ${moved}`);
  assert.ok(pair.movingLabels && pair.movingLabels.data instanceof Uint8Array);
  assert.deepEqual([...new Set(pair.movingLabels.data)].sort(), [0, 2]);
});

test('breathing field: diaphragm moves superior by the amplitude, apex and outside still, folding-free', () => {
  const region = { min: [-40, -50, -30] as Vec3, max: [40, 40, 60] as Vec3 };
  const { field, minJacobian } = breathingField(grid, { amplitude: 20, apAmplitude: 6, region, falloff: 15 });
  assert.ok(minJacobian > 0);
  const n = grid.size;
  const u = (p: Vec3) => {
    const [i, j, k] = grid.worldToVoxel(p).map(Math.round);
    const t = grid.offset(i, j, k);
    return {
      p: grid.voxelToWorld([i, j, k]),
      y: field.data[t + n],
      z: field.data[t + 2 * n],
      x: field.data[t],
    };
  };
  const base = u([0, 0, -40]); // below the lung base, inside the x/y extent
  assert.ok(Math.abs(base.z - 20) < 1e-4 && base.x === 0, `base u_z ${base.z}`);
  const apex = u([0, 0, 62]);
  assert.ok(Math.abs(apex.z) < 1e-6, `apex u_z ${apex.z}`);
  const lateral = u([58, 0, -40]); // beyond x max + falloff
  assert.equal(lateral.z, 0);
  // mid-height: 1 − S(0.5) = 0.5 of the amplitude (S(t) = 3t² − 2t³)
  const mid = u([0, 0, 15]);
  const t = (mid.p[2] + 30) / 90;
  assert.ok(Math.abs(mid.z - 20 * (1 - t * t * (3 - 2 * t))) < 1e-4);
  // anterior chest wall (y < region min) moves posterior by apAmplitude·(1 − S/2); the back stays
  const anterior = u([0, -65, -40]);
  assert.ok(Math.abs(anterior.y - 6) < 1e-4, `anterior u_y ${anterior.y}`);
  assert.equal(u([0, 45, -40]).y, 0);
  assert.throws(
    () => breathingField(grid, { amplitude: 400, region }),
    (e: unknown) => e instanceof DiffregError && /^breathing deformation: folds/.test(e.message),
  );
});

test('breathing pair from a lung mask: landmarks inside the mask, inverse consistent', () => {
  const mask = grid.withData(new Uint8Array(grid.size));
  for (let k = 8; k < 34; k++)
    for (let j = 10; j < 44; j++) for (let i = 12; i < 52; i++) mask.data[grid.offset(i, j, k)] = 1;
  const fixed = grid.withData(new Int16Array(grid.size).fill(-1000));
  const pair = makeBreathingPair(fixed, { amplitude: 15, mask, pointMask: mask, pointCount: 25, seed: 3 });
  assert.equal(pair.fixedPoints.length, 25);
  // largest in the 20-mm shear band beside the lungs: 15 mm · S''/falloff² on a 2.5–3 mm grid ≈ 0.3 mm
  assert.ok(pair.inverseResidual < 0.5, `inverse residual ${pair.inverseResidual}`);
  for (const p of pair.fixedPoints) {
    const [i, j, k] = grid.worldToVoxel(p).map(Math.round);
    assert.equal(mask.data[grid.offset(i, j, k)], 1);
  }
  // inhale → exhale: every landmark moves superior (or stays), none inferior
  pair.fixedPoints.forEach((p, n) => assert.ok(pair.movingPoints[n][2] - p[2] >= 0));
  assert.ok(pair.movingPoints.some((q, n) => q[2] - pair.fixedPoints[n][2] > 5));
});
