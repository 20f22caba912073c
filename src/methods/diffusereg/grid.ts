/**
 * DiffuseReg's network grid: 64×64×16 voxels of 3×3×10 mm (192×192×160 mm, the heart with room to
 * spare) in the fixed image's direction, centred on the fixed image's field of view. It needs no
 * labels, so inference sees whole uncropped volumes exactly as training did; moving images of any
 * grid or orientation are resampled onto it through world coordinates.
 */
import { gridCentredOn, type Grid, type Vec3 } from '../../geometry/index.ts';

export { fieldOnFixed, labelsOnGrid } from '../../geometry/index.ts';
export { imageOnGrid } from '../../models/preprocess.ts';

export const NETWORK_DIMS: Vec3 = [64, 64, 16];
export const NETWORK_SPACING: Vec3 = [3, 3, 10];

/** The network grid over `fixed`: NETWORK_DIMS × NETWORK_SPACING, fixed's direction and field-of-view centre. */
export const networkGrid = (fixed: Grid): Grid => gridCentredOn(fixed, NETWORK_DIMS, NETWORK_SPACING);

/**
 * The refinement's image lattice: the network grid's box at 1.5 × 1.5 × 10 mm, about ACDC's in-plane
 * resolution (1.3–1.9 mm), where the myocardium's edges are still sharp.
 */
export const refinementGrid = (fixed: Grid): Grid => gridCentredOn(fixed, [128, 128, 16], [1.5, 1.5, 10]);
