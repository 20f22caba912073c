/**
 * Dense registration from descriptor volumes, after ConvexAdam (Siebert, Hansen & Heinrich 2021):
 *   1. a correlation cost (sum of squared descriptor differences) for every integer displacement in a
 *      cube of ±R voxels;
 *   2. coupled convex optimisation: alternately smooth the best displacements and pick, per voxel, the
 *      candidate minimising cost + θ·‖d − smoothed‖², with θ increasing;
 *   3. instance optimisation with Adam: a displacement (or, for a diffeomorphism, a stationary velocity
 *      integrated by scaling and squaring) minimising descriptor SSD after warping plus a diffusion
 *      regulariser.
 * It works on any descriptors (diffusion features, MIND, intensity patches) sampled on one lattice for
 * both images: the fixed descriptors at lattice voxels, the moving ones at the same world positions.
 * Displacements are in lattice voxel units, shape (3, w, h, d), component a along lattice axis a.
 */
import {
  F,
  arange,
  coupledArgmin,
  enableGrad,
  noGrad,
  optim,
  ssdCostVolume,
  stack,
  tidy,
  warpedSsd,
  zeros,
  type Tensor,
} from '../../engine/index.ts';
import { integer, number, bool } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';

export interface ConvexAdamOptions {
  /** Half-width of the displacement search cube, in lattice voxels (default 4). */
  searchRadius?: number;
  /** Weight of the diffusion regulariser in the Adam stage (default 1). */
  smoothness?: number;
  /** Adam iterations (default 80; 0 keeps the convex result). */
  iterations?: number;
  /** Adam step size in voxels (default 0.5). */
  learningRate?: number;
  /** Optimise a stationary velocity field and exponentiate it, so the result does not fold (default true). */
  diffeomorphic?: boolean;
  progress?: ProgressFn;
}

/** Identity sampling grid for a (w, h, d) lattice plus a displacement in voxels: (1, w, h, d, 3). */
function samplingGrid(displacement: Tensor, shape: readonly number[]): Tensor {
  return tidy(() => {
    const axes = shape.map((n, a) => {
      const view = [1, 1, 1];
      view[a] = n;
      return arange(0, n, 1).reshape(view);
    });
    // grid_sample normalises with align_corners false: x = 2(p + 0.5)/n − 1; its last axis is (d, h, w).
    const coords = [0, 1, 2].map((a) =>
      axes[a]
        .add(displacement.select(0, a))
        .add(0.5)
        .mul(2 / shape[a])
        .sub(1),
    );
    return stack([coords[2], coords[1], coords[0]], -1).unsqueeze(0);
  });
}

/** Samples volume (C, w, h, d) at lattice positions p + u(p) (trilinear, border values outside). */
export function warpLattice(volume: Tensor, displacement: Tensor): Tensor {
  return tidy(() =>
    F.gridSample(volume.unsqueeze(0), samplingGrid(displacement, volume.shape.slice(1)), {
      mode: 'bilinear',
      paddingMode: 'border',
      alignCorners: false,
    }).squeeze(0),
  );
}

/** exp(v) by scaling and squaring: u ← v/2^n, then n times u ← u + u∘(id + u). */
export function exponentiate(velocity: Tensor, squarings = 6): Tensor {
  return tidy(() => {
    let u = velocity.div(2 ** squarings);
    for (let i = 0; i < squarings; i++) u = u.add(warpLattice(u, u));
    return u;
  });
}

/** Box smoothing used by the convex stage: two passes of a 3³ mean (replicate borders). */
function smooth(u: Tensor): Tensor {
  return tidy(() => {
    let s = u.unsqueeze(0);
    for (let i = 0; i < 2; i++)
      s = F.avgPool3d(F.pad(s, [1, 1, 1, 1, 1, 1], { mode: 'replicate' }), 3, { stride: 1 });
    return s.squeeze(0);
  });
}

/**
 * Coupled convex optimisation over the candidate displacements (ConvexAdam's first stage) on the SSD
 * cost (w, h, d, K): the cost is compared with the coupling term at its own scale (mean cost μ), i.e.
 * argmin_k cost_k/μ + 10θ‖d_k − s‖², with θ increasing.
 */
function coupledConvex(cost: Tensor, r: number): Tensor {
  return tidy(() => {
    const mean = cost.mean().item() || 1;
    let displacement = coupledArgmin(cost, r);
    for (const theta of [0.003, 0.01, 0.03, 0.1, 0.3, 1]) {
      displacement = tidy(() => coupledArgmin(cost, r, smooth(displacement), theta * 10 * mean));
    }
    return smooth(displacement);
  });
}

/** Squared spatial differences of a displacement field, averaged (the diffusion regulariser). */
function diffusionPenalty(u: Tensor): Tensor {
  return tidy(() => {
    let total = zeros([]);
    for (let a = 1; a <= 3; a++) {
      const n = u.shape[a];
      if (n < 2) continue;
      total = total.add(
        u
          .narrow(a, 1, n - 1)
          .sub(u.narrow(a, 0, n - 1))
          .square()
          .mean(),
      );
    }
    return total;
  });
}

/**
 * Displacement (3, w, h, d) in lattice voxels that best maps fixed descriptors onto moving ones.
 * Descriptors are (C, w, h, d) on the same lattice.
 */
export function convexAdam(fixed: Tensor, moving: Tensor, options: ConvexAdamOptions = {}): Tensor {
  const r = integer('searchRadius', options.searchRadius ?? 4, { min: 1, max: 12 });
  const lambda = number('smoothness', options.smoothness ?? 1, { min: 0 });
  const iterations = integer('iterations', options.iterations ?? 80, { min: 0, max: 10000 });
  const lr = number('learningRate', options.learningRate ?? 0.5, { min: 0, exclusiveMin: true });
  const diffeomorphic = bool('diffeomorphic', options.diffeomorphic ?? true);
  const report = options.progress;

  report?.({ stage: 'correlation cost', done: 0, total: 1 });
  const initial = noGrad(() =>
    tidy(() => {
      const cost = ssdCostVolume(fixed, moving, r);
      report?.({ stage: 'correlation cost', done: 1, total: 1 });
      return coupledConvex(cost, r);
    }),
  );
  if (iterations === 0) return initial;

  // Descriptor scale so that the data term is about 1 whatever the descriptors are.
  const scale = noGrad(() => tidy(() => 1 / Math.max(1e-12, fixed.square().mean().item())));
  const parameter = initial.detach().requiresGrad_(true).keep();
  initial.dispose();
  const optimiser = new optim.Adam([parameter], { lr });
  try {
    for (let i = 0; i < iterations; i++) {
      optimiser.zeroGrad();
      enableGrad(() =>
        tidy(() => {
          const u = diffeomorphic ? exponentiate(parameter) : parameter;
          // The data term's gradient with respect to u comes from the fused kernel and enters by the
          // chain rule (∂(u·g)/∂u = g); the regulariser's and exponentiation's by autograd.
          const { gradient } = warpedSsd(moving, fixed, u.detach());
          u.mul(gradient.mul(scale)).sum().add(diffusionPenalty(parameter).mul(lambda)).backward();
        }),
      );
      optimiser.step();
      report?.({ stage: 'instance optimisation', done: i + 1, total: iterations });
    }
    return noGrad(() => tidy(() => (diffeomorphic ? exponentiate(parameter) : parameter.clone())));
  } finally {
    optimiser.dispose();
    parameter.dispose();
  }
}
