/**
 * The affine pre-alignment with a known answer: the moving descriptors are analytic (sinusoids of the
 * lattice position) read through the inverse of a known scaling and shift, so the recovered map's
 * parameters are known in closed form.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, stack, tidy } from '../../src/engine/index.ts';
import type { Vec3 } from '../../src/geometry/volume.ts';
import { affineAlign, applyLatticeAffine } from '../../src/methods/dense/affine.ts';

const N = 24;
const WAVES = [
  [0.35, 0.1, 0.05, 0],
  [0.05, 0.3, 0.12, 1],
  [0.1, 0.05, 0.33, 2],
  [0.2, -0.22, 0.1, 0.5],
  [-0.15, 0.2, 0.25, 1.5],
  [0.25, 0.18, -0.2, 2.5],
];

/** Descriptors (6, N, N, N) whose value at lattice voxel p is sin(ω·map(p) + φ) per channel. */
function descriptors(map: (p: Vec3) => Vec3): Tensor {
  const values = WAVES.map(([a, b, c, phase]) => {
    const out = new Float32Array(N ** 3);
    for (let i = 0, x = 0; x < N; x++)
      for (let y = 0; y < N; y++)
        for (let z = 0; z < N; z++, i++) {
          const q = map([x, y, z]);
          out[i] = Math.sin(a * q[0] + b * q[1] + c * q[2] + phase);
        }
    return out;
  });
  return tidy(() =>
    stack(
      values.map((v) => Tensor.fromArray(v, [N, N, N])),
      0,
    ),
  );
}

test('affineAlign: a scaling of 1.04 about the centre and a shift of (1, −0.5, 0.75) voxels', () => {
  const c = (N - 1) / 2;
  const s = 1.04;
  const t: Vec3 = [1, -0.5, 0.75];
  // fixed(p) = moving(T(p)) with T(p) = c + s(p − c) + t, so moving(y) = fixed-pattern(T⁻¹(y)).
  const fixed = descriptors((p) => p);
  const moving = descriptors((y) => y.map((v, a) => c + (v - c - t[a]) / s) as Vec3);
  const a = affineAlign(fixed, moving, { iterations: 300 });
  // T(p) − p = (s − 1)(p − c) + t: matrix diag((s − 1)·half), half = (N − 1)/2 = 11.5 → 0.46.
  const expected = [0.46, 0, 0, 0, 0.46, 0, 0, 0, 0.46];
  a.matrix.forEach((v, i) =>
    assert.ok(Math.abs(v - expected[i]) < 0.05, `matrix[${i}] ${v} vs ${expected[i]}`),
  );
  a.translation.forEach((v, i) => assert.ok(Math.abs(v - t[i]) < 0.05, `translation[${i}] ${v} vs ${t[i]}`));
  // The map itself, at a corner: c + s(0 − c) + t.
  const corner = applyLatticeAffine(a, [0, 0, 0]);
  corner.forEach((v, i) => assert.ok(Math.abs(v - (c - s * c + t[i])) < 0.1, `corner ${i}: ${v}`));
  fixed.dispose();
  moving.dispose();
});

test('affineAlign: identical descriptors give the identity; bad options one line', () => {
  const fixed = descriptors((p) => p);
  const a = affineAlign(fixed, fixed, { iterations: 20 });
  [...a.matrix, ...a.translation].forEach((v) => assert.ok(Math.abs(v) < 1e-3, `${v}`));
  assert.throws(() => affineAlign(fixed, fixed, { learningRate: 0 }), /affine learningRate/);
  fixed.dispose();
});
