import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Volume, type Vec3 } from '../../src/geometry/index.ts';
import {
  elastixMethod,
  elastixParameterMaps,
  identityMethod,
  nativeElastixVersion,
  parameterFileText,
} from '../../src/methods/baselines/index.ts';
import type { RegistrationCase } from '../../src/methods/method.ts';
import { measured } from '../../src/util/measure.ts';

const dims: Vec3 = [40, 36, 30];
const spacing: Vec3 = [1.5, 1.25, 2];
const origin: Vec3 = [-20, 10, 5];
const blobs = [
  [10, 30, 30, 5, 1],
  [-5, 40, 50, 4, 0.8],
  [5, 22, 42, 3, 1.2],
  [20, 45, 22, 6, 0.6],
  [-10, 25, 20, 4, 1],
  [0, 35, 35, 8, -0.5],
];

/** A sum of Gaussian blobs, shifted by d (world mm): image(x) = f(x − d). */
function image(d: Vec3): Volume<Float32Array> {
  const data = new Float32Array(dims[0] * dims[1] * dims[2]);
  for (let k = 0, t = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, t++) {
        const [x, y, z] = [
          origin[0] + i * spacing[0] - d[0],
          origin[1] + j * spacing[1] - d[1],
          origin[2] + k * spacing[2] - d[2],
        ];
        for (const [bx, by, bz, r, a] of blobs)
          data[t] += a * Math.exp(-((x - bx) ** 2 + (y - by) ** 2 + (z - bz) ** 2) / (2 * r * r));
      }
  return new Volume({ data, dims, spacing, origin });
}

// moving(x) = fixed(x − d): the fixed point p is at p + d in the moving image, so u = d everywhere
const shift: Vec3 = [3, -2, 4];
const item: RegistrationCase = {
  id: 'shifted blobs',
  fixed: image([0, 0, 0]),
  moving: image(shift),
  modality: 'mr',
};

/** Mean displacement over the central half of the grid (away from the borders elastix extrapolates). */
function centralMean(field: Volume<Float32Array>): Vec3 {
  const n = field.size;
  const sum: Vec3 = [0, 0, 0];
  let count = 0;
  for (let k = dims[2] / 4; k < (3 * dims[2]) / 4; k++)
    for (let j = dims[1] / 4; j < (3 * dims[1]) / 4; j++)
      for (let i = dims[0] / 4; i < (3 * dims[0]) / 4; i++, count++) {
        const t = field.offset(i, j, k);
        for (let a = 0; a < 3; a++) sum[a] += field.data[t + a * n];
      }
  return sum.map((s) => s / count) as Vec3;
}

let wasmAffine: Promise<Volume<Float32Array>> | undefined;
/** The quick affine @itk-wasm/elastix result, computed once for both tests that need it. */
const registerWasmAffine = () =>
  (wasmAffine ??= elastixMethod({ transform: 'affine' })
    .register(item, { quick: true })
    .then((r) => r.field as Volume<Float32Array>));

test('identity: a zero field on the fixed grid', async () => {
  const result = await identityMethod.register(item);
  assert.ok(result.field?.sameGrid(item.fixed));
  assert.ok(result.field?.data.every((v) => v === 0));
  assert.ok(result.seconds >= 0 && result.peakRssMb > 0);
});

test('measured: wall time and the peak RSS of work that allocates and frees 300 MB', async () => {
  const before = process.memoryUsage.rss() / 2 ** 20;
  const { value, seconds, peakRssMb } = await measured(async () => {
    const block = Buffer.alloc(300 * 2 ** 20, 1);
    await new Promise((resolve) => setTimeout(resolve, 120));
    return block[12345];
  });
  assert.equal(value, 1);
  assert.ok(seconds >= 0.1 && seconds < 5, `${seconds} s`);
  assert.ok(peakRssMb > before + 250, `peak ${peakRssMb} MB, before ${before} MB`);
});

test('elastix parameter maps: default affine + B-spline maps with the grid spacing, quick mode, text format', async () => {
  const maps = await elastixParameterMaps({ transform: 'bspline', gridSpacing: 6, resolutions: 3 });
  assert.deepEqual(
    maps.map((m) => m.Transform[0]),
    ['AffineTransform', 'BSplineTransform'],
  );
  assert.deepEqual(maps[1].FinalGridSpacingInPhysicalUnits.map(Number), [6]);
  assert.deepEqual(maps[1].Metric, ['AdvancedMattesMutualInformation', 'TransformBendingEnergyPenalty']);
  assert.deepEqual(maps[0].MaximumNumberOfIterations, ['256']);
  const quick = await elastixParameterMaps({ transform: 'affine' }, true);
  assert.deepEqual(
    [quick.length, quick[0].NumberOfResolutions[0], quick[0].MaximumNumberOfIterations[0]],
    [1, '2', '64'],
  );
  const text = parameterFileText({
    Transform: ['AffineTransform'],
    NumberOfResolutions: ['3'],
    Spacing: ['1.5', '-2e-3'],
  });
  assert.equal(text, '(Transform "AffineTransform")\n(NumberOfResolutions 3)\n(Spacing 1.5 -2e-3)\n');
});

test('elastix (@itk-wasm) affine recovers a known translation, in diffreg field convention', async () => {
  const field = await registerWasmAffine();
  assert.ok(field.sameGrid(item.fixed));
  const mean = centralMean(field);
  mean.forEach((v, a) =>
    assert.ok(Math.abs(v - shift[a]) < 0.3, `u = ${mean.join(', ')}, expected ${shift.join(', ')}`),
  );
});

test('native elastix command gives the same transform as @itk-wasm/elastix (skipped when not installed)', async (t) => {
  const version = await nativeElastixVersion();
  if (!version) {
    console.log('# SKIPPED: the elastix command is not installed');
    t.skip('elastix command not installed');
    return;
  }
  const wasm = await registerWasmAffine();
  const native = (
    await elastixMethod({ transform: 'affine', engine: 'native' }).register(item, { quick: true })
  ).field as Volume<Float32Array>;
  assert.ok(native.sameGrid(item.fixed));
  let worst = 0;
  native.data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - wasm.data[i]))));
  // same elastix code and default sampler seed: equal up to float rounding and the transformix path
  assert.ok(worst < 0.01, `largest difference ${worst} mm`);
});
