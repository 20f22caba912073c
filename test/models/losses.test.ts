/**
 * Learned-registration losses on hand-worked cases: integer and half-voxel shifts through the spatial
 * transformer (tensor axis order against grid_sample's), NCC of an affine intensity change, SSIM of
 * identical and of constant images, smoothness of linear fields — in 3-D and 2-D.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arange, full, Generator, rand, stack, tidy, zeros } from '../../src/engine/index.ts';
import {
  nccLoss,
  smoothnessLoss,
  spatialTransformer,
  ssim,
  ssimLoss,
  warpLabelMap,
} from '../../src/models/losses/index.ts';

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('spatialTransformer: a constant integer shift per axis reads image(p + u) exactly (3-D)', () => {
  tidy(() => {
    const image = rand([1, 1, 6, 5, 4], { generator: new Generator(1) });
    const shift = [1, -2, 1];
    const field = stack(
      shift.map((s) => full([1, 6, 5, 4], s)),
      1,
    );
    const warped = spatialTransformer(image, field);
    const src = image.toTypedArray() as Float32Array;
    const out = warped.toTypedArray() as Float32Array;
    const at = (i: number, j: number, k: number) => (i * 5 + j) * 4 + k;
    for (let i = 0; i < 5; i++)
      for (let j = 2; j < 5; j++)
        for (let k = 0; k < 3; k++)
          close(out[at(i, j, k)], src[at(i + 1, j - 2, k + 1)], 1e-6, `voxel ${i},${j},${k}`);
  });
});

test('warpLabelMap: nearest label, 0 more than half a voxel beyond the grid (ITK), edge repeated by spatialTransformer', () => {
  tidy(() => {
    // Labels 1, 2, 3, 4 along the last axis; shifts of 0.4 and 0.6 voxel toward the end.
    const labels = arange(1, 5, 1, { dtype: 'float32' }).reshape(1, 1, 1, 4);
    const values = (shift: number, warp: (l: typeof labels, u: typeof labels) => typeof labels) => [
      ...(warp(
        labels,
        stack([full([1, 1, 4], 0), full([1, 1, 4], shift)], 1),
      ).toTypedArray() as Float32Array),
    ];
    const itk = (l: typeof labels, u: typeof labels) => warpLabelMap(l, u);
    const clamped = (l: typeof labels, u: typeof labels) => spatialTransformer(l, u, { mode: 'nearest' });
    // 3.4 rounds to voxel 3 (inside the voxel's extent); 3.6 lies beyond it.
    assert.deepEqual(values(0.4, itk), [1, 2, 3, 4]);
    assert.deepEqual(values(0.6, itk), [2, 3, 4, 0]);
    assert.deepEqual(values(0.6, clamped), [2, 3, 4, 4]);
    assert.deepEqual(values(-2.6, itk), [0, 0, 0, 1]);
  });
});

test('spatialTransformer: half a voxel along one axis averages neighbours; gradients reach u (2-D and 3-D)', () => {
  tidy(() => {
    for (const spatial of [
      [4, 3],
      [4, 3, 2],
    ]) {
      const image = rand([1, 1, ...spatial], { generator: new Generator(2) });
      const last = spatial.length - 1;
      const parts = spatial.map((_, a) => full([1, ...spatial], a === last ? 0.5 : 0));
      const u = stack(parts, 1).requiresGrad_();
      const warped = spatialTransformer(image, u);
      const expected = image
        .narrow(2 + last, 0, spatial[last] - 1)
        .add(image.narrow(2 + last, 1, spatial[last] - 1))
        .mul(0.5);
      const got = warped.narrow(2 + last, 0, spatial[last] - 1);
      close(got.sub(expected).abs().max().item(), 0, 1e-6, `${spatial.length}-D half-voxel shift`);
      warped.sum().backward();
      assert.ok((u.grad?.abs().sum().item() ?? 0) > 0, 'gradient reaches the displacement');
    }
  });
});

test('spatialTransformer: nearest mode keeps label values; a wrong displacement shape is a one-line error', () => {
  tidy(() => {
    const labels = arange(0, 24, 1, { dtype: 'float32' }).reshape(1, 1, 4, 3, 2);
    const u = full([1, 3, 4, 3, 2], 0.3);
    const warped = spatialTransformer(labels, u, { mode: 'nearest' });
    assert.deepEqual(
      [...(warped.toTypedArray() as Float32Array)],
      [...(labels.toTypedArray() as Float32Array)],
    );
    assert.throws(
      () => spatialTransformer(labels, zeros([1, 2, 4, 3, 2])),
      /displacement: expected \[1, 3, 4, 3, 2\]/,
    );
  });
});

test('nccLoss: an affine intensity change of an image scores −1; unrelated noise scores near 0 (3-D and 2-D)', () => {
  tidy(() => {
    for (const spatial of [
      [12, 10, 8],
      [16, 12],
    ]) {
      const a = rand([2, 1, ...spatial], { generator: new Generator(3) }).mul(10);
      close(nccLoss(a, a.mul(3).add(2)).item(), -1, 1e-4, `${spatial.length}-D affine change`);
      close(nccLoss(a, a.mul(-0.5).add(7)).item(), -1, 1e-4, `${spatial.length}-D inverted contrast`);
      const b = rand([2, 1, ...spatial], { generator: new Generator(4) }).mul(10);
      assert.ok(nccLoss(a, b).item() > -0.2, 'independent noise correlates weakly');
    }
    // Per-axis windows work too.
    const a = rand([1, 1, 12, 10, 8], { generator: new Generator(5) }).mul(10);
    close(nccLoss(a, a.add(1), { window: [9, 9, 3] }).item(), -1, 1e-4, 'window [9, 9, 3]');
    assert.throws(() => nccLoss(a, a, { window: 4 }), /window: expected an odd number/);
  });
});

test('ssim: identical images give 1 (loss 0); constant images give the luminance term by hand', () => {
  tidy(() => {
    const a = rand([1, 1, 12, 10, 8], { generator: new Generator(6) });
    close(ssim(a, a).item(), 1, 1e-5, 'identical, Gaussian kernel');
    close(ssim(a, a, { kernel: 'uniform' }).item(), 1, 1e-5, 'identical, uniform kernel');
    close(ssimLoss(a, a).item(), 0, 1e-5, 'loss of identical');
    assert.ok(ssim(a, rand([1, 1, 12, 10, 8], { generator: new Generator(7) })).item() < 0.2);
    // Constant 0.5 vs 0.25: variances and covariance vanish, SSIM = (2·0.125 + c1)/(0.25 + 0.0625 + c1).
    const c1 = 1e-4;
    const expected = (0.25 + c1) / (0.3125 + c1);
    close(
      ssim(full([1, 1, 9, 9, 9], 0.5), full([1, 1, 9, 9, 9], 0.25)).item(),
      expected,
      1e-5,
      'constant 3-D',
    );
    close(ssim(full([1, 1, 9, 9], 0.5), full([1, 1, 9, 9], 0.25)).item(), expected, 1e-5, 'constant 2-D');
  });
});

test('smoothnessLoss: a linear field gives its slope² (along every axis) or slope²/nd (along one)', () => {
  tidy(() => {
    const s = 0.3;
    const spatial = [5, 4, 3];
    const coordinate = (a: number) =>
      arange(0, spatial[a], 1, { dtype: 'float32' })
        .reshape(spatial.map((n, b) => (a === b ? n : 1)))
        .expand(spatial);
    const ramp = coordinate(0).add(coordinate(1)).add(coordinate(2)).mul(s);
    close(smoothnessLoss(stack([ramp, ramp, ramp], 0).unsqueeze(0)).item(), s * s, 1e-6, 'every axis');
    const alongOne = coordinate(1).mul(s);
    close(
      smoothnessLoss(stack([alongOne, alongOne, alongOne], 0).unsqueeze(0)).item(),
      (s * s) / 3,
      1e-6,
      'one axis',
    );
    const plane = arange(0, 6, 1, { dtype: 'float32' }).reshape(6, 1).expand([6, 4]).mul(s);
    close(smoothnessLoss(stack([plane, plane], 0).unsqueeze(0)).item(), (s * s) / 2, 1e-6, '2-D, one axis');
    close(smoothnessLoss(zeros([1, 3, 4, 4, 4])).item(), 0, 0, 'zero field');
  });
});
