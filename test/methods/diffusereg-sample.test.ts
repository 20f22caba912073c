/**
 * DiffuseReg's sampler with analytic denoisers. For Gaussian data x₀ ~ N(μ, s²I) the optimal noise
 * prediction is E[ε | x_t] = √(1−ᾱ_t)·(x_t − √ᾱ_t·μ)/(ᾱ_t·s² + 1 − ᾱ_t); s = 0 is a single field μ,
 * for which every step predicts x̂₀ = μ exactly. ᾱ is computed here from the DiffuseReg schedule's
 * definition (T = 2000, linear β 1e-6 → 1e-2), not taken from the scheduler.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cat, Generator, randn, stack, tensor, tidy, zeros, type Tensor } from '../../src/engine/index.ts';
import { Grid, jacobianDeterminant, tensorToVoxels } from '../../src/geometry/index.ts';
import { readNifti } from '../../src/io/index.ts';
import { DiffuseRegDenoiser } from '../../src/models/diffusereg/index.ts';
import type { ImagePair } from '../../src/methods/diffusereg/data.ts';
import {
  forwardJacobianDeterminant,
  nccLoss,
  spatialTransformer,
  ssimLoss,
} from '../../src/models/losses/index.ts';
import {
  sampleFlow,
  sampleWithNetwork,
  type FlowDenoiser,
  type FlowNormalisation,
  type SampleOptions,
  type SamplingStep,
} from '../../src/methods/diffusereg/sample.ts';
import { watchSampling } from '../../src/methods/diffusereg/watch.ts';

const ABAR = (() => {
  const out: number[] = [];
  let product = 1;
  for (let t = 0; t < 2000; t++) {
    product *= 1 - (1e-6 + (t * (1e-2 - 1e-6)) / 1999);
    out.push(product);
  }
  return out;
})();

const W = 12;
const H = 10;
const D = 6;
const FLOW = [1, 3, W, H, D];
const NORMALISATION: FlowNormalisation = { mean: [0.5, -1, 0.25], std: [2, 1.5, 0.5] };

/** The optimal ε̂ for data N(mu, s²I) (normalised space). */
function gaussianData(mu: Tensor, s = 0): FlowDenoiser {
  return (xt, t) => {
    const a = ABAR[t];
    return xt.sub(mu.mul(Math.sqrt(a))).mul(Math.sqrt(1 - a) / (a * s * s + 1 - a));
  };
}

/** A smooth blob and the same blob one voxel further along i. */
function blobPair(w = W, h = H, d = D): ImagePair {
  const blob = (shift: number) => {
    const v = new Float32Array(w * h * d);
    for (let i = 0; i < w; i++)
      for (let j = 0; j < h; j++)
        for (let k = 0; k < d; k++) {
          const r2 =
            ((i - shift - w / 2) / (w / 5)) ** 2 +
            ((j - h / 2) / (h / 5)) ** 2 +
            ((k - d / 2) / (d / 3)) ** 2;
          v[(i * h + j) * d + k] = Math.exp(-r2 / 2);
        }
    return tensor([...v])
      .reshape([1, 1, w, h, d])
      .keep();
  };
  return { fixed: blob(0), moving: blob(1) };
}

const PAIR = blobPair();
const values = (t: Tensor) => t.toTypedArray() as Float32Array;
const denormalised = (x: Tensor, n = NORMALISATION) =>
  tidy(() => x.mul(tensor(n.std).reshape([1, 3, 1, 1, 1])).add(tensor(n.mean).reshape([1, 3, 1, 1, 1])));

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

/** Σ over components, axes and voxels of squared forward differences of a (1, 3, w, h, d) field. */
function gradientEnergy(u: Float32Array): number {
  const at = (c: number, i: number, j: number, k: number) => u[((c * W + i) * H + j) * D + k];
  let sum = 0;
  for (let c = 0; c < 3; c++)
    for (let i = 0; i < W; i++)
      for (let j = 0; j < H; j++)
        for (let k = 0; k < D; k++) {
          if (i + 1 < W) sum += (at(c, i + 1, j, k) - at(c, i, j, k)) ** 2;
          if (j + 1 < H) sum += (at(c, i, j + 1, k) - at(c, i, j, k)) ** 2;
          if (k + 1 < D) sum += (at(c, i, j, k + 1) - at(c, i, j, k)) ** 2;
        }
  return sum;
}

/** Fraction of voxels with det J ≤ 0 (geometry's central-difference Jacobian, unit voxels). */
function foldedFraction(u: Tensor): number {
  const grid = new Grid({ dims: [W, H, D] });
  const det = jacobianDeterminant(grid.withData(tensorToVoxels(u.squeeze(0)), 3)).data;
  return det.filter((v) => v <= 0).length / det.length;
}

test('a single data field: DDIM with any number of steps and DDPM with all 2000 return it', () => {
  const x0 = randn(FLOW, { generator: new Generator(3) });
  const expected = values(denormalised(x0));
  for (const steps of [1, 3, 10, 50]) {
    const { field, stepsRun, std } = sampleFlow(gaussianData(x0), PAIR, {
      normalisation: NORMALISATION,
      sampler: 'ddim',
      steps,
    });
    assert.deepEqual(stepsRun, [steps]);
    assert.equal(std, undefined);
    // The last step moves to ᾱ = 1: x̂₀ at t = 0, exact up to float32 rounding of |x| ≲ 4 (times std ≤ 2).
    const error = maxAbsDifference(values(field), expected);
    assert.ok(error < 1e-5, `DDIM-${steps}: max error ${error}`);
  }
  // DDPM's last step (t = 0) adds no noise and returns x̂₀ with coefficient β_0/(1 − ᾱ_0) = 1, and x̂₀
  // is the data field whatever x_1 is: the same float32 rounding bound holds after 2000 noisy steps.
  const ddpm = sampleFlow(gaussianData(x0), PAIR, { normalisation: NORMALISATION, sampler: 'ddpm' });
  assert.deepEqual(ddpm.stepsRun, [2000]);
  const error = maxAbsDifference(values(ddpm.field), expected);
  assert.ok(error < 1e-5, `DDPM-2000: max error ${error}`);
});

test("the denoiser's prediction type: x̂₀- and v-predicting forms of the optimal denoiser sample what the ε form samples", () => {
  const mu = randn(FLOW, { generator: new Generator(6) });
  const s = 0.5;
  const eps = gaussianData(mu, s);
  // The same optimal denoiser written as x̂₀ = (x_t − √(1−ᾱ)·ε̂)/√ᾱ and v̂ = √ᾱ·ε̂ − √(1−ᾱ)·x̂₀.
  const x0: FlowDenoiser = (xt, t, pair) =>
    xt.sub(eps(xt, t, pair).mul(Math.sqrt(1 - ABAR[t]))).div(Math.sqrt(ABAR[t]));
  const v: FlowDenoiser = (xt, t, pair) =>
    eps(xt, t, pair)
      .mul(Math.sqrt(ABAR[t]))
      .sub(x0(xt, t, pair).mul(Math.sqrt(1 - ABAR[t])));
  for (const sampler of ['ddim', 'ddpm'] as const) {
    const o: SampleOptions = {
      normalisation: NORMALISATION,
      sampler,
      steps: sampler === 'ddim' ? 20 : 2000,
      seed: 2,
    };
    const reference = values(sampleFlow(eps, PAIR, o).field);
    for (const [prediction, denoise] of [
      ['sample', x0],
      ['v_prediction', v],
    ] as const) {
      const error = maxAbsDifference(
        values(sampleFlow(denoise, PAIR, { ...o, prediction }).field),
        reference,
      );
      assert.ok(error < 1e-3, `${sampler} ${prediction}: max difference ${error}`);
    }
  }
  // A network trained for x₀ but sampled as ε (the wrong type) gives another field: the type matters.
  const wrong = values(sampleFlow(x0, PAIR, { normalisation: NORMALISATION, steps: 20 }).field);
  const right = values(
    sampleFlow(x0, PAIR, { normalisation: NORMALISATION, steps: 20, prediction: 'sample' }).field,
  );
  assert.ok(maxAbsDifference(wrong, right) > 0.1);
});

test('seeds: the same seed gives the same samples, another seed others; N samples give their mean and std', () => {
  const mu = randn(FLOW, { generator: new Generator(4) });
  const s = 0.5;
  const options: SampleOptions = { normalisation: NORMALISATION, sampler: 'ddpm', seed: 5 };
  const one = values(sampleFlow(gaussianData(mu, s), PAIR, options).field);
  assert.deepEqual(values(sampleFlow(gaussianData(mu, s), PAIR, options).field), one);
  const other = values(sampleFlow(gaussianData(mu, s), PAIR, { ...options, seed: 6 }).field);
  assert.ok(maxAbsDifference(one, other) > 0.1, 'another seed, another sample');
  // DDPM draws from the data distribution: the sample's spread about μ is s, times each axis's std.
  const expectedMean = values(denormalised(mu));
  const n = W * H * D;
  NORMALISATION.std.forEach((sd, c) => {
    let sum = 0;
    for (let v = c * n; v < (c + 1) * n; v++) sum += (one[v] - expectedMean[v]) ** 2;
    const spread = Math.sqrt(sum / n) / sd;
    assert.ok(Math.abs(spread - s) < 0.1 * s, `component ${c}: spread ${spread} vs ${s}`);
  });

  const finals: Float32Array[] = [];
  const three = sampleFlow(gaussianData(mu, s), PAIR, {
    ...options,
    samples: 3,
    onStep: (step) => {
      if (step.last) finals.push(values(step.prediction).slice());
    },
  });
  assert.deepEqual(three.stepsRun, [2000, 2000, 2000]);
  assert.equal(finals.length, 3);
  // The generator is shared in order: the first of three samples is the single sample of that seed.
  assert.deepEqual(finals[0], one);
  const mean = values(three.field);
  const std = values(three.std!);
  assert.deepEqual([...three.std!.shape], FLOW);
  let positive = 0;
  for (let v = 0; v < mean.length; v++) {
    const m = (finals[0][v] + finals[1][v] + finals[2][v]) / 3;
    const sd = Math.sqrt(finals.reduce((acc, f) => acc + (f[v] - m) ** 2, 0) / 2);
    assert.ok(Math.abs(mean[v] - m) < 1e-5 && Math.abs(std[v] - sd) < 1e-5, `voxel ${v}`);
    if (std[v] > 0) positive++;
  }
  assert.equal(positive, mean.length);
});

test('guidance: smoothness and folding penalties lower theirs, similarity its dissimilarity; strengths 0 change nothing', () => {
  const unit: FlowNormalisation = { mean: [0, 0, 0], std: [1, 1, 1] };
  const rough = randn(FLOW, { generator: new Generator(8) });
  const ddim = { normalisation: NORMALISATION, sampler: 'ddim', steps: 5 } as const;
  const plain = values(sampleFlow(gaussianData(rough), PAIR, ddim).field);
  const zero = sampleFlow(gaussianData(rough), PAIR, {
    ...ddim,
    guidance: { folding: 0, smoothness: 0, similarity: 0 },
  });
  assert.deepEqual(values(zero.field), plain);
  const smoothed = values(
    sampleFlow(gaussianData(rough), PAIR, { ...ddim, guidance: { smoothness: 0.05 } }).field,
  );
  const [before, after] = [gradientEnergy(plain), gradientEnergy(smoothed)];
  assert.ok(after < 0.8 * before, `‖∇φ‖²: ${after} vs ${before} unguided`);

  // u_i = 2.2·sin(2πi/w) folds (1 + ∂u_i/∂i ≤ 0) where the sine falls steepest. With this denoiser
  // every step predicts the data field again, so the result is x₀* moved by the last step's guidance
  // alone: one gradient step, which unfolds a mild fold (a deep one needs the steps to accumulate).
  const sine = Array.from({ length: W }, (_, k) => 2.2 * Math.sin((2 * Math.PI * k) / W));
  const folds = tidy(() =>
    cat([tensor(sine).reshape([1, 1, W, 1, 1]).expand([1, 1, W, H, D]), zeros([1, 2, W, H, D])], 1),
  );
  const unguided = sampleFlow(gaussianData(folds), PAIR, { ...ddim, normalisation: unit }).field;
  const unfolded = sampleFlow(gaussianData(folds), PAIR, {
    ...ddim,
    normalisation: unit,
    guidance: { folding: 0.5 },
  }).field;
  const [folded, remaining] = [foldedFraction(unguided), foldedFraction(unfolded)];
  assert.ok(folded > 0.05, `the data field folds (${folded})`);
  assert.ok(remaining < folded / 2, `det J ≤ 0: ${remaining} vs ${folded} unguided`);

  for (const measure of ['ncc', 'ssim'] as const) {
    const dissimilarity = (u: Tensor) =>
      tidy(() => {
        const warped = spatialTransformer(PAIR.moving, u);
        const options = { window: [9, 9, 3] };
        return measure === 'ncc'
          ? nccLoss(PAIR.fixed, warped, options).item() + 1
          : ssimLoss(PAIR.fixed, warped, options).item();
      });
    const still = zeros(FLOW);
    // The blob moved one voxel along i: guidance from the identity pulls toward that shift.
    const identity = sampleFlow(gaussianData(still), PAIR, { ...ddim, normalisation: unit }).field;
    const guided = sampleFlow(gaussianData(still), PAIR, {
      ...ddim,
      normalisation: unit,
      guidance: { similarity: 0.02, measure },
    }).field;
    const [d0, d1] = [dissimilarity(identity), dissimilarity(guided)];
    assert.ok(d1 < d0, `${measure}: 1 − similarity ${d1} vs ${d0} unguided`);
  }
});

test("the folding penalty's Jacobian: det(I + A) everywhere for an affine field u(x) = A·x", () => {
  const A = [
    [0.2, -0.3, 0.1],
    [0.05, -0.4, 0.25],
    [-0.1, 0.15, 0.3],
  ];
  const u = tidy(() => {
    const axis = (n: number, a: number) => {
      const shape = [1, 1, 1];
      shape[a] = n;
      return tensor(Array.from({ length: n }, (_, k) => k)).reshape(shape);
    };
    const [i, j, k] = [axis(W, 0), axis(H, 1), axis(D, 2)];
    const component = (c: number) => i.mul(A[c][0]).add(j.mul(A[c][1])).add(k.mul(A[c][2])).expand([W, H, D]);
    return stack([component(0), component(1), component(2)], 0).unsqueeze(0);
  });
  const m = A.map((row, r) => row.map((v, c) => v + (r === c ? 1 : 0)));
  const expected =
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
    m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  const det = forwardJacobianDeterminant(u);
  assert.deepEqual([...det.shape], [1, W - 1, H - 1, D - 1]);
  for (const v of values(det)) assert.ok(Math.abs(v - expected) < 1e-5, `${v} vs ${expected}`);
});

test('early stop: under DDIM the single-field prediction is constant, so a tolerance stops at the second step', () => {
  const x0 = randn(FLOW, { generator: new Generator(9) });
  const seen: Omit<SamplingStep, 'prediction'>[] = [];
  const result = sampleFlow(gaussianData(x0), PAIR, {
    normalisation: NORMALISATION,
    steps: 10,
    tolerance: 0.01,
    onStep: ({ prediction, ...rest }) => {
      assert.deepEqual([...prediction.shape], FLOW);
      seen.push(rest);
    },
  });
  assert.deepEqual(result.stepsRun, [2]);
  assert.deepEqual(seen, [
    { sample: 0, step: 1, steps: 10, timestep: 1800, last: false },
    { sample: 0, step: 2, steps: 10, timestep: 1600, last: true },
  ]);
  // φ̂₀ at step 2 (t = 1600): x₀* up to float32 rounding amplified by 1/√ᾱ_1600 ≈ 24.
  const error = maxAbsDifference(values(result.field), values(denormalised(x0)));
  assert.ok(error < 1e-3, `max error ${error}`);
  const all = sampleFlow(gaussianData(x0), PAIR, { normalisation: NORMALISATION, steps: 10 });
  assert.deepEqual(all.stepsRun, [10]);
});

test('watch: every 2 of 6 DDIM steps, the field and warped image as NIfTI and a strip fixed | warped ×3 | moving', () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffusereg-watch-'));
  try {
    const grid = new Grid({ dims: [W, H, D], spacing: [3, 3, 10], origin: [5, -7, 2] });
    // One voxel along i everywhere, the blob's shift.
    const shift = tidy(() => cat([zeros([1, 1, W, H, D]).add(1), zeros([1, 2, W, H, D])], 1));
    const unit: FlowNormalisation = { mean: [0, 0, 0], std: [1, 1, 1] };
    const watch = watchSampling({ dir: join(dir, 'watch'), every: 2, grid, images: PAIR });
    sampleFlow(gaussianData(shift), PAIR, { normalisation: unit, steps: 6, onStep: watch.onStep });
    assert.deepEqual(watch.steps, [2, 4, 6]);
    for (const step of ['0002', '0004', '0006']) {
      const field = readNifti(join(dir, 'watch', `step-${step}-field.nii.gz`));
      assert.deepEqual([field.dims, field.components], [[W, H, D], 3]);
      // One voxel along i is 3 mm along x in world mm (identity direction).
      const [x, y, z] = [0, 1, 2].map((c) => field.data[c * field.size + field.offset(4, 5, 3)]);
      assert.ok(Math.abs(x - 3) < 1e-4 && Math.abs(y) < 1e-4 && Math.abs(z) < 1e-4, `${x}, ${y}, ${z}`);
      const warped = readNifti(join(dir, 'watch', `step-${step}-warped.nii.gz`));
      assert.ok(warped.sameGrid(grid));
      // Warped by the shift, the moving blob is back on the fixed one.
      const fixed = values(PAIR.fixed);
      const at = (i: number, j: number, k: number) => fixed[(i * H + j) * D + k];
      assert.ok(Math.abs(warped.data[warped.offset(4, 5, 3)] - at(4, 5, 3)) < 1e-5);
    }
    assert.equal(existsSync(join(dir, 'watch', 'step-0003-field.nii.gz')), false);
    const png = readFileSync(join(dir, 'watch', 'strip.png'));
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [(2 + 3) * W, H]);
    assert.ok(watch.strip().equals(png));
    // Without a folder: the same strip, in memory only.
    const memory = watchSampling({ every: 2, grid, images: PAIR });
    sampleFlow(gaussianData(shift), PAIR, { normalisation: unit, steps: 6, onStep: memory.onStep });
    assert.ok(memory.strip().equals(png));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad options and images are refused with one-line messages before any step', () => {
  const x0 = zeros(FLOW);
  let calls = 0;
  const denoise: FlowDenoiser = (xt, t, images) => {
    calls++;
    return gaussianData(x0)(xt, t, images);
  };
  const refuse = (o: Partial<SampleOptions>, message: RegExp, images = PAIR) =>
    assert.throws(
      () => sampleFlow(denoise, images, { normalisation: NORMALISATION, ...o }),
      (e: Error) => e.name === 'DiffregError' && !e.message.includes('\n') && message.test(e.message),
    );
  refuse({ steps: 0 }, /^steps: expected an integer in \[1, 2000\], got 0$/);
  refuse({ steps: 2001 }, /^steps: expected an integer in \[1, 2000\]/);
  refuse({ sampler: 'ddpm', steps: 50 }, /^steps: expected 2000 with the ddpm sampler .*, got 50$/);
  refuse({ sampler: 'euler' as never }, /^sampler: expected one of ddpm, ddim, got "euler"$/);
  refuse(
    { prediction: 'noise' as never },
    /^prediction: expected one of epsilon, sample, v_prediction, got "noise"$/,
  );
  refuse({ samples: 0 }, /^samples: expected an integer >= 1, got 0$/);
  refuse({ seed: -1 }, /^seed: /);
  refuse({ tolerance: -0.1 }, /^tolerance: expected a finite number >= 0, got -0.1$/);
  refuse({ guidance: { smoothness: -1 } }, /^guidance.smoothness: expected a finite number >= 0, got -1$/);
  refuse({ guidance: { folding: NaN } }, /^guidance.folding: /);
  refuse({ guidance: { measure: 'mi' as never } }, /^guidance.measure: expected one of ncc, ssim, got "mi"$/);
  refuse(
    { normalisation: { mean: [0, 0, 0], std: [1, 0, 1] } },
    /^normalisation.std\[1\]: expected a finite number > 0/,
  );
  refuse({ normalisation: undefined as never }, /^normalisation.mean: expected three finite numbers/);
  refuse({}, /^moving image: expected \[1, 1, 12, 10, 6\] as the fixed image/, {
    fixed: PAIR.fixed,
    moving: zeros([1, 1, W, H, 4]),
  });
  refuse({}, /^fixed image: expected \(1, 1, w, h, d\)/, {
    fixed: zeros([W, H, D]),
    moving: zeros([W, H, D]),
  });
  assert.equal(calls, 0);
  const grid = new Grid({ dims: [W, H, D] });
  assert.throws(
    () => watchSampling({ dir: '/tmp/x', every: 0, grid, images: PAIR }),
    /^DiffregError: every: expected an integer >= 1, got 0$/,
  );
  assert.throws(
    () => watchSampling({ dir: '/tmp/x', every: 1, grid: new Grid({ dims: [W, H, 4] }), images: PAIR }),
    /^DiffregError: watch fixed image: expected \[1, 1, 12, 10, 4\] \(the grid\)/,
  );
});

test('the network as denoiser: image tokens once, the same field as its forward pass at every step', () => {
  const config = { gridSize: [64, 16, 8] as [number, number, number], featureSize: 6 };
  const net = new DiffuseRegDenoiser(config);
  net.eval();
  const pair = blobPair(64, 16, 8);
  const options: SampleOptions = { normalisation: NORMALISATION, steps: 2, seed: 1 };
  const forward = sampleFlow(
    (xt, t, images) => net.forward(xt, tensor([t], { dtype: 'int64' }), images.fixed, images.moving),
    pair,
    options,
  );
  const tokens = sampleWithNetwork(net, pair, options);
  assert.ok(maxAbsDifference(values(tokens.field), values(forward.field)) < 1e-4);
});
