/** Folding of a displacement field: its Jacobian determinant and a penalty on det J near or below 0. */
import { foldingHinge, scalarWithGradient, tidy, type Tensor } from '../../engine/index.ts';

/**
 * det(I + ∇u) of u (B, 3, w, h, d) in voxels, by forward differences: (B, w−1, h−1, d−1), the voxels
 * with a forward neighbour along every axis. Voxel units give the determinant in mm too (a diagonal
 * change of scale does not change it).
 */
export function forwardJacobianDeterminant(u: Tensor): Tensor {
  const spatial = u.shape.slice(2);
  return tidy(() => {
    // derivative[a]: ∂u/∂x_a (B, 3, w−1, h−1, d−1)
    const derivative = spatial.map((n, a) =>
      spatial.reduce(
        (d, m, b) => (b === a ? d : d.narrow(2 + b, 0, m - 1)),
        u.narrow(2 + a, 1, n - 1).sub(u.narrow(2 + a, 0, n - 1)),
      ),
    );
    const j = (c: number, a: number) => {
      const v = derivative[a].select(1, c);
      return c === a ? v.add(1) : v;
    };
    const minor = (c0: number, c1: number, a0: number, a1: number) =>
      j(c0, a0)
        .mul(j(c1, a1))
        .sub(j(c0, a1).mul(j(c1, a0)));
    return j(0, 0)
      .mul(minor(1, 2, 1, 2))
      .sub(j(0, 1).mul(minor(1, 2, 0, 2)))
      .add(j(0, 2).mul(minor(1, 2, 0, 1)));
  });
}

/**
 * The default margin of foldingPenalty: det J below 0.1 is penalised, so that an optimiser keeps
 * voxels away from 0, not just above it.
 */
export const FOLDING_MARGIN = 0.1;

/**
 * Σ max(0, margin − det J)² over the cells of u (B, 3, w, h, d): a squared hinge whose gradient grows
 * from 0 as det J falls below the margin, so that an optimiser keeps voxels away from folding rather
 * than just above it. det J by forward differences (`corners` 1), or averaged over the eight corners
 * of each cell (8: the Jacobians of the trilinear field there, which a finer grid sees). One fused
 * kernel with its closed-form gradient (engine foldingHinge).
 */
export function foldingPenalty(u: Tensor, margin: number, corners: 1 | 8 = 1): Tensor {
  return tidy(() => {
    const { loss, gradient } = foldingHinge(u, margin, corners);
    return scalarWithGradient(loss, [[u, gradient]]);
  });
}
