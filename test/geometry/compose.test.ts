import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Volume,
  composeFields,
  fieldThenAffine,
  displacementNorms,
  expField,
  fieldFromFunction,
  invertField,
  zeroField,
  type Vec3,
} from '../../src/geometry/index.ts';

const grid = new Volume({ data: new Float32Array(24 * 20 * 16), dims: [24, 20, 16], spacing: [2, 2.5, 3] });
const centre = grid.voxelToWorld([11.5, 9.5, 7.5]);

/** max |field| over voxels at least `margin` voxels from every face */
function interiorMax(field: Volume<Float32Array>, margin: number): number {
  const [nx, ny, nz] = field.dims;
  const n = field.size;
  let max = 0;
  for (let k = margin; k < nz - margin; k++)
    for (let j = margin; j < ny - margin; j++)
      for (let i = margin; i < nx - margin; i++) {
        const t = field.offset(i, j, k);
        max = Math.max(max, Math.hypot(field.data[t], field.data[t + n], field.data[t + 2 * n]));
      }
  return max;
}

test('composeFields of affine fields is the affine composition x → B(Ax + t) + s', () => {
  // inner: x → A x + t, outer: y → B y + s (about the grid centre, small enough to stay inside)
  const A = [1.05, 0.02, 0, -0.03, 0.97, 0.01, 0, 0.04, 1.02];
  const B = [0.96, 0, 0.03, 0.02, 1.03, 0, -0.01, 0.02, 0.99];
  const t: Vec3 = [1, -0.5, 0.8];
  const s: Vec3 = [-0.7, 0.4, 0.3];
  const apply = (M: number[], p: Vec3, c: Vec3): Vec3 => {
    const d = [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]];
    return [0, 1, 2].map(
      (r) => centre[r] + M[3 * r] * d[0] + M[3 * r + 1] * d[1] + M[3 * r + 2] * d[2] + c[r],
    ) as Vec3;
  };
  const inner = fieldFromFunction(grid, (p) => apply(A, p, t).map((v, a) => v - p[a]) as Vec3);
  const outer = fieldFromFunction(grid, (p) => apply(B, p, s).map((v, a) => v - p[a]) as Vec3);
  const expected = fieldFromFunction(
    grid,
    (p) => apply(B, apply(A, p, t), s).map((v, a) => v - p[a]) as Vec3,
  );
  const w = composeFields(outer, inner);
  const difference = w.withData(
    w.data.map((v, i) => v - expected.data[i]),
    3,
  );
  assert.ok(interiorMax(difference, 3) < 1e-4, `max difference ${interiorMax(difference, 3)}`);
});

test('invertField: compose(u, inverse(u)) ≈ 0 and compose(inverse(u), u) ≈ 0 in the interior', () => {
  const u = fieldFromFunction(grid, (p) => [
    4 * Math.sin((p[1] - centre[1]) / 9),
    3 * Math.cos((p[2] - centre[2]) / 8),
    2.5 * Math.sin((p[0] - centre[0]) / 10),
  ]);
  const inverse = invertField(u, { tolerance: 1e-4, iterations: 50 });
  assert.ok(inverse.residual <= 1e-4, `residual ${inverse.residual}`);
  assert.ok(inverse.iterations > 2 && inverse.iterations < 50, `iterations ${inverse.iterations}`);
  // the reported residual is the largest |compose(u, v)|
  const uv = composeFields(u, inverse.field);
  assert.ok(Math.abs(displacementNorms(uv).max - inverse.residual) < 1e-5);
  // the other side holds up to trilinear interpolation error (gradients ≤ 0.45, spacing 2–3 mm: 0.12 mm)
  assert.ok(interiorMax(composeFields(inverse.field, u), 3) < 0.15);
  // and the inverse is not trivially small: it undoes a 4-mm field
  assert.ok(displacementNorms(inverse.field).max > 3.9);
});

test('expField of a zero field is zero; of a constant velocity, that translation exactly', () => {
  assert.ok(expField(zeroField(grid)).data.every((v) => v === 0));
  const v = fieldFromFunction(grid, () => [7.5, -3.25, 12]);
  for (const squarings of [undefined, 0, 6]) {
    const u = expField(v, squarings === undefined ? {} : { squarings });
    assert.deepEqual(u.data, v.data);
  }
});

test('expField of a linear contraction v(x) = L(x − c) gives (I + L/2^N)^(2^N) − I ≈ e^L − I', () => {
  const lambda: Vec3 = [-0.3, -0.2, -0.1];
  const v = fieldFromFunction(grid, (p) => lambda.map((l, a) => l * (p[a] - centre[a])) as Vec3);
  const N = 8;
  const u = expField(v, { squarings: N });
  const n = grid.size;
  for (const index of [
    [3, 4, 5],
    [11, 9, 7],
    [20, 15, 12],
  ] as Vec3[]) {
    const p = grid.voxelToWorld(index);
    const t = grid.offset(...index);
    for (let a = 0; a < 3; a++) {
      const x = p[a] - centre[a];
      const exact = ((1 + lambda[a] / 2 ** N) ** (2 ** N) - 1) * x;
      assert.ok(
        Math.abs(u.data[t + a * n] - exact) < 1e-4,
        `axis ${a} at ${index}: ${u.data[t + a * n]} vs ${exact}`,
      );
      assert.ok(Math.abs(u.data[t + a * n] - (Math.exp(lambda[a]) - 1) * x) < 2e-3 * Math.abs(x) + 1e-4);
    }
  }
});

test('fieldThenAffine: u = (1, 2, 3) mm then A = diag(2, 1, 1) + (5, 0, 0) gives (x + 7, 2, 3) everywhere', () => {
  // A(x + u) − x = (2(x + 1) + 5 − x, 2, 3) with x the voxel's world x: 2 mm steps from the origin.
  const origin: Vec3 = [-10, 4, 7];
  const u = fieldFromFunction(
    new Volume({ data: new Float32Array(6 * 5 * 4), dims: [6, 5, 4], spacing: [2, 2.5, 3], origin }),
    () => [1, 2, 3],
  );
  const w = fieldThenAffine(u, [2, 0, 0, 5, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  assert.ok(w.sameGrid(u));
  const n = w.size;
  for (const [i, j, k] of [
    [0, 0, 0],
    [5, 4, 3],
    [2, 3, 1],
  ]) {
    const at = w.offset(i, j, k);
    const x = origin[0] + 2 * i;
    assert.ok(Math.abs(w.data[at] - (x + 7)) < 1e-4, `x at ${i},${j},${k}: ${w.data[at]}`);
    assert.ok(Math.abs(w.data[n + at] - 2) < 1e-5);
    assert.ok(Math.abs(w.data[2 * n + at] - 3) < 1e-5);
  }
  assert.throws(() => fieldThenAffine(u, [1, 0, 0]), /affine: expected a 4x4 row-major affine/);
});
