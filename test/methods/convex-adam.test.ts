/**
 * ConvexAdam on descriptors with a known answer: the moving descriptors are the fixed ones displaced by
 * a known field, so the recovered field must equal it away from the borders.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, Generator, noGrad, randn, tensor, tidy, zeros, type Tensor } from '../../src/engine/index.ts';
import { convexAdam, exponentiate, warpLattice } from '../../src/methods/dense/convex-adam.ts';

/** Smooth random descriptors (C, n, n, n). */
function smoothRandom(channels: number, n: number, seed: number): Tensor {
  return noGrad(() =>
    tidy(() => {
      let x = randn([1, channels, n, n, n], { generator: new Generator(seed) });
      for (let i = 0; i < 3; i++)
        x = F.avgPool3d(F.pad(x, [1, 1, 1, 1, 1, 1], { mode: 'replicate' }), 3, { stride: 1 });
      return x.squeeze(0).div(x.std().item());
    }),
  );
}

function constantField(v: number[], n: number): Tensor {
  return tidy(() => zeros([3, n, n, n]).add(tensor(v).reshape(3, 1, 1, 1)));
}

function maxInteriorError(u: Tensor, expected: number[], margin: number): number {
  const [, w] = u.shape;
  const inner = u
    .narrow(1, margin, w - 2 * margin)
    .narrow(2, margin, w - 2 * margin)
    .narrow(3, margin, w - 2 * margin);
  let worst = 0;
  for (let a = 0; a < 3; a++) {
    const values = inner.select(0, a).toTypedArray() as Float32Array;
    for (const v of values) worst = Math.max(worst, Math.abs(v - expected[a]));
  }
  return worst;
}

test('warpLattice shifts by whole voxels exactly; exp of a constant velocity is that translation', () => {
  const x = smoothRandom(2, 8, 1);
  const shift = constantField([1, 0, -2], 8);
  const warped = warpLattice(x, shift);
  // Interior: warped(p) = x(p + (1, 0, −2)).
  const a = warped.narrow(1, 0, 7).narrow(3, 2, 6).toTypedArray() as Float32Array;
  const b = x.narrow(1, 1, 7).narrow(3, 0, 6).toTypedArray() as Float32Array;
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-5, `voxel ${i}: ${v} vs ${b[i]}`));
  assert.ok(maxInteriorError(exponentiate(shift), [1, 0, -2], 0) < 1e-4);
});

test('convexAdam recovers a known translation between displaced descriptors', () => {
  const n = 16;
  const fixed = smoothRandom(6, n, 7);
  const truth = [2, -1, 1.5];
  // moving(p + truth) = fixed(p): moving = fixed warped by −truth.
  const moving = warpLattice(
    fixed,
    constantField(
      truth.map((v) => -v),
      n,
    ),
  );
  const convexOnly = convexAdam(fixed, moving, { searchRadius: 3, iterations: 0 });
  const convexError = maxInteriorError(convexOnly, truth, 4);
  const full = convexAdam(fixed, moving, { searchRadius: 3, iterations: 40, smoothness: 0.5 });
  const fullError = maxInteriorError(full, truth, 4);
  console.log(
    `# convex stage max error ${convexError.toFixed(3)} voxels; after Adam ${fullError.toFixed(3)} voxels`,
  );
  assert.ok(convexError <= 0.51, 'integer candidates get within half a voxel');
  assert.ok(fullError < 0.2, 'instance optimisation reaches sub-voxel accuracy');
});

test('convexAdam options are checked', () => {
  const x = smoothRandom(1, 8, 2);
  assert.throws(() => convexAdam(x, x, { searchRadius: 0 }), {
    message: /^searchRadius: expected an integer in \[1, 12\], got 0$/,
  });
  assert.throws(() => convexAdam(x, x, { smoothness: -1 }), {
    message: /^smoothness: expected a finite number >= 0, got -1$/,
  });
});
