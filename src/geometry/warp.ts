/**
 * Warping volumes and points. Images are resampled in world coordinates, so the moving volume may
 * have any grid, spacing and direction. Pull-back convention: warped(p) = moving(q) with
 * q = p + u(p) for a field, q = T·p for a world affine T (fixed world → moving world), q = p for
 * plain resampling. Outside the moving volume's extent (see sampling.ts) the `outside` value is used.
 */
import { fail } from '../util/errors.ts';
import { integer, number, oneOf } from '../util/is.ts';
import { checkField, sampleField, type DisplacementField } from './field.ts';
import { allocateLike, checkAffine, indexMap, resampleInto, type Interpolation } from './sampling.ts';
import type { Grid, Vec3, Volume, VoxelArray } from './volume.ts';

export type { Interpolation } from './sampling.ts';

export interface WarpOptions {
  /** 'linear' (trilinear, float32 output; default) or 'nearest' (labels; keeps the data type). */
  interpolation?: Interpolation;
  /** Value where the transformed point falls outside the moving volume (default 0). */
  outside?: number;
  /**
   * A 4×4 row-major world affine T (fixed world → moving world) applied after the field:
   * q = T(p + u(p)), the usual "affine pre-alignment, then deformable" chain.
   */
  affine?: readonly number[];
}

function transform(moving: Volume, grid: Grid, shift: Float32Array | null, options: WarpOptions): Volume {
  const interpolation = oneOf('interpolation', options.interpolation ?? 'linear', [
    'linear',
    'nearest',
  ] as const);
  const outside = number('outside', options.outside ?? 0);
  const affine = options.affine === undefined ? undefined : checkAffine('affine', options.affine);
  const length = grid.size * moving.components;
  const out: VoxelArray =
    interpolation === 'linear' ? new Float32Array(length) : allocateLike(moving.data, length);
  resampleInto(moving, grid.dims, indexMap(moving, grid, affine), shift, out, interpolation, outside);
  return grid.withData(out, moving.components);
}

/** moving warped onto the field's grid: warped(p) = moving(p + u(p)) (or moving(T(p + u(p)))). */
export function warpVolume(moving: Volume, field: DisplacementField, options: WarpOptions = {}): Volume {
  checkField(field);
  return transform(moving, field, field.data, options);
}

/** moving resampled onto `grid` (the geometry of `grid` only): warped(p) = moving(T·p), T = identity by default. */
export function resampleVolume(moving: Volume, grid: Grid, options: WarpOptions = {}): Volume {
  return transform(moving, grid, null, options);
}

/** Continuous voxel indices of `grid` → LPS world mm. */
export function voxelsToWorld(grid: Volume, indices: readonly Vec3[]): Vec3[] {
  return indices.map((index) => grid.voxelToWorld(index));
}

/** LPS world mm → continuous voxel indices of `grid`. */
export function worldToVoxels(grid: Volume, points: readonly Vec3[]): Vec3[] {
  return points.map((point) => grid.worldToVoxel(point));
}

/** World points through a 4×4 row-major affine. */
export function transformPoints(points: readonly Vec3[], affine: readonly number[]): Vec3[] {
  const a = checkAffine('affine', affine);
  return points.map(([x, y, z]) => [
    a[0] * x + a[1] * y + a[2] * z + a[3],
    a[4] * x + a[5] * y + a[6] * z + a[7],
    a[8] * x + a[9] * y + a[10] * z + a[11],
  ]);
}

/** Fixed-space world points to moving space: p → p + u(p). */
export function warpPoints(points: readonly Vec3[], field: DisplacementField): Vec3[] {
  const u = sampleField(field, points);
  return points.map((p, n) => [p[0] + u[n][0], p[1] + u[n][1], p[2] + u[n][2]]);
}

export interface InverseWarpOptions {
  /** Most fixed-point iterations per point (default 50). */
  iterations?: number;
  /** Stop when |p + u(p) − q| ≤ tolerance mm for every point (default 1e-4). */
  tolerance?: number;
}

/**
 * Moving-space world points q to fixed space: solves p + u(p) = q by the fixed-point iteration
 * p ← q − u(p) from p = q. `residual` is the largest |p + u(p) − q| (mm) of the returned points.
 */
export function inverseWarpPoints(
  points: readonly Vec3[],
  field: DisplacementField,
  options: InverseWarpOptions = {},
): { points: Vec3[]; residual: number } {
  checkField(field);
  const iterations = integer('iterations', options.iterations ?? 50, { min: 0 });
  const tolerance = number('tolerance', options.tolerance ?? 1e-4, { min: 0 });
  if (!points.every((q) => q.length === 3 && q.every(Number.isFinite))) {
    fail('points', 'expected finite [x, y, z] world coordinates');
  }
  let estimate: Vec3[] = points.map((q) => [...q]);
  let residual = Infinity;
  for (let n = 0; ; n++) {
    const mapped = warpPoints(estimate, field);
    residual = mapped.reduce(
      (max, m, i) => Math.max(max, Math.hypot(m[0] - points[i][0], m[1] - points[i][1], m[2] - points[i][2])),
      0,
    );
    if (residual <= tolerance || n === iterations) break;
    // p ← q − u(p) = p − (p + u(p) − q)
    estimate = estimate.map((p, i) => [
      p[0] - (mapped[i][0] - points[i][0]),
      p[1] - (mapped[i][1] - points[i][1]),
      p[2] - (mapped[i][2] - points[i][2]),
    ]);
  }
  return { points: estimate, residual };
}
