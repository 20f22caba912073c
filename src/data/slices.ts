/**
 * 2-D data from 3-D stacks: a 2-D image is a Volume with one slice (dims [nx, ny, 1]) that keeps its
 * world position, so 2-D methods (LDM-Morph) read, warp and score slices with the 3-D machinery.
 */
import type { Volume } from '../geometry/index.ts';
import { fail } from '../util/errors.ts';
import { integer } from '../util/is.ts';
import type { RegistrationCase } from './case.ts';
import { cropVolume } from './dataset.ts';

/** Slice k of the third voxel axis, at its world position. */
export function volumeSlice<T extends Volume>(volume: T, k: number): T {
  integer('slice', k, { min: 0, max: volume.dims[2] - 1 });
  return cropVolume(volume, [0, 0, k], [volume.dims[0] - 1, volume.dims[1] - 1, k]);
}

/** Slice k of every image of a case (fixed and moving on one grid, as ACDC's frames are). */
export function caseSlice(item: RegistrationCase, k: number): RegistrationCase {
  if (!item.fixed.sameGrid(item.moving))
    fail(`case ${item.id}`, 'fixed and moving grids differ; cannot slice both at one index');
  const slice = <T extends Volume | undefined>(v: T) => (v ? volumeSlice(v, k) : v) as T;
  return {
    ...item,
    id: `${item.id}/slice${k}`,
    fixed: slice(item.fixed),
    moving: slice(item.moving),
    fixedLabels: slice(item.fixedLabels),
    movingLabels: slice(item.movingLabels),
    fixedPoints: undefined,
    movingPoints: undefined,
  };
}

/** The middle of the slices that hold `label` (ACDC's mid-ventricular slice for label 3, the LV). */
export function middleSliceOf(labels: Volume, label: number): number {
  const [nx, ny, nz] = labels.dims;
  const holding: number[] = [];
  for (let k = 0; k < nz; k++) {
    for (let i = k * nx * ny; i < (k + 1) * nx * ny; i++) {
      if (labels.data[i] === label) {
        holding.push(k);
        break;
      }
    }
  }
  if (holding.length === 0) fail('label map', `no voxel has label ${label}`);
  return holding[Math.floor((holding.length - 1) / 2)];
}
