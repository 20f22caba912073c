/**
 * LDM-Morph's network grid of a 2-D slice. The authors resize ACDC slices to 112 pixels and pad them
 * to 128; here the same happens through world coordinates: a 128×128×1 grid in the slice's direction,
 * centred on the slice's field of view, with square pixels of (longest in-plane side of the field of
 * view) / 112, so the whole uncropped slice fills the central 112 pixels and the rest is padding (0).
 * Slices of any size, spacing or orientation thus reach the network as training slices did, and the
 * displacement comes back to the fixed slice in world mm with no through-plane component.
 */
import { cat, tidy, zeros, type Tensor } from '../../engine/index.ts';
import {
  fieldOnFixed,
  gridCentredOn,
  labelsOnGrid,
  resampleVolume,
  volumeToTensor,
  type DisplacementField,
  type Grid,
  type Volume,
} from '../../geometry/index.ts';
import { fail } from '../../util/errors.ts';

/** The part of each network-grid axis the slice's field of view fills (the authors' 112 of 128). */
export const SLICE_CONTENT_FRACTION = 112 / 128;

/** Refuses anything but a single slice (dims [nx, ny, 1]). */
export function checkSlice(volume: Grid, subject: string): void {
  if (volume.dims[2] !== 1)
    fail(subject, `expected one 2-D slice (dims [nx, ny, 1]), got ${volume.dims.join('x')} voxels`);
}

/** The network grid of `imageSize` pixels (the network's (H, W)) over the fixed slice. */
export function sliceGrid(fixed: Grid, imageSize: readonly [number, number]): Grid {
  checkSlice(fixed, 'fixed slice');
  const pixel = Math.max(
    ...imageSize.map((n, a) => (fixed.dims[a] * fixed.spacing[a]) / (SLICE_CONTENT_FRACTION * n)),
  );
  return gridCentredOn(fixed, [imageSize[0], imageSize[1], 1], [pixel, pixel, fixed.spacing[2]]);
}

/** The slice's intensities mapped linearly onto [0, 1], or undefined for a slice without content (max = min). */
export function minMaxNormalised(image: Volume): Float32Array | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of image.data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (!(hi > lo)) return undefined;
  return Float32Array.from(image.data, (v) => (v - lo) / (hi - lo));
}

/** (C, w, h, 1) → (1, C, w, h): a slice tensor as the network's (B, C, H, W). */
const asImage = (t: Tensor) => t.squeeze(3).unsqueeze(0);

/**
 * A slice as the network takes it: min–max normalised to [0, 1] over the slice, resampled linearly
 * onto `grid` (0 beyond the slice), as (1, 1, H, W); undefined when the slice has no content.
 */
export function sliceImageOnGrid(image: Volume, grid: Grid, subject: string): Tensor | undefined {
  if (image.components !== 1) fail(subject, `expected a scalar image, got ${image.components} components`);
  checkSlice(image, subject);
  const normalised = minMaxNormalised(image);
  if (!normalised) return undefined;
  return tidy(() => asImage(volumeToTensor(resampleVolume(image.withData(normalised), grid))));
}

/** A label slice on `grid` (nearest neighbour, 0 beyond the slice), as float32 (1, 1, H, W). */
export const sliceLabelsOnGrid = (labels: Volume, grid: Grid): Tensor =>
  tidy(() => labelsOnGrid(labels, grid).squeeze(4));

/**
 * The network's displacement (1, 2, H, W) in pixels of `grid` (component a along grid axis a) as a
 * world-mm field on the fixed slice, with a zero through-plane component.
 */
export function sliceFieldOnFixed(u: Tensor, grid: Grid, fixed: Volume): DisplacementField {
  if (u.shape.length !== 4 || u.shape[0] !== 1 || u.shape[1] !== 2)
    fail('network displacement', `expected (1, 2, H, W), got [${u.shape.join(', ')}]`);
  checkSlice(fixed, 'fixed slice');
  return tidy(() => fieldOnFixed(cat([u, zeros([1, 1, ...u.shape.slice(2)])], 1).unsqueeze(4), grid, fixed));
}
