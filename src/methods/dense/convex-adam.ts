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
  coupledArgmin,
  dispose,
  enableGrad,
  noGrad,
  optim,
  ssdCostVolume,
  tidy,
  displacedPositions,
  sampleTrilinear,
  selfCompose,
  selfComposeBackward,
  warpedSsd,
  zeros,
  type Tensor,
} from '../../engine/index.ts';
import { integer, number, bool } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';

export interface ConvexAdamOptions {
  /** Half-width of the displacement search cube, in lattice voxels. */
  searchRadius?: number;
  /** Weight of the diffusion regulariser in the Adam stage. */
  smoothness?: number;
  /** Adam iterations (0 keeps the convex result). */
  iterations?: number;
  /** Adam step size in voxels. */
  learningRate?: number;
  /** Optimise a stationary velocity field and exponentiate it, so the result does not fold. */
  diffeomorphic?: boolean;
  progress?: ProgressFn;
}

/** ConvexAdam's defaults, the ones `diffreg register` states in its help. */
export const CONVEX_ADAM_DEFAULTS = {
  searchRadius: 4,
  smoothness: 1,
  iterations: 80,
  learningRate: 0.5,
  diffeomorphic: true,
};

/** volume (C, w, h, d) read at lattice positions p + u(p) (trilinear, border values outside). */
export function warpLattice(volume: Tensor, displacement: Tensor): Tensor {
  return tidy(() => sampleTrilinear(volume, displacedPositions(displacement)));
}

/**
 * exp(v) by scaling and squaring — u ← v/2^n, then n times u ← u + u∘(id + u) — with the chain rule back
 * through the squarings: `backward(∂L/∂u)` gives ∂L/∂v. The intermediate fields are kept until `dispose`.
 */
function integrate(velocity: Tensor, squarings: number) {
  const steps = [noGrad(() => velocity.detach().div(2 ** squarings))];
  for (let i = 0; i < squarings; i++) steps.push(selfCompose(steps[i]));
  return {
    u: steps[squarings],
    backward(gradient: Tensor): Tensor {
      return tidy(() => {
        let g = gradient;
        for (let i = squarings - 1; i >= 0; i--) g = selfComposeBackward(steps[i], g);
        return g.div(2 ** squarings);
      });
    },
    dispose: () => dispose(steps),
  };
}

/** exp(v) by scaling and squaring (see `integrate`). */
export function exponentiate(velocity: Tensor, squarings = 6): Tensor {
  const flow = integrate(velocity, squarings);
  const u = flow.u.clone();
  flow.dispose();
  return u;
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
 * A finer lattice for the Adam stage (ConvexAdam's authors optimise on a finer grid than the convex
 * search): both images' descriptors on it, and the convex stage's displacement carried onto it (read
 * at its voxels, in its voxel units).
 */
export interface FineLattice {
  fixed: Tensor;
  moving: Tensor;
  fromCoarse(displacement: Tensor): Tensor;
}

/**
 * Displacement (3, w, h, d) in lattice voxels that best maps fixed descriptors onto moving ones.
 * Descriptors are (C, w, h, d) on the same lattice; with `fine`, the Adam stage runs on its lattice
 * and the displacement is on that lattice.
 */
export function convexAdam(
  fixed: Tensor,
  moving: Tensor,
  options: ConvexAdamOptions = {},
  fine?: FineLattice,
): Tensor {
  const r = integer('searchRadius', options.searchRadius ?? CONVEX_ADAM_DEFAULTS.searchRadius, {
    min: 1,
    max: 12,
  });
  const lambda = number('smoothness', options.smoothness ?? CONVEX_ADAM_DEFAULTS.smoothness, { min: 0 });
  const iterations = integer('iterations', options.iterations ?? CONVEX_ADAM_DEFAULTS.iterations, {
    min: 0,
    max: 10000,
  });
  const lr = number('learningRate', options.learningRate ?? CONVEX_ADAM_DEFAULTS.learningRate, {
    min: 0,
    exclusiveMin: true,
  });
  const diffeomorphic = bool('diffeomorphic', options.diffeomorphic ?? CONVEX_ADAM_DEFAULTS.diffeomorphic);
  const report = options.progress;

  report?.({ stage: 'correlation cost', done: 0, total: 1 });
  const initial = noGrad(() =>
    tidy(() => {
      const cost = ssdCostVolume(fixed, moving, r);
      report?.({ stage: 'correlation cost', done: 1, total: 1 });
      const convex = coupledConvex(cost, r);
      return fine ? fine.fromCoarse(convex) : convex;
    }),
  );
  if (iterations === 0) return initial;
  const target = fine ?? { fixed, moving };

  // Descriptor scale so that the data term is about 1 whatever the descriptors are.
  const scale = noGrad(() => tidy(() => 1 / Math.max(1e-12, target.fixed.square().mean().item())));
  const parameter = initial.detach().requiresGrad_(true).keep();
  initial.dispose();
  const optimiser = new optim.Adam([parameter], { lr });
  try {
    for (let i = 0; i < iterations; i++) {
      optimiser.zeroGrad();
      tidy(() => {
        // The data term's gradient comes from the fused kernels (warped SSD, then back through the
        // squarings) and enters as ∂(v·g)/∂v = g; the regulariser's from autograd.
        const flow = diffeomorphic ? integrate(parameter, 6) : undefined;
        const { gradient } = warpedSsd(target.moving, target.fixed, flow ? flow.u : parameter.detach());
        const data = flow ? flow.backward(gradient) : gradient;
        flow?.dispose();
        enableGrad(() =>
          parameter.mul(data.mul(scale)).sum().add(diffusionPenalty(parameter).mul(lambda)).backward(),
        );
      });
      optimiser.step();
      report?.({ stage: 'instance optimisation', done: i + 1, total: iterations });
    }
    return noGrad(() => tidy(() => (diffeomorphic ? exponentiate(parameter) : parameter.clone())));
  } finally {
    optimiser.dispose();
    parameter.dispose();
  }
}
