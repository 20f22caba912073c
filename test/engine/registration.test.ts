import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  F,
  Generator,
  arange,
  coupledArgmin,
  enableGrad,
  randn,
  dispose,
  sampleTrilinear,
  sampleTrilinearBackward,
  selfCompose,
  selfComposeBackward,
  ssdCostVolume,
  stack,
  tensor,
  tidy,
  warpedSsd,
  type Tensor,
} from '../../src/engine/index.ts';

const gen = new Generator(3);
const fixed = randn([5, 6, 7, 5], { generator: gen }).keep();
const moving = randn([5, 6, 7, 5], { generator: gen }).keep();
const maxError = (a: Tensor, b: Tensor) => tidy(() => a.sub(b).abs().max().item());

/** All displacements of the ±r cube in C order. */
const cube = (r: number) => {
  const out: number[][] = [];
  for (let a = -r; a <= r; a++)
    for (let b = -r; b <= r; b++) for (let c = -r; c <= r; c++) out.push([a, b, c]);
  return out;
};

test('ssdCostVolume: Σ_c (moving[p + d] − fixed[p])² with the moving image replicated at its border', () => {
  const r = 2;
  const cost = ssdCostVolume(fixed, moving, r);
  assert.deepEqual(cost.shape, [6, 7, 5, 125]);
  // Reference: replicate-pad the moving descriptors, shift, subtract, square, sum over channels.
  const expected = tidy(() => {
    const padded = F.pad(moving.unsqueeze(0), [r, r, r, r, r, r], { mode: 'replicate' }).squeeze(0);
    const per = cube(r).map(([a, b, c]) =>
      padded
        .narrow(1, r + a, 6)
        .narrow(2, r + b, 7)
        .narrow(3, r + c, 5)
        .sub(fixed)
        .square()
        .sum(0),
    );
    return stack(per, -1);
  });
  assert.ok(maxError(cost, expected) < 1e-4);
  // One value by hand: voxel (0, 3, 4) and displacement (−1, 2, 1) → moving voxel (0, 5, 4) after clamping.
  const k = cube(r).findIndex(([a, b, c]) => a === -1 && b === 2 && c === 1);
  const byHand = tidy(() =>
    moving
      .select(1, 0)
      .select(1, 5)
      .select(1, 4)
      .sub(fixed.select(1, 0).select(1, 3).select(1, 4))
      .square()
      .sum()
      .item(),
  );
  const got = tidy(() => cost.select(0, 0).select(0, 3).select(0, 4).select(0, k).item());
  assert.ok(Math.abs(got - byHand) < 1e-5, `${got} vs ${byHand}`);
});

test('coupledArgmin: argmin of cost + θ‖d − s‖² per voxel, plain argmin without s', () => {
  const r = 1;
  const cost = ssdCostVolume(fixed, moving, r);
  const candidates = cube(r);
  const plain = coupledArgmin(cost, r);
  const smoothed = randn([3, 6, 7, 5], { generator: gen });
  const coupled = coupledArgmin(cost, r, smoothed, 0.7);
  const c = cost.toTypedArray() as Float32Array;
  const s = smoothed.toTypedArray() as Float32Array;
  const p = plain.toTypedArray() as Float32Array;
  const q = coupled.toTypedArray() as Float32Array;
  const n = 6 * 7 * 5;
  for (let v = 0; v < n; v++) {
    const best = [Infinity, Infinity];
    const at = [0, 0];
    candidates.forEach((d, k) => {
      const values = [
        c[v * 27 + k],
        c[v * 27 + k] + 0.7 * d.reduce((sum, x, a) => sum + (x - s[a * n + v]) ** 2, 0),
      ];
      values.forEach((value, i) => {
        if (value < best[i]) [best[i], at[i]] = [value, k];
      });
    });
    for (let a = 0; a < 3; a++) {
      assert.equal(p[a * n + v], candidates[at[0]][a]);
      assert.equal(q[a * n + v], candidates[at[1]][a]);
    }
  }
  assert.throws(
    () => coupledArgmin(cost, 2),
    /cost must be a contiguous float32 \(w, h, d, \(2r \+ 1\)³\) tensor/,
  );
});

test('warpedSsd: loss and gradient equal grid_sample (bilinear, border) with autograd', () => {
  // Displacements up to ±3 voxels, so some samples leave the lattice and are clamped.
  const u = randn([3, 6, 7, 5], { generator: gen }).mul(1.5).keep();
  const { loss, gradient } = warpedSsd(moving, fixed, u);
  const reference = enableGrad(() =>
    tidy(() => {
      const p = u.detach().requiresGrad_(true);
      const shape = [6, 7, 5];
      const coords = [0, 1, 2].map((a) => {
        const view = [1, 1, 1];
        view[a] = shape[a];
        return arange(0, shape[a], 1)
          .reshape(view)
          .add(p.select(0, a))
          .add(0.5)
          .mul(2 / shape[a])
          .sub(1);
      });
      const grid = stack([coords[2], coords[1], coords[0]], -1).unsqueeze(0);
      const warped = F.gridSample(moving.unsqueeze(0), grid, {
        mode: 'bilinear',
        paddingMode: 'border',
        alignCorners: false,
      });
      const value = warped.squeeze(0).sub(fixed).square().mean();
      value.backward();
      return { loss: value.item(), gradient: p.grad!.clone() };
    }),
  );
  assert.ok(Math.abs(loss - reference.loss) < 1e-5 * reference.loss, `${loss} vs ${reference.loss}`);
  const scale = tidy(() => reference.gradient.abs().max().item());
  assert.ok(
    maxError(gradient, reference.gradient) < 1e-4 * scale,
    `gradient error ${maxError(gradient, reference.gradient)}`,
  );
});

test('warpedSsd on a sub-lattice: fixed voxel p at offset + stride·p of the moving lattice', () => {
  // Every second voxel from (1, 0, 1) of the 6 × 7 × 5 moving lattice: 3 × 4 × 2 fixed voxels.
  const sub = { offset: [1, 0, 1], stride: [2, 2, 2] };
  const fixedSub = randn([5, 3, 4, 2], { generator: gen });
  const u = randn([3, 3, 4, 2], { generator: gen }).mul(1.5);
  const { loss, gradient } = warpedSsd(moving, fixedSub, u, sub);
  // Reference: sample the moving descriptors at the positions (checked against grid_sample below).
  const reference = tidy(() => {
    const lattice = stack(
      [0, 1, 2].map((a) => {
        const view = [1, 1, 1];
        view[a] = u.shape[a + 1];
        return arange(0, u.shape[a + 1], 1)
          .mul(sub.stride[a])
          .add(sub.offset[a])
          .reshape(view)
          .expand(u.shape.slice(1));
      }),
      0,
    );
    const positions = lattice.add(u);
    const residual = sampleTrilinear(moving, positions).sub(fixedSub);
    const n = residual.shape.reduce((p, v) => p * v, 1);
    const back = sampleTrilinearBackward(moving, positions, residual.mul(2 / n));
    return { loss: residual.square().mean().item(), gradient: back.positions };
  });
  assert.ok(Math.abs(loss - reference.loss) < 1e-5 * reference.loss, `${loss} vs ${reference.loss}`);
  assert.ok(
    maxError(gradient, reference.gradient) < 1e-5,
    `gradient error ${maxError(gradient, reference.gradient)}`,
  );
  assert.throws(() => warpedSsd(moving, fixedSub, u, { offset: [0, 0], stride: [2, 2, 2] }), {
    message: /^sub-lattice: expected an offset and a stride of 3 integers each/,
  });
  dispose([fixedSub, u, gradient]);
});

test('sampleTrilinear and its backward equal grid_sample (bilinear, border) and autograd on another grid', () => {
  const volume = randn([4, 5, 6, 7], { generator: gen });
  // Positions on a 3×4×5 lattice, in voxels of the volume, some outside it (clamped).
  const positions = tidy(() =>
    randn([3, 3, 4, 5], { generator: gen })
      .mul(3)
      .add(tensor([2, 2.5, 3]).reshape(3, 1, 1, 1)),
  );
  const upstream = randn([4, 3, 4, 5], { generator: gen });
  const reference = enableGrad(() =>
    tidy(() => {
      const v = volume.detach().requiresGrad_(true);
      const p = positions.detach().requiresGrad_(true);
      // Voxel → grid_sample's normalised coordinates (align_corners false), last axis (d, h, w).
      const sizes = [5, 6, 7];
      const g = [2, 1, 0].map((a) =>
        p
          .select(0, a)
          .add(0.5)
          .mul(2 / sizes[a])
          .sub(1),
      );
      const out = F.gridSample(v.unsqueeze(0), stack(g, -1).unsqueeze(0), {
        mode: 'bilinear',
        paddingMode: 'border',
        alignCorners: false,
      }).squeeze(0);
      out.mul(upstream).sum().backward();
      return { out: out.detach(), volume: v.grad!.clone(), positions: p.grad!.clone() };
    }),
  );
  assert.ok(maxError(sampleTrilinear(volume, positions), reference.out) < 1e-5);
  const back = sampleTrilinearBackward(volume, positions, upstream);
  assert.ok(maxError(back.volume, reference.volume) < 1e-4);
  assert.ok(maxError(back.positions, reference.positions) < 1e-4);
});

test('selfCompose and its backward equal u + grid_sample(u, id + u) and autograd through both uses of u', () => {
  const dims = [5, 6, 4];
  // Displacements of a few voxels, so some positions leave the lattice (clamped).
  const u = randn([3, ...dims], { generator: gen })
    .mul(1.5)
    .keep();
  const upstream = randn([3, ...dims], { generator: gen }).keep();
  const reference = enableGrad(() =>
    tidy(() => {
      const v = u.detach().requiresGrad_(true);
      // Voxel positions p + u(p) → grid_sample's normalised coordinates (align_corners false), last axis (d, h, w).
      const g = [2, 1, 0].map((a) => {
        const view = [1, 1, 1];
        view[a] = dims[a];
        const at = arange(0, dims[a], 1).reshape(view).expand(dims);
        return v
          .select(0, a)
          .add(at)
          .add(0.5)
          .mul(2 / dims[a])
          .sub(1);
      });
      const sampled = F.gridSample(v.unsqueeze(0), stack(g, -1).unsqueeze(0), {
        mode: 'bilinear',
        paddingMode: 'border',
        alignCorners: false,
      }).squeeze(0);
      const out = v.add(sampled);
      out.mul(upstream).sum().backward();
      return { out: out.detach(), gradient: v.grad!.clone() };
    }),
  );
  assert.ok(maxError(selfCompose(u), reference.out) < 1e-5);
  assert.ok(maxError(selfComposeBackward(u, upstream), reference.gradient) < 1e-4);
  assert.throws(() => selfCompose(randn([2, 3, 3, 3])), /displacement: expected a \(3, w, h, d\) tensor/);
  assert.throws(
    () => selfComposeBackward(u, randn([3, 2, 2, 2])),
    /displacement gradient: expected a \(3, 5, 6, 4\) tensor/,
  );
});
