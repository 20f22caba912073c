/**
 * Displacement fields. A field lives on a grid (usually the fixed image's) as a planar 3-component
 * `Volume<Float32Array>` holding, at each voxel centre p, the displacement u(p) in LPS world mm.
 * Convention (pull-back, as in ITK/elastix/Learn2Reg): the transform maps the fixed-image world
 * point p to p + u(p) in the moving image, so warped(p) = moving(p + u(p)).
 *
 * Between voxel centres a field is interpolated trilinearly; beyond the outermost voxel centres the
 * edge values are replicated (clamped index), so a field is defined, and continuous, everywhere.
 */
import { fail } from '../util/errors.ts';
import { samplePoints } from './sampling.ts';
import { Volume, type Vec3 } from './volume.ts';

/** A 3-component planar Float32 volume of world-mm displacements (see the module comment). */
export type DisplacementField = Volume<Float32Array>;

/** Throws a one-line DiffregError unless `field` is a 3-component Float32 volume. */
export function checkField(field: Volume, name = 'displacement field'): DisplacementField {
  if (field.components !== 3)
    fail(name, `expected 3 components (a displacement field), got ${field.components}`);
  if (!(field.data instanceof Float32Array))
    fail(name, `expected float32 data, got ${field.data.constructor.name}`);
  return field as DisplacementField;
}

/** The identity transform on the grid of `grid`: all displacements zero. */
export function zeroField(grid: Volume): DisplacementField {
  return grid.withData(new Float32Array(grid.size * 3), 3);
}

/** A field on `grid` with u(p) = displacement(p) at each voxel centre p (world mm). */
export function fieldFromFunction(grid: Volume, displacement: (p: Vec3) => Vec3): DisplacementField {
  const n = grid.size;
  const data = new Float32Array(n * 3);
  const [nx, ny, nz] = grid.dims;
  let t = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, t++) {
        const u = displacement(grid.voxelToWorld([i, j, k]));
        data[t] = u[0];
        data[t + n] = u[1];
        data[t + 2 * n] = u[2];
      }
    }
  }
  return grid.withData(data, 3);
}

/** u at arbitrary world points (trilinear; edge values replicated beyond the grid). */
export function sampleField(field: DisplacementField, points: readonly Vec3[]): Vec3[] {
  checkField(field);
  return samplePoints(field, points, 'linear', null) as Vec3[];
}

/** Largest and root-mean-square displacement length over all voxels (mm). */
export function displacementNorms(field: DisplacementField): { max: number; rms: number } {
  const n = field.size;
  const d = field.data;
  let max2 = 0;
  let sum2 = 0;
  for (let t = 0; t < n; t++) {
    const s = d[t] * d[t] + d[t + n] * d[t + n] + d[t + 2 * n] * d[t + 2 * n];
    sum2 += s;
    if (s > max2) max2 = s;
  }
  return { max: Math.sqrt(max2), rms: Math.sqrt(sum2 / n) };
}

/** Applies the 3×3 row-major matrix to every displacement vector. */
function mapVectors(field: Volume, matrix: readonly number[]): Volume<Float32Array> {
  const n = field.size;
  const src = field.data;
  const out = new Float32Array(n * 3);
  const [a, b, c, d, e, f, g, h, i] = matrix;
  for (let t = 0; t < n; t++) {
    const x = src[t];
    const y = src[t + n];
    const z = src[t + 2 * n];
    out[t] = a * x + b * y + c * z;
    out[t + n] = d * x + e * y + f * z;
    out[t + 2 * n] = g * x + h * y + i * z;
  }
  return field.withData(out, 3);
}

/**
 * World-mm field → Learn2Reg's voxel-unit convention: u_voxel = A⁻¹·u_world with
 * A = direction·diag(spacing), i.e. displacements along the array axes i, j, k in voxels of this grid.
 * The planar result is, in memory, exactly a Fortran-order (nx, ny, nz, 3) array — what a NIfTI
 * file of dims (nx, ny, nz, 3) stores — assuming the grid's array axes are those of the file.
 */
export function fieldToVoxelUnits(field: DisplacementField): Volume<Float32Array> {
  checkField(field);
  return mapVectors(field, field.worldToIndexMatrix);
}

/** The inverse of fieldToVoxelUnits: u_world = A·u_voxel (A = direction·diag(spacing)). */
export function fieldFromVoxelUnits(voxelField: Volume): DisplacementField {
  if (voxelField.components !== 3) {
    fail('voxel displacement field', `expected 3 components, got ${voxelField.components}`);
  }
  const m = voxelField.indexToWorld;
  return mapVectors(voxelField, [m[0], m[1], m[2], m[4], m[5], m[6], m[8], m[9], m[10]]);
}
