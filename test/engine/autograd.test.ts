import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  F,
  Generator,
  enableGrad,
  grad,
  isGradEnabled,
  noGrad,
  randn,
  tensor,
  type Tensor,
} from '../../src/engine/index.ts';

const close = (a: number[], b: number[], tol = 1e-5): void => {
  assert.equal(a.length, b.length);
  a.forEach((v, i) =>
    assert.ok(Math.abs(v - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `[${i}] ${v} vs ${b[i]}`),
  );
};

test('backward of x² gives 2x; gradients accumulate; zeroGrad drops them', () => {
  const x = tensor([1, 2, 3]).requiresGrad_();
  assert.equal(x.requiresGrad, true);
  assert.equal(x.grad, null);
  x.pow(2).sum().backward();
  assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
  x.mul(3).backward(tensor([1, 0, 2]));
  assert.deepEqual(x.grad!.toArray(), [5, 4, 12]);
  x.zeroGrad();
  assert.equal(x.grad, null);
  const y = x.mul(x).sum();
  y.backward(undefined, { retainGraph: true });
  y.backward();
  assert.deepEqual(x.grad!.toArray(), [4, 8, 12]);
  const z = x.exp().sum();
  z.backward();
  assert.throws(() => z.backward(), /Trying to backward through the graph a second time/);
});

test('noGrad and enableGrad scopes; detach stops gradients', () => {
  const x = tensor([1, 2]).requiresGrad_();
  const y = noGrad(() => {
    assert.equal(isGradEnabled(), false);
    const inner = enableGrad(() => x.mul(2));
    assert.equal(inner.requiresGrad, true);
    return x.mul(2);
  });
  assert.equal(isGradEnabled(), true);
  assert.equal(y.requiresGrad, false);
  assert.throws(
    () =>
      noGrad(() => {
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(isGradEnabled(), true);
  const d = x.detach();
  assert.equal(d.requiresGrad, false);
  x.mul(d).sum().backward();
  assert.deepEqual(x.grad!.toArray(), [1, 2]);
  assert.equal(x.isLeaf, true);
  assert.equal(x.mul(2).isLeaf, false);
});

test('functional grad: first and second derivatives of x³', () => {
  const x = tensor([1, -2, 0.5], { dtype: 'float64' }).requiresGrad_();
  const y = x.pow(3).sum();
  const [g] = grad(y, x, { createGraph: true });
  close(g!.toArray(), [3, 12, 0.75]);
  const [h] = grad(g!.sum(), x);
  close(h!.toArray(), [6, -12, 3]);
  assert.equal(x.grad, null);
  const u = tensor([1]).requiresGrad_();
  assert.deepEqual(
    grad(x.sum(), [x, u], { allowUnused: true }).map((t) => t?.toArray() ?? null),
    [[1, 1, 1], null],
  );
});

/** Central finite difference of scalar f with respect to every entry of `at` (float64). */
function numericGrad(f: (t: Tensor) => number, at: Tensor, eps = 1e-6): number[] {
  const base = at.toArray();
  return base.map((_, i) => {
    const plus = base.slice();
    const minus = base.slice();
    plus[i] += eps;
    minus[i] -= eps;
    const shape = [...at.shape];
    return (
      (f(tensor(plus, { dtype: 'float64' }).reshape(shape)) -
        f(tensor(minus, { dtype: 'float64' }).reshape(shape))) /
      (2 * eps)
    );
  });
}

test('gridSample is differentiable in the image and in the grid (finite differences)', () => {
  const g = new Generator(11);
  const x = randn([1, 2, 3, 4, 3], { generator: g, dtype: 'float64' });
  // Points away from voxel centres, so that trilinear interpolation is smooth there.
  const grid = randn([1, 2, 2, 1, 3], { generator: g, dtype: 'float64' }).mul(0.6);
  const w = randn([1, 2, 2, 2, 1], { generator: g, dtype: 'float64' });
  const loss = (img: Tensor, gr: Tensor): number =>
    F.gridSample(img, gr, { alignCorners: true }).mul(w).sum().item();
  const xg = x.clone().requiresGrad_();
  const gg = grid.clone().requiresGrad_();
  F.gridSample(xg, gg, { alignCorners: true }).mul(w).sum().backward();
  close(
    gg.grad!.toArray(),
    numericGrad((t) => loss(x, t), grid),
    1e-5,
  );
  close(
    xg.grad!.toArray(),
    numericGrad((t) => loss(t, grid), x),
    1e-5,
  );
});

test('conv3d weight gradient matches finite differences', () => {
  const g = new Generator(12);
  const x = randn([1, 2, 4, 4, 4], { generator: g, dtype: 'float64' });
  const w = randn([3, 2, 3, 3, 3], { generator: g, dtype: 'float64' });
  const r = randn([1, 3, 2, 2, 2], { generator: g, dtype: 'float64' });
  const wg = w.clone().requiresGrad_();
  F.conv3d(x, wg, null, { stride: 2, padding: 1 }).mul(r).sum().backward();
  const numeric = numericGrad((t) => F.conv3d(x, t, null, { stride: 2, padding: 1 }).mul(r).sum().item(), w);
  close(wg.grad!.toArray(), numeric, 1e-5);
});
