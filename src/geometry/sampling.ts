/**
 * The interpolation core shared by warping, field composition, inversion and exponentiation:
 * for every voxel of a target grid, a continuous index into a source volume is computed as
 * M·[i, j, k, 1] (+ B·d with d a per-voxel world displacement), and the source is sampled there.
 *
 * Sampling rule (ITK's convention): a continuous index is inside the source when it lies within the
 * voxels' extent, −0.5 ≤ x ≤ n − 0.5 on every axis; there, neighbours beyond the last voxel centre
 * are clamped to the edge voxel. Outside, either a constant is written (`outside: number`, for
 * images) or the index is clamped too (`outside: null`, for displacement fields: edge replication).
 */
import { fail } from '../util/errors.ts';
import { type Grid, type Mat3, type Vec3, type Volume, type VoxelArray } from './volume.ts';

export type Interpolation = 'linear' | 'nearest';

/** Source continuous index = m·[i, j, k, 1] + b·d (m row-major 3×4, b row-major 3×3). */
export interface IndexMap {
  m: Float64Array;
  b: Float64Array;
}

/** Checks a 4×4 row-major affine (last row 0 0 0 1) and returns it as numbers. */
export function checkAffine(name: string, affine: readonly number[]): number[] {
  if (!Array.isArray(affine) || affine.length !== 16 || !affine.every((v) => Number.isFinite(v))) {
    fail(name, 'expected a 4x4 row-major affine of 16 finite numbers');
  }
  if (affine[12] !== 0 || affine[13] !== 0 || affine[14] !== 0 || affine[15] !== 1) {
    fail(name, `last row must be 0 0 0 1, got ${affine.slice(12).join(' ')}`);
  }
  return [...affine];
}

/**
 * Index map from target voxels to source voxels through an optional world affine T (target world →
 * source world): source index = W2I_source(T(p + d)), p the target voxel centre, d a displacement.
 */
export function indexMap(source: Volume, target: Grid, affine?: readonly number[]): IndexMap {
  const t = affine ?? [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  const inv = source.worldToIndexMatrix;
  const p = target.indexToWorld;
  // b = W2I·T_linear; m = W2I·(T·I2W_target − origin_source)
  const b = new Float64Array(9);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++)
      b[r * 3 + c] = inv[r * 3] * t[c] + inv[r * 3 + 1] * t[4 + c] + inv[r * 3 + 2] * t[8 + c];
  }
  const tp = new Float64Array(12); // T·I2W_target − origin_source (3×4)
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) {
      tp[r * 4 + c] =
        t[r * 4] * p[c] + t[r * 4 + 1] * p[4 + c] + t[r * 4 + 2] * p[8 + c] + (c === 3 ? t[r * 4 + 3] : 0);
    }
    tp[r * 4 + 3] -= source.origin[r];
  }
  const m = new Float64Array(12);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) {
      m[r * 4 + c] = inv[r * 3] * tp[c] + inv[r * 3 + 1] * tp[4 + c] + inv[r * 3 + 2] * tp[8 + c];
    }
  }
  return { m, b };
}

/** A source volume prepared for sampling: float32 data (for linear) and its shape as plain numbers. */
interface Source {
  raw: VoxelArray;
  data: Float32Array;
  nx: number;
  ny: number;
  nz: number;
  components: number;
}

function prepare(volume: Volume, linear: boolean): Source {
  const [nx, ny, nz] = volume.dims;
  const raw = volume.data;
  const data = raw instanceof Float32Array ? raw : linear ? Float32Array.from(raw) : new Float32Array(0);
  return { raw, data, nx, ny, nz, components: volume.components };
}

/**
 * The hot loop: samples `src` at M·[i, j, k, 1] (+ B·shift) for every voxel of a target grid of
 * `dims`, writing planar components to `out`. The trilinear interpolation is written inline on
 * purpose (a call per voxel is not inlined by V8 and costs twice the time).
 */
function kernel(
  src: Source,
  dims: Vec3,
  map: IndexMap,
  shift: Float32Array | null,
  out: VoxelArray,
  linear: boolean,
  outside: number | null,
): void {
  const { raw, data, nx, ny, nz, components } = src;
  const nxy = nx * ny;
  const sourceSize = nxy * nz;
  const [tx, ty, tz] = dims;
  const n = tx * ty * tz;
  const { m, b: mb } = map;
  let t = 0;
  for (let k = 0; k < tz; k++) {
    for (let j = 0; j < ty; j++) {
      const rx = m[1] * j + m[2] * k + m[3];
      const ry = m[5] * j + m[6] * k + m[7];
      const rz = m[9] * j + m[10] * k + m[11];
      for (let i = 0; i < tx; i++, t++) {
        let x = rx + m[0] * i;
        let y = ry + m[4] * i;
        let z = rz + m[8] * i;
        if (shift !== null) {
          const dx = shift[t];
          const dy = shift[t + n];
          const dz = shift[t + 2 * n];
          x += mb[0] * dx + mb[1] * dy + mb[2] * dz;
          y += mb[3] * dx + mb[4] * dy + mb[5] * dz;
          z += mb[6] * dx + mb[7] * dy + mb[8] * dz;
        }
        if (
          outside !== null &&
          !(x >= -0.5 && y >= -0.5 && z >= -0.5 && x <= nx - 0.5 && y <= ny - 0.5 && z <= nz - 0.5)
        ) {
          for (let c = 0; c < components; c++) out[t + c * n] = outside;
          continue;
        }
        x = x < 0 ? 0 : x > nx - 1 ? nx - 1 : x;
        y = y < 0 ? 0 : y > ny - 1 ? ny - 1 : y;
        z = z < 0 ? 0 : z > nz - 1 ? nz - 1 : z;
        if (!linear) {
          const o = Math.floor(x + 0.5) + nx * Math.floor(y + 0.5) + nxy * Math.floor(z + 0.5);
          for (let c = 0; c < components; c++) out[t + c * n] = raw[o + c * sourceSize];
          continue;
        }
        const i0 = Math.floor(x);
        const j0 = Math.floor(y);
        const k0 = Math.floor(z);
        const fx = x - i0;
        const fy = y - j0;
        const fz = z - k0;
        const di = i0 < nx - 1 ? 1 : 0;
        const dj = j0 < ny - 1 ? nx : 0;
        const dk = k0 < nz - 1 ? nxy : 0;
        let o = i0 + nx * j0 + nxy * k0;
        for (let c = 0; c < components; c++, o += sourceSize) {
          const a = data[o] + (data[o + di] - data[o]) * fx;
          const b = data[o + dj] + (data[o + dj + di] - data[o + dj]) * fx;
          const d = data[o + dk] + (data[o + dk + di] - data[o + dk]) * fx;
          const e = data[o + dk + dj] + (data[o + dk + dj + di] - data[o + dk + dj]) * fx;
          const ab = a + (b - a) * fy;
          out[t + c * n] = ab + (d + (e - d) * fy - ab) * fz;
        }
      }
    }
  }
}

/**
 * Fills `out` (planar, target size × source components) with the source sampled at every target
 * voxel. `shift`, when given, is a planar 3-component world displacement on the target grid.
 * `outside`: the value for samples outside the source, or null to clamp (edge replication).
 * Linear output is float32; nearest output keeps any element type.
 */
export function resampleInto(
  source: Volume,
  targetDims: Vec3,
  map: IndexMap,
  shift: Float32Array | null,
  out: VoxelArray,
  interpolation: Interpolation,
  outside: number | null,
): void {
  const linear = interpolation === 'linear';
  kernel(prepare(source, linear), targetDims, map, shift, out, linear, outside);
}

/**
 * Samples a volume at world points (one row of `components` values per point); points outside get
 * `outside`, or the clamped edge values when `outside` is null.
 */
export function samplePoints(
  source: Volume,
  points: readonly Vec3[],
  interpolation: Interpolation,
  outside: number | null,
): number[][] {
  const linear = interpolation === 'linear';
  const src = prepare(source, linear);
  const inv: Mat3 = source.worldToIndexMatrix;
  const o = source.origin;
  const row = linear ? new Float32Array(src.components) : allocateLike(source.data, src.components);
  // each point is a 1-voxel target whose continuous index is the translation column of the map
  const map: IndexMap = { m: new Float64Array(12), b: new Float64Array(9) };
  return points.map((p) => {
    const dx = p[0] - o[0];
    const dy = p[1] - o[1];
    const dz = p[2] - o[2];
    map.m[3] = inv[0] * dx + inv[1] * dy + inv[2] * dz;
    map.m[7] = inv[3] * dx + inv[4] * dy + inv[5] * dz;
    map.m[11] = inv[6] * dx + inv[7] * dy + inv[8] * dz;
    kernel(src, [1, 1, 1], map, null, row, linear, outside);
    return Array.from(row);
  });
}

/** A zero-filled array of the same element type as `like`. */
export function allocateLike(like: VoxelArray, length: number): VoxelArray {
  const Ctor = like.constructor as new (length: number) => VoxelArray;
  return new Ctor(length);
}
