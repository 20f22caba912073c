/** Diffusion regularisation of a displacement field, as VoxelMorph's and DiffuseMorph's gradient loss. */
import { tidy, type Tensor } from '../../engine/index.ts';
import { spatialAxes } from './spatial.ts';

/**
 * ‖∇u‖² of u (B, nd, ...) by forward differences: the mean squared difference along each axis (over
 * batch, components and voxels), averaged over the axes. A field with slope s along every axis in
 * every component gives exactly s²; slope s along one axis only gives s²/nd.
 */
export function smoothnessLoss(u: Tensor): Tensor {
  const nd = spatialAxes('smoothnessLoss displacement', u);
  return tidy(() => {
    const perAxis = Array.from({ length: nd }, (_, a) => {
      const n = u.shape[2 + a];
      return u
        .narrow(2 + a, 1, n - 1)
        .sub(u.narrow(2 + a, 0, n - 1))
        .square()
        .mean();
    });
    return perAxis.reduce((s, t) => s.add(t)).div(nd);
  });
}
