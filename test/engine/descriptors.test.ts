/**
 * MIND-SSC and intensity patches (native/ops_descriptors.cc): on a linear ramp worked by hand, and on a
 * random image against their definitions evaluated voxel by voxel in float64 (clamped indices for the
 * replicate borders, the 3×3×3 box as a sum of 27), with one and two threads; one-line errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Generator,
  arange,
  dispose,
  intensityPatches,
  mindSsc,
  rand,
  type Tensor,
} from '../../src/engine/index.ts';
import { withEachThreadCount } from '../helpers/tensors.ts';

const SHAPE = [8, 7, 6];

/** I(x, y, z) = x on an 8 × 7 × 6 grid, as (1, 1, W, H, D). */
const ramp = (): Tensor =>
  arange(0, SHAPE[0], 1, { dtype: 'float32' })
    .reshape(1, 1, SHAPE[0], 1, 1)
    .expand(1, 1, ...SHAPE)
    .contiguous();

/** The channels of a (C, W, H, D) descriptor at voxel (i, j, k). */
function at(d: Tensor, [i, j, k]: number[]): number[] {
  const v = d.toTypedArray() as Float32Array;
  const n = SHAPE[0] * SHAPE[1] * SHAPE[2];
  return Array.from({ length: d.shape[0] }, (_, c) => v[c * n + (i * SHAPE[1] + j) * SHAPE[2] + k]);
}

test('MIND-SSC of a ramp along x: exp(−1.5) on the 8 edges that cross x, 1 on the 4 within y–z', () => {
  const image = ramp();
  const mind = mindSsc(image);
  assert.deepEqual(mind.shape, [12, ...SHAPE]);
  // Interior voxel: pairs of neighbours one along x and one along y or z differ by 1 (squared 1),
  // pairs along y and z by 0; the local variance is their mean, 8/12; divided by the channel maximum.
  const values = at(mind, [4, 3, 3]).sort((a, b) => a - b);
  const expected = [...new Array(8).fill(Math.exp(-1.5)), 1, 1, 1, 1];
  values.forEach((v, c) => assert.ok(Math.abs(v - expected[c]) < 1e-5, `channel ${c}: ${v}`));
  dispose([image, mind]);
});

test('intensity patches of a ramp: centred neighbours, 2·dilation·a for an x-offset of a', () => {
  const image = ramp();
  const patches = intensityPatches(image, 2);
  assert.deepEqual(patches.shape, [27, ...SHAPE]);
  // Offsets run a, b, c over −1, 0, 1 with a slowest: channel 9a + 3b + c (shifted by 13).
  const values = at(patches, [4, 3, 3]);
  for (const a of [-1, 0, 1])
    for (const b of [-1, 0, 1])
      for (const c of [-1, 0, 1])
        assert.equal(values[13 + 9 * a + 3 * b + c], 2 * a, `offset ${a},${b},${c}`);
  dispose([image, patches]);
});

test('thick slices (dilation 0 along z): 2-D patches and MIND-SSC', () => {
  const image = ramp();
  // Patches: the 3×3 in-plane neighbourhood, a slowest: channel 3(a + 1) + (b + 1) holds 2a.
  const patches = intensityPatches(image, [2, 2, 0]);
  assert.deepEqual(patches.shape, [9, ...SHAPE]);
  const values = at(patches, [4, 3, 3]);
  for (const a of [-1, 0, 1])
    for (const b of [-1, 0, 1]) assert.equal(values[3 * (a + 1) + (b + 1)], 2 * a, `offset ${a},${b}`);
  // MIND-SSC: the 4 edges between an x- and a y-neighbour, each crossing x once: all equal, so 1.
  const mind = mindSsc(image, [1, 1, 0]);
  assert.deepEqual(mind.shape, [4, ...SHAPE]);
  at(mind, [4, 3, 3]).forEach((v, c) => assert.ok(Math.abs(v - 1) < 1e-6, `channel ${c}: ${v}`));
  dispose([image, patches, mind]);
});

/** MIND-SSC and patches by their definitions, voxel by voxel: (C, n) rows in C order of the grid. */
function reference(image: Float32Array, dims: number[], dilation: number[]) {
  const [W, H, D] = dims;
  const clamp = (v: number, n: number) => Math.min(n - 1, Math.max(0, v));
  const I = (x: number, y: number, z: number) => image[(clamp(x, W) * H + clamp(y, H)) * D + clamp(z, D)];
  const six: number[][] = [];
  for (let a = 0; a < 3; a++)
    if (dilation[a] > 0)
      for (const s of [1, -1]) six.push([0, 1, 2].map((b) => (b === a ? s * dilation[a] : 0)));
  const axis = (o: number[]) => o.findIndex((v) => v !== 0);
  const pairs: number[][] = [];
  for (let i = 0; i < six.length; i++)
    for (let j = i + 1; j < six.length; j++) if (axis(six[i]) !== axis(six[j])) pairs.push([i, j]);
  const n = W * H * D;
  const distance = pairs.map(([i, j]) => {
    const out = new Float64Array(n);
    for (let x = 0; x < W; x++)
      for (let y = 0; y < H; y++)
        for (let z = 0; z < D; z++) {
          let sum = 0;
          for (let a = -1; a <= 1; a++)
            for (let b = -1; b <= 1; b++)
              for (let c = -1; c <= 1; c++) {
                // The box's voxel, clamped to the grid, then its neighbours (clamped again).
                const [p, q, r] = [clamp(x + a, W), clamp(y + b, H), clamp(z + c, D)];
                const [u, v] = [six[i], six[j]];
                sum += (I(p + u[0], q + u[1], r + u[2]) - I(p + v[0], q + v[1], r + v[2])) ** 2;
              }
          out[(x * H + y) * D + z] = sum / 27;
        }
    return out;
  });
  const variance = Float64Array.from(
    { length: n },
    (_, k) => distance.reduce((s, d) => s + d[k], 0) / pairs.length,
  );
  const mean = variance.reduce((s, v) => s + v, 0) / n;
  const mind = distance.map(() => new Float64Array(n));
  for (let k = 0; k < n; k++) {
    const v = Math.min(Math.max(variance[k], mean * 0.001), mean * 1000);
    const e = distance.map((d) => Math.exp(-d[k] / v));
    const top = Math.max(...e);
    e.forEach((value, c) => (mind[c][k] = value / top));
  }
  const steps = dilation.map((d) => (d > 0 ? [-1, 0, 1] : [0]));
  const offsets: number[][] = [];
  for (const a of steps[0])
    for (const b of steps[1])
      for (const c of steps[2]) offsets.push([a, b, c].map((s, i) => s * dilation[i]));
  const patches = offsets.map(() => new Float64Array(n));
  for (let x = 0; x < W; x++)
    for (let y = 0; y < H; y++)
      for (let z = 0; z < D; z++) {
        const k = (x * H + y) * D + z;
        const values = offsets.map((o) => I(x + o[0], y + o[1], z + o[2]));
        const centre = values.reduce((s, v) => s + v, 0) / values.length;
        values.forEach((v, j) => (patches[j][k] = v - centre));
      }
  return { mind, patches };
}

function maxDifference(actual: Tensor, expected: Float64Array[]): number {
  assert.equal(actual.shape[0], expected.length);
  const a = actual.toTypedArray() as Float32Array;
  const n = expected[0].length;
  let worst = 0;
  expected.forEach((row, c) => row.forEach((v, k) => (worst = Math.max(worst, Math.abs(a[c * n + k] - v)))));
  return worst;
}

test('MIND-SSC and patches match their definitions on a random image, borders and threads included', () => {
  const dims = [9, 6, 5];
  const image = rand(dims, { generator: new Generator(3) });
  const values = image.toTypedArray() as Float32Array;
  // Dilation 3 along an axis of 5 voxels and 6 along one of 5: neighbours mostly beyond the border.
  for (const dilation of [
    [1, 1, 1],
    [2, 1, 0],
    [3, 2, 6],
    [0, 2, 1],
  ]) {
    const expected = reference(values, dims, dilation);
    withEachThreadCount([1, 2], (count) => {
      const mind = mindSsc(image, dilation);
      const patches = intensityPatches(image.reshape(1, 1, ...dims), dilation);
      assert.deepEqual(mind.shape.slice(1), dims);
      assert.ok(
        maxDifference(mind, expected.mind) < 2e-6,
        `MIND-SSC, dilation ${dilation}, ${count} threads`,
      );
      assert.ok(
        maxDifference(patches, expected.patches) < 1e-6,
        `patches, dilation ${dilation}, ${count} threads`,
      );
      dispose([mind, patches]);
    });
  }
  image.dispose();
});

test('descriptor kernels: bad images and dilations in one line', () => {
  const image = rand([4, 4, 4]);
  assert.throws(() => mindSsc(image, [0, 0, 2]), {
    message:
      /^descriptor dilation: expected a value > 0 along at least two axes for MIND-SSC, got \[0, 0, 2\]$/,
  });
  assert.throws(() => intensityPatches(image, [1, -1, 1]), {
    message: /^descriptor dilation: expected a list of integers >= 0, got \[1, -1, 1\]$/,
  });
  assert.throws(() => intensityPatches(image, [1, 1]), {
    message: /^descriptor dilation: expected three integers >= 0, got \[1, 1\]$/,
  });
  assert.throws(() => mindSsc(rand([4, 4])), {
    message: /^descriptor image: expected a \(W, H, D\) or \(1, 1, W, H, D\) tensor/,
  });
  image.dispose();
});
