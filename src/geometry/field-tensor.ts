/**
 * Images and displacement fields as tensors on a working grid, and back to diffreg's conventions.
 *
 * Tensor layout: (C, w, h, d), axis a of the tensor = voxel axis a of its grid (i slowest in memory,
 * the transpose of Volume's planar i-fastest layout). A tensor displacement u is (3, w, h, d) with
 * component a along voxel axis a of its grid, in that grid's voxels; pull-back as everywhere in
 * diffreg: warped(p) = moving(p + u(p)). A working grid is any Grid placed in patient space — a
 * registration lattice over the fixed image, or a learned method's network grid — so the same three
 * functions serve every method: images onto the grid, positions of one grid in another's voxels, and a
 * tensor field back to a world-mm DisplacementField on the fixed image's own grid.
 */
import { noGrad, sampleTrilinear, stack, Tensor, tensor, tidy } from '../engine/index.ts';
import type { DisplacementField } from './field.ts';
import { Grid, invert3, multiply3, type Vec3, type Volume } from './volume.ts';
import { transformPoints } from './warp.ts';

/** A Volume's voxels as a (C, w, h, d) float32 tensor. */
export function volumeToTensor(volume: Volume): Tensor {
  const [w, h, d] = volume.dims;
  const data = volume.data instanceof Float32Array ? volume.data : Float32Array.from(volume.data);
  return tidy(() => Tensor.fromArray(data, [volume.components, d, h, w]).permute(0, 3, 2, 1).contiguous());
}

/** A (C, w, h, d) tensor as planar float32 voxels (i fastest) for a Volume on a grid of dims w×h×d. */
export function tensorToVoxels(t: Tensor): Float32Array {
  return noGrad(() => tidy(() => t.float().permute(0, 3, 2, 1).contiguous().toTypedArray() as Float32Array));
}

/**
 * (3, w, h, d): where each voxel of `grid` lies in voxels of `target`, optionally after a world
 * affine (4×4 row-major) (any placement; the map is affine, so it is evaluated at the origin and one
 * step along each axis).
 */
export function gridPositions(grid: Grid, target: Grid, affine?: readonly number[]): Tensor {
  const at = (k: Vec3) => {
    const world = grid.voxelToWorld(k);
    return target.worldToVoxel(affine ? transformPoints([world], affine)[0] : world);
  };
  const q0 = at([0, 0, 0]);
  const steps = [0, 1, 2].map((a) => {
    const e: Vec3 = [0, 0, 0];
    e[a] = 1;
    return at(e).map((v, b) => v - q0[b]);
  });
  const dims = grid.dims;
  return tidy(() => {
    const index = [0, 1, 2].map((a) => {
      const view = [1, 1, 1];
      view[a] = dims[a];
      return tensor(Array.from({ length: dims[a] }, (_, i) => i)).reshape(view);
    });
    const coordinate = (b: number) =>
      index[0]
        .mul(steps[0][b])
        .add(index[1].mul(steps[1][b]))
        .add(index[2].mul(steps[2][b]))
        .add(q0[b])
        .expand([...dims]);
    return stack([coordinate(0), coordinate(1), coordinate(2)], 0);
  });
}

/**
 * The regular lattice of `dims` voxels spanning `grid`'s field of view: lattice voxel k sits at grid
 * voxel (k + 0.5)·n/l − 0.5 (the sample positions of interpolation with align_corners = false).
 */
export function latticeOver(grid: Grid, dims: Vec3): Grid {
  const scale = dims.map((l, a) => grid.dims[a] / l) as Vec3;
  return new Grid({
    dims,
    spacing: grid.spacing.map((s, a) => s * scale[a]),
    origin: grid.voxelToWorld(scale.map((f) => 0.5 * f - 0.5) as Vec3),
    direction: grid.direction,
  });
}

/**
 * A tensor displacement u (3, w, h, d) on `grid`, in its voxels, as a world-mm DisplacementField on
 * `target`: u is read trilinearly at each target voxel (border values beyond the grid), then mapped
 * through the grid's direction and spacing.
 */
export function tensorToField(u: Tensor, grid: Grid, target: Volume): DisplacementField {
  const voxels = noGrad(() =>
    tidy(() => {
      const sampled = sampleTrilinear(u, gridPositions(target, grid));
      const d = grid.direction;
      const s = grid.spacing;
      const world = [0, 1, 2].map((c) =>
        sampled
          .select(0, 0)
          .mul(d[c * 3] * s[0])
          .add(sampled.select(0, 1).mul(d[c * 3 + 1] * s[1]))
          .add(sampled.select(0, 2).mul(d[c * 3 + 2] * s[2])),
      );
      return tensorToVoxels(stack(world, 0));
    }),
  );
  return target.withData(voxels, 3) as DisplacementField;
}

/**
 * The inverse of tensorToField: a world-mm DisplacementField read trilinearly at the voxels of
 * `grid` (border values beyond the field's grid), as (3, w, h, d) in `grid`'s voxels.
 */
export function fieldToTensor(field: DisplacementField, grid: Grid): Tensor {
  const toVoxels = invert3(
    multiply3(grid.direction, [grid.spacing[0], 0, 0, 0, grid.spacing[1], 0, 0, 0, grid.spacing[2]]),
  );
  return noGrad(() =>
    tidy(() => {
      const world = sampleTrilinear(volumeToTensor(field), gridPositions(grid, field));
      const component = (a: number) =>
        world
          .select(0, 0)
          .mul(toVoxels[a * 3])
          .add(world.select(0, 1).mul(toVoxels[a * 3 + 1]))
          .add(world.select(0, 2).mul(toVoxels[a * 3 + 2]));
      return stack([component(0), component(1), component(2)], 0);
    }),
  );
}
