/**
 * DiffuseReg's network grid: 64×64×16 voxels of 3×3×10 mm (192×192×160 mm, the heart with room to
 * spare) in the fixed image's direction, centred on the fixed image's field of view. It needs no
 * labels, so inference sees whole uncropped volumes exactly as training did; moving images of any
 * grid or orientation are resampled onto it through world coordinates.
 */
import { Tensor, tidy } from '../../engine/index.ts';
import {
  Grid,
  resampleVolume,
  tensorToField,
  volumeToTensor,
  type DisplacementField,
  type Vec3,
  type Volume,
} from '../../geometry/index.ts';
import type { Modality } from '../../data/case.ts';
import { normaliseIntensities } from '../../models/preprocess.ts';
import { fail } from '../../util/errors.ts';

export const NETWORK_DIMS: Vec3 = [64, 64, 16];
export const NETWORK_SPACING: Vec3 = [3, 3, 10];

/** The network grid over `fixed`: NETWORK_DIMS × NETWORK_SPACING, fixed's direction and field-of-view centre. */
export function networkGrid(fixed: Grid): Grid {
  const centre = fixed.voxelToWorld(fixed.dims.map((n) => (n - 1) / 2) as Vec3);
  const placed = new Grid({ dims: NETWORK_DIMS, spacing: NETWORK_SPACING, direction: fixed.direction });
  const offset = placed.voxelToWorld(NETWORK_DIMS.map((n) => (n - 1) / 2) as Vec3);
  return new Grid({
    dims: NETWORK_DIMS,
    spacing: NETWORK_SPACING,
    origin: centre.map((c, a) => c - offset[a]),
    direction: fixed.direction,
  });
}

/**
 * An image as the network takes it: intensities normalised on the whole volume (MR percentiles or CT
 * window, [0, 1]), then resampled linearly onto `grid` (0 beyond the image), as (1, 1, 64, 64, 16).
 */
export function imageOnGrid(image: Volume, grid: Grid, modality: Modality, subject = 'image'): Tensor {
  if (image.components !== 1) fail(subject, `expected a scalar image, got ${image.components} components`);
  const normalised = image.withData(normaliseIntensities(image.data, modality));
  return tidy(() => volumeToTensor(resampleVolume(normalised, grid)).unsqueeze(0));
}

/** A label map on `grid` (nearest neighbour, 0 beyond the image), as float32 (1, 1, 64, 64, 16). */
export function labelsOnGrid(labels: Volume, grid: Grid): Tensor {
  return tidy(() => volumeToTensor(resampleVolume(labels, grid, { interpolation: 'nearest' })).unsqueeze(0));
}

/** The network's displacement (1, 3, 64, 64, 16) in network voxels as a world-mm field on the fixed grid. */
export function fieldOnFixed(u: Tensor, grid: Grid, fixed: Volume): DisplacementField {
  if (u.shape.length !== 5 || u.shape[0] !== 1) {
    fail('network displacement', `expected (1, 3, w, h, d), got [${u.shape.join(', ')}]`);
  }
  return tidy(() => tensorToField(u.squeeze(0), grid, fixed));
}
