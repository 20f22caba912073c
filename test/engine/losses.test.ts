/**
 * The fused registration losses (native/ops_losses.cc): local NCC and the folding hinge against their
 * definitions evaluated voxel by voxel in float64, their gradients against central differences of those
 * definitions, with one and two threads; scalarWithGradient hands the gradients to autograd.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Generator,
  enableGrad,
  foldingHinge,
  localNcc,
  noGrad,
  rand,
  randn,
  scalarWithGradient,
  tensor,
  dispose,
  type Tensor,
} from '../../src/engine/index.ts';
import { withEachThreadCount } from '../helpers/tensors.ts';

/** −mean of cov²/(var_a·var_b + eps) over box windows clipped to the grid, in float64. */
function nccReference(
  a: Float64Array,
  b: Float64Array,
  dims: number[],
  window: number[],
  eps: number,
): number {
  const [W, H, D] = dims;
  const r = window.map((w) => (w - 1) / 2);
  let total = 0;
  for (let x = 0; x < W; x++)
    for (let y = 0; y < H; y++)
      for (let z = 0; z < D; z++) {
        let [n, sa, sb, saa, sbb, sab] = [0, 0, 0, 0, 0, 0];
        for (let i = Math.max(0, x - r[0]); i <= Math.min(W - 1, x + r[0]); i++)
          for (let j = Math.max(0, y - r[1]); j <= Math.min(H - 1, y + r[1]); j++)
            for (let k = Math.max(0, z - r[2]); k <= Math.min(D - 1, z + r[2]); k++) {
              const q = (i * H + j) * D + k;
              n++;
              sa += a[q];
              sb += b[q];
              saa += a[q] * a[q];
              sbb += b[q] * b[q];
              sab += a[q] * b[q];
            }
        const [ma, mb] = [sa / n, sb / n];
        const cov = sab / n - ma * mb;
        total += cov ** 2 / ((saa / n - ma * ma) * (sbb / n - mb * mb) + eps);
      }
  return -total / (W * H * D);
}

/**
 * Σ over cells of the mean over `corners` of max(0, margin − det(I + ∇u))², u (3, W, H, D) in float64:
 * at corner s of the cell at p, the derivative along a is u(p + s with s_a = 1) − u(p + s with s_a = 0).
 */
function hingeReference(
  u: Float64Array,
  dims: number[],
  margin: number,
  corners: number[][] = [[0, 0, 0]],
): number {
  const [W, H, D] = dims;
  const n = W * H * D;
  const at = (c: number, p: number[]) => u[c * n + (p[0] * H + p[1]) * D + p[2]];
  let total = 0;
  for (let x = 0; x < W - 1; x++)
    for (let y = 0; y < H - 1; y++)
      for (let z = 0; z < D - 1; z++)
        for (const s of corners) {
          const end = (a: number, v: number) => [x, y, z].map((p, e) => p + (e === a ? v : s[e]));
          const J = [0, 1, 2].map((c) =>
            [0, 1, 2].map((a) => at(c, end(a, 1)) - at(c, end(a, 0)) + (c === a ? 1 : 0)),
          );
          const det =
            J[0][0] * (J[1][1] * J[2][2] - J[1][2] * J[2][1]) -
            J[0][1] * (J[1][0] * J[2][2] - J[1][2] * J[2][0]) +
            J[0][2] * (J[1][0] * J[2][1] - J[1][1] * J[2][0]);
          total += Math.max(0, margin - det) ** 2 / corners.length;
        }
  return total;
}

const ALL_CORNERS = [0, 1, 2, 3, 4, 5, 6, 7].map((k) => [(k >> 2) & 1, (k >> 1) & 1, k & 1]);

/** Central differences of f at a few entries of x (step h), against the gradient g. */
function checkGradient(
  f: (x: Float64Array) => number,
  x: Float64Array,
  g: Float32Array,
  entries: number[],
  h: number,
) {
  for (const i of entries) {
    const [plus, minus] = [Float64Array.from(x), Float64Array.from(x)];
    plus[i] += h;
    minus[i] -= h;
    const numeric = (f(plus) - f(minus)) / (2 * h);
    const scale = Math.max(1e-3, Math.abs(numeric));
    assert.ok(Math.abs(g[i] - numeric) / scale < 2e-2, `entry ${i}: ${g[i]} vs ${numeric}`);
  }
}

const float64 = (t: { toTypedArray(): unknown }) => Float64Array.from(t.toTypedArray() as Float32Array);

test('local NCC: the loss and both gradients match the definition (borders clipped, 1 and 2 threads)', () => {
  const dims = [7, 6, 5];
  const generator = new Generator(5);
  const a = rand([1, ...dims], { generator });
  const b = a.mul(0.6).add(rand([1, ...dims], { generator }).mul(0.4));
  const [av, bv] = [float64(a), float64(b)];
  for (const window of [
    [3, 3, 3],
    [5, 3, 1],
    [9, 9, 9],
  ])
    withEachThreadCount([1, 2], () => {
      const { loss, gradA, gradB } = localNcc(a, b, window);
      const expected = nccReference(av, bv, dims, window, 1e-5);
      assert.ok(Math.abs(loss - expected) < 1e-5, `window ${window}: ${loss} vs ${expected}`);
      const sides: [Tensor, (x: Float64Array) => number, Float64Array][] = [
        [gradA, (x) => nccReference(x, bv, dims, window, 1e-5), av],
        [gradB, (x) => nccReference(av, x, dims, window, 1e-5), bv],
      ];
      for (const [gradient, f, at] of sides)
        checkGradient(f, at, gradient.toTypedArray() as Float32Array, [0, 37, 104, 209], 1e-3);
      dispose([gradA, gradB]);
    });
  // Two volumes: the loss is the mean of theirs.
  const both = localNcc(a.repeat(2, 1, 1, 1), b.repeat(2, 1, 1, 1), [3, 3, 3]);
  assert.ok(Math.abs(both.loss - nccReference(av, bv, dims, [3, 3, 3], 1e-5)) < 1e-5);
  assert.throws(() => localNcc(a, b, [4, 3, 3]), {
    message: /^local NCC window: expected three odd numbers of voxels, got \[4, 3, 3\]$/,
  });
  assert.throws(() => localNcc(a, b.reshape(1, 7, 5, 6), [3, 3, 3]), {
    message:
      /^local NCC images: expected two \(V, W, H, D\) tensors of one shape, got "Tensor\(shape=\[1, 7, 6, 5\]/,
  });
});

test('folding hinge, at one corner or all eight: the loss and its gradient match the definition; a translation is not penalised', () => {
  const dims = [6, 5, 4];
  const u = randn([1, 3, ...dims], { generator: new Generator(6) }).mul(0.5);
  const uv = float64(u);
  for (const corners of [1, 8] as const)
    withEachThreadCount([1, 2], () => {
      const { loss, gradient } = foldingHinge(u, 0.1, corners);
      const reference = (x: Float64Array) =>
        hingeReference(x, dims, 0.1, corners === 1 ? undefined : ALL_CORNERS);
      const expected = reference(uv);
      assert.ok(expected > 1, 'the random field folds');
      assert.ok(Math.abs(loss - expected) / expected < 1e-5, `${corners} corners: ${loss} vs ${expected}`);
      const entries = [0, 31, 77, 150, 359];
      checkGradient(reference, uv, gradient.toTypedArray() as Float32Array, entries, 1e-4);
      gradient.dispose();
    });
  // Two fields: the sum of theirs.
  const two = foldingHinge(u.repeat(2, 1, 1, 1, 1), 0.1, 8);
  assert.ok(Math.abs(two.loss - 2 * hingeReference(uv, dims, 0.1, ALL_CORNERS)) < 1e-4 * two.loss);
  two.gradient.dispose();
  // A translation has det J = 1 everywhere: nothing below the margin.
  const shift = foldingHinge(
    tensor([0.3, -2, 5])
      .reshape(1, 3, 1, 1, 1)
      .expand(1, 3, ...dims)
      .contiguous(),
    0.1,
  );
  assert.equal(shift.loss, 0);
  assert.equal(shift.gradient.abs().max().item(), 0);
  assert.throws(() => foldingHinge(randn([1, 2, 4, 4, 4]), 0.1), {
    message:
      /^folding displacement: expected a \(B, 3, w, h, d\) tensor with 2 or more voxels per axis, got "Tensor\(shape=\[1, 2, 4, 4, 4\]/,
  });
});

test('scalarWithGradient: the value given, the gradient given, reaching inputs through autograd', () => {
  const x = rand([3, 4], { generator: new Generator(7) }).requiresGrad_(true);
  const g = rand([12], { generator: new Generator(8) });
  const y = enableGrad(() => {
    // Through an op: ∂/∂x of L(2x) is 2·g.
    const loss = scalarWithGradient(1.25, [[x.mul(2), g]]);
    assert.equal(loss.item(), 1.25);
    loss.backward();
    return loss;
  });
  const expected = g.mul(2).reshape(3, 4);
  assert.ok(x.grad!.sub(expected).abs().max().item() < 1e-7);
  // Without grad mode, or for inputs that need none, it is the value alone.
  const plain = noGrad(() => scalarWithGradient(2, [[x, g]]));
  assert.equal(plain.requiresGrad, false);
  assert.equal(plain.item(), 2);
  for (const t of [x, g, y, expected, plain]) t.dispose();
});
