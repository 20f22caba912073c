/**
 * A learned method's network grid: a lattice of fixed dims and spacing placed over the fixed image in
 * patient space, so that networks see whole, uncropped images of any grid or orientation exactly as
 * they were trained, and their displacements come back to the fixed image in world mm. DiffuseReg
 * places a 64×64×16 volume over the fixed volume; LDM-Morph a 128×128×1 slice over the fixed slice.
 */
import { tidy, type Tensor } from '../engine/index.ts';
import { fail } from '../util/errors.ts';
import type { DisplacementField } from './field.ts';
import { tensorToField, volumeToTensor } from './field-tensor.ts';
import { Grid, type Vec3, type Volume } from './volume.ts';
import { resampleVolume } from './warp.ts';

/** A grid of `dims` × `spacing` in `fixed`'s direction whose centre is the centre of fixed's field of view. */
export function gridCentredOn(fixed: Grid, dims: Vec3, spacing: Vec3): Grid {
  const centre = fixed.voxelToWorld(fixed.dims.map((n) => (n - 1) / 2) as Vec3);
  const placed = new Grid({ dims, spacing, direction: fixed.direction });
  const offset = placed.voxelToWorld(dims.map((n) => (n - 1) / 2) as Vec3);
  return new Grid({
    dims,
    spacing,
    origin: centre.map((c, a) => c - offset[a]),
    direction: fixed.direction,
  });
}

/** A label map on `grid` (nearest neighbour, 0 beyond the image), as float32 (1, 1, w, h, d). */
export function labelsOnGrid(labels: Volume, grid: Grid): Tensor {
  return tidy(() => volumeToTensor(resampleVolume(labels, grid, { interpolation: 'nearest' })).unsqueeze(0));
}

/** A network's displacement (1, 3, w, h, d) in voxels of `grid` as a world-mm field on the fixed grid. */
export function fieldOnFixed(u: Tensor, grid: Grid, fixed: Volume): DisplacementField {
  if (u.shape.length !== 5 || u.shape[0] !== 1) {
    fail('network displacement', `expected (1, 3, w, h, d), got [${u.shape.join(', ')}]`);
  }
  return tidy(() => tensorToField(u.squeeze(0), grid, fixed));
}
