/**
 * The spatial transformer of learned registration (VoxelMorph, VTN): an image tensor resampled at
 * its own grid positions plus a displacement, differentiable in both, for 2-D (B, C, w, h) and 3-D
 * (B, C, w, h, d) tensors. The displacement (B, nd, ...) holds, at each voxel, the shift along each
 * tensor axis in voxels of that grid (component a along axis a): warped(p) = image(p + u(p)).
 */
import { arange, F, stack, tidy, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';

/** The number of spatial axes (2 or 3) of a (B, C, ...) tensor, or a one-line error. */
export function spatialAxes(name: string, x: Tensor): 2 | 3 {
  const nd = x.shape.length - 2;
  if (nd !== 2 && nd !== 3)
    fail(name, `expected (B, C, w, h) or (B, C, w, h, d), got [${x.shape.join(', ')}]`);
  return nd;
}

export interface TransformOptions {
  /** 'bilinear' (trilinear in 3-D; default) for images and fields, 'nearest' for label maps. */
  mode?: 'bilinear' | 'nearest';
  /** Beyond the grid: 'border' repeats the edge voxels (default), 'zeros' reads 0. */
  paddingMode?: 'border' | 'zeros';
}

/** `image` (B, C, ...) warped by `displacement` (B, nd, ...) in voxels: image(p + u(p)). */
export function spatialTransformer(image: Tensor, displacement: Tensor, o: TransformOptions = {}): Tensor {
  const nd = spatialAxes('spatialTransformer image', image);
  const spatial = image.shape.slice(2);
  const expected = [image.shape[0], nd, ...spatial];
  if (displacement.shape.join() !== expected.join()) {
    fail(
      'spatialTransformer displacement',
      `expected [${expected.join(', ')}], got [${displacement.shape.join(', ')}]`,
    );
  }
  return tidy(() => {
    // align_corners = true: voxel p of an axis of n voxels is at 2p/(n − 1) − 1 in grid_sample's [−1, 1].
    const normalised = spatial.map((n, a) => {
      const view = spatial.map(() => 1);
      view[a] = n;
      const index = arange(0, n, 1, { dtype: 'float32' }).reshape([1, ...view]);
      return displacement
        .select(1, a)
        .add(index)
        .mul(2 / Math.max(n - 1, 1))
        .sub(1);
    });
    // grid_sample's last axis runs (x, y, z) over the input's last, second-last, third-last axes.
    const grid = stack(normalised.reverse(), -1);
    return F.gridSample(image, grid, {
      mode: o.mode ?? 'bilinear',
      paddingMode: o.paddingMode ?? 'border',
      alignCorners: true,
    });
  });
}

/**
 * A label map (B, 1, ...) warped by `displacement` in voxels, nearest neighbour, 0 beyond the grid:
 * ITK's and transformix's convention, so that Dice compares with theirs (repeating the edge slices
 * moved the Dice of 10-mm ACDC stacks by up to 0.04 at the top and bottom slices).
 */
export function warpLabelMap(labels: Tensor, displacement: Tensor): Tensor {
  return spatialTransformer(labels, displacement, { mode: 'nearest', paddingMode: 'zeros' });
}
