/**
 * Reorienting a volume's array to a named axis orientation (like MONAI's Orientationd or nibabel's
 * as_closest_canonical): array axes are permuted and flipped so that they run as close as possible
 * to the requested anatomical directions. World positions of voxels do not change; only the array
 * layout and the index→world geometry do.
 */
import { DiffregError } from '../util/errors.ts';
import { resampleVolume } from './warp.ts';
import { Grid, invert3, multiply3, Volume, type Mat3, type Vec3, type VoxelArray } from './volume.ts';

/** Orientation codes in nibabel's sense: the direction each array axis runs toward, e.g. 'RAS', 'LPS'. */
export type AxisCodes = string;

/** Unit LPS direction of each code letter. */
const LETTER: Record<string, [number, number]> = {
  L: [0, 1],
  R: [0, -1],
  P: [1, 1],
  A: [1, -1],
  S: [2, 1],
  I: [2, -1],
};

/** The codes of a volume's current orientation (closest anatomical direction of each array axis). */
export function axisCodes(volume: Volume): AxisCodes {
  return axisMapping(volume.direction)
    .map(({ world, sign }) => (sign > 0 ? 'LPS' : 'RAI')[world])
    .join('');
}

/** For each array axis: the world axis it is closest to and the sign. */
function axisMapping(direction: Mat3): { world: number; sign: number }[] {
  const used = new Set<number>();
  const out: { world: number; sign: number }[] = [];
  // Assign greedily by largest absolute cosine so oblique volumes still get a permutation.
  const pairs: [number, number, number][] = [];
  for (let a = 0; a < 3; a++) for (let w = 0; w < 3; w++) pairs.push([Math.abs(direction[w * 3 + a]), a, w]);
  pairs.sort((p, q) => q[0] - p[0]);
  const assigned = new Map<number, number>();
  for (const [, a, w] of pairs) {
    if (assigned.has(a) || used.has(w)) continue;
    assigned.set(a, w);
    used.add(w);
  }
  for (let a = 0; a < 3; a++) {
    const w = assigned.get(a) as number;
    out.push({ world: w, sign: Math.sign(direction[w * 3 + a]) || 1 });
  }
  return out;
}

export interface Reoriented<T extends VoxelArray> {
  volume: Volume<T>;
  /** source array axis for each new axis */
  permutation: Vec3;
  /** whether each new axis runs opposite to its source axis */
  flipped: [boolean, boolean, boolean];
}

/** The array reordering that takes axes of `direction` to `codes`, and the direction after it. */
function reordering(
  direction: Mat3,
  codes: AxisCodes,
): Omit<Reoriented<VoxelArray>, 'volume'> & { direction: Mat3 } {
  const want = codes.toUpperCase().split('');
  const targets = want.map((c) => LETTER[c]);
  if (want.length !== 3 || targets.some((t) => !t) || new Set(targets.map((t) => t[0])).size !== 3) {
    throw new DiffregError(
      `orientation: expected three letters from L/R, P/A, S/I naming different axes, got "${codes}"`,
    );
  }
  const current = axisMapping(direction);
  const permutation = [0, 0, 0] as Vec3;
  const flipped: [boolean, boolean, boolean] = [false, false, false];
  targets.forEach(([world, sign], axis) => {
    const source = current.findIndex((m) => m.world === world);
    permutation[axis] = source;
    flipped[axis] = current[source].sign !== sign;
  });
  const reordered = new Array<number>(9) as Mat3;
  for (let axis = 0; axis < 3; axis++) {
    const p = permutation[axis];
    const s = flipped[axis] ? -1 : 1;
    for (let w = 0; w < 3; w++) reordered[w * 3 + axis] = s * direction[w * 3 + p];
  }
  return { permutation, flipped, direction: reordered };
}

/** The volume with its array reordered to `codes` (e.g. 'RAS'); a copy even when nothing changes. */
export function reorient<T extends VoxelArray>(volume: Volume<T>, codes: AxisCodes): Reoriented<T> {
  const { permutation, flipped, direction } = reordering(volume.direction, codes);
  const srcDims = volume.dims;
  const dims = permutation.map((p) => srcDims[p]) as Vec3;
  const spacing = permutation.map((p) => volume.spacing[p]) as Vec3;
  // The new first voxel is the old voxel at the far end of every flipped axis.
  const corner: Vec3 = [0, 0, 0];
  permutation.forEach((p, axis) => {
    if (flipped[axis]) corner[p] = srcDims[p] - 1;
  });
  const origin = volume.voxelToWorld(corner);

  const n = volume.size;
  const data = new (volume.data.constructor as new (n: number) => T)(n * volume.components);
  const srcStride = [1, srcDims[0], srcDims[0] * srcDims[1]];
  // Step in the source array for a unit step along each new axis, and the source offset of new (0,0,0).
  const step = permutation.map((p, axis) => (flipped[axis] ? -srcStride[p] : srcStride[p]));
  const base = corner[0] * srcStride[0] + corner[1] * srcStride[1] + corner[2] * srcStride[2];
  for (let c = 0; c < volume.components; c++) {
    const src = volume.data.subarray(c * n, (c + 1) * n);
    const dst = data.subarray(c * n, (c + 1) * n);
    let o = 0;
    for (let k = 0; k < dims[2]; k++) {
      for (let j = 0; j < dims[1]; j++) {
        let s = base + k * step[2] + j * step[1];
        for (let i = 0; i < dims[0]; i++, s += step[0]) dst[o++] = src[s];
      }
    }
  }
  // Vector components (displacements) are world vectors: unaffected by the array reordering.
  return {
    volume: new Volume({ data, dims, spacing, origin, direction, components: volume.components }),
    permutation,
    flipped,
  };
}

/**
 * Largest difference of direction cosines (after reordering) at which two grids count as parallel: a
 * rotation of 1e-4 rad moves points 500 mm away by 0.05 mm, far below any voxel, so resampling for it
 * would only blur.
 */
const PARALLEL_TOLERANCE = 1e-4;

/** True when the axes of two directions are parallel up to a permutation and flips (reorient's reach). */
export function parallelAxes(a: Mat3, b: Mat3): boolean {
  const ra = reordering(a, 'LPS').direction;
  const rb = reordering(b, 'LPS').direction;
  return ra.every((v, i) => Math.abs(v - rb[i]) <= PARALLEL_TOLERANCE);
}

/**
 * `volume` on axes parallel to those of `direction`: the volume itself when they already are (up to a
 * permutation and flips, which reorient handles without interpolation), else resampled (trilinear) onto
 * the grid of that direction with the volume's dims, spacing and centre, each new axis taking those of
 * the volume's axis closest to it. The field of view keeps its size in mm, and with it the scale at
 * which networks that resize every image to a fixed size see the anatomy; the volume's corners beyond
 * the rotated box are left out, and the box's corners beyond the volume get its minimum, i.e. its
 * background (air in CT, 0 in MR), so that no artificial edge appears there.
 */
export function alignAxes(volume: Volume, direction: Mat3): Volume {
  if (parallelAxes(volume.direction, direction)) return volume;
  // The volume's axes in the new axes' frame: the new axis closest to each of them.
  const closest = axisMapping(multiply3(invert3(direction), volume.direction));
  const dims = [0, 0, 0] as Vec3;
  const spacing = [0, 0, 0] as Vec3;
  closest.forEach(({ world }, axis) => {
    dims[world] = volume.dims[axis];
    spacing[world] = volume.spacing[axis];
  });
  const centre = volume.voxelToWorld(volume.dims.map((n) => (n - 1) / 2) as Vec3);
  const half = dims.map((n, a) => ((n - 1) / 2) * spacing[a]);
  const origin = centre.map(
    (c, r) =>
      c - (direction[r * 3] * half[0] + direction[r * 3 + 1] * half[1] + direction[r * 3 + 2] * half[2]),
  ) as Vec3;
  let background = Infinity;
  // NaN voxels never compare below, so they cannot become the background.
  for (const v of volume.data) if (v < background) background = v;
  return resampleVolume(volume, new Grid({ dims, spacing, origin, direction }), { outside: background });
}
