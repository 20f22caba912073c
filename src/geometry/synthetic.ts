/**
 * Synthetic deformations with known ground truth, for tests and benchmarks:
 * - random smooth diffeomorphisms: Gaussian velocities on a control grid (spacing = length scale),
 *   cubic B-spline interpolation, scaling-and-squaring integration, amplitude set exactly;
 * - a breathing-like thorax deformation (cranio-caudal diaphragm motion + anterior–posterior chest
 *   motion);
 * - test pairs: a moving volume made from a fixed one, the ground-truth field and point
 *   correspondences.
 * All fields follow the pull-back convention of field.ts: fixed p ↔ moving p + u(p).
 */
import { fail } from '../util/errors.ts';
import { integer, number, oneOf } from '../util/is.ts';
import { composeFields, expField, invertField } from './compose.ts';
import { displacementNorms, sampleField, type DisplacementField } from './field.ts';
import { jacobianDeterminant } from './jacobian.ts';
import { Random } from './random.ts';
import { indexMap, resampleInto } from './sampling.ts';
import { warpVolume } from './warp.ts';
import { Volume, type Vec3 } from './volume.ts';

export interface RandomFieldOptions {
  /** Seed of the generator (an unsigned 32-bit integer). */
  seed: number;
  /** Target displacement in mm, measured as `measure` over the voxels of the returned field. */
  amplitude: number;
  /** 'max' (largest displacement, default) or 'rms' (root mean square over voxels). */
  measure?: 'max' | 'rms';
  /** Control-point spacing in mm: the length over which displacements vary (default 32). */
  lengthScale?: number;
}

export interface SyntheticField {
  /** The deformation (world mm, pull-back: fixed p ↔ moving p + u(p)). */
  field: DisplacementField;
  /** Its approximate inverse on the same grid (invertField). */
  inverse: DisplacementField;
  /** Smallest det(I + ∇u) over the voxels of `field`. */
  minJacobian: number;
  /** Largest and RMS displacement of `field` (mm). */
  max: number;
  rms: number;
}

/** Cubic B-spline weights of the four control points around fraction f ∈ [0, 1). */
function bsplineWeights(f: number, w: Float64Array, at: number): void {
  const g = 1 - f;
  w[at] = (g * g * g) / 6;
  w[at + 1] = (3 * f * f * f - 6 * f * f + 4) / 6;
  w[at + 2] = (-3 * f * f * f + 3 * f * f + 3 * f + 1) / 6;
  w[at + 3] = (f * f * f) / 6;
}

/**
 * Evaluates, along one axis of a planar 3-component array, the cubic B-spline whose control points
 * are that axis's entries: output entry m sits at control coordinate m·ratio + 1 (one control
 * point of margin before the first sample).
 */
function bsplineAlongAxis(src: Float64Array, dims: Vec3, axis: number, length: number, ratio: number) {
  const outDims: Vec3 = [...dims];
  outDims[axis] = length;
  const cells = new Int32Array(length);
  const weights = new Float64Array(4 * length);
  for (let m = 0; m < length; m++) {
    const t = m * ratio;
    cells[m] = Math.min(Math.floor(t), dims[axis] - 4);
    bsplineWeights(t - cells[m], weights, 4 * m);
  }
  const n = outDims[0] * outDims[1] * outDims[2];
  const out = new Float64Array(3 * n);
  const srcStride = axis === 0 ? 1 : axis === 1 ? dims[0] : dims[0] * dims[1];
  const srcN = dims[0] * dims[1] * dims[2];
  let t = 0;
  for (let k = 0; k < outDims[2]; k++) {
    for (let j = 0; j < outDims[1]; j++) {
      for (let i = 0; i < outDims[0]; i++, t++) {
        const m = axis === 0 ? i : axis === 1 ? j : k;
        const base = (axis === 0 ? 0 : i) + dims[0] * ((axis === 1 ? 0 : j) + dims[1] * (axis === 2 ? 0 : k));
        const first = base + cells[m] * srcStride;
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let r = 0; r < 4; r++) sum += weights[4 * m + r] * src[first + r * srcStride + c * srcN];
          out[t + c * n] = sum;
        }
      }
    }
  }
  return { data: out, dims: outDims };
}

/** A grid over the same box and direction as `grid`, with spacing near `target` mm (never finer). */
function coarseGrid(grid: Volume, target: number): Volume {
  const dims: Vec3 = [1, 1, 1];
  const spacing: Vec3 = [...grid.spacing];
  for (let a = 0; a < 3; a++) {
    const extent = (grid.dims[a] - 1) * grid.spacing[a];
    dims[a] = Math.min(grid.dims[a], Math.ceil(extent / target) + 1);
    if (dims[a] > 1) spacing[a] = extent / (dims[a] - 1);
  }
  return new Volume({
    data: new Float32Array(dims[0] * dims[1] * dims[2] * 3),
    dims,
    spacing,
    origin: grid.origin,
    direction: grid.direction,
    components: 3,
  });
}

/** Random velocities (unit Gaussian per control point and world component), B-spline interpolated. */
function randomVelocity(work: Volume, lengthScale: number, random: Random): DisplacementField {
  let dims: Vec3 = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const extent = (work.dims[a] - 1) * work.spacing[a];
    dims[a] = Math.ceil(extent / lengthScale) + 4; // the covering points, plus 1 before and 2 after (cubic support)
  }
  let data = new Float64Array(3 * dims[0] * dims[1] * dims[2]);
  for (let t = 0; t < data.length; t++) data[t] = random.gaussian();
  for (let a = 0; a < 3; a++) {
    ({ data, dims } = bsplineAlongAxis(data, dims, a, work.dims[a], work.spacing[a] / lengthScale));
  }
  return work.withData(Float32Array.from(data), 3);
}

function scaled(field: DisplacementField, factor: number): DisplacementField {
  return field.withData(
    field.data.map((v) => v * factor),
    3,
  );
}

/** Trilinear resampling of a field onto another grid covering the same box (edges replicated). */
function upsample(field: DisplacementField, grid: Volume): DisplacementField {
  const out = new Float32Array(grid.size * 3);
  resampleInto(field, grid.dims, indexMap(field, grid), null, out, 'linear', null);
  return grid.withData(out, 3);
}

function minimum(values: ArrayLike<number>): number {
  let min = Infinity;
  for (let t = 0; t < values.length; t++) if (values[t] < min) min = values[t];
  return min;
}

/**
 * A smooth random diffeomorphic field on `grid` with displacement `amplitude` mm (to 0.1 %) by the
 * chosen measure. The stationary velocity is built on a working grid of spacing lengthScale/8
 * (never finer than the image), integrated there by scaling and squaring, and resampled
 * trilinearly onto `grid`; its scale is adjusted until the measured amplitude matches. The inverse
 * is exp(−v) refined on `grid` by fixed-point iteration (invertField) to 0.01 mm (well below the
 * fields' own trilinear interpolation error).
 */
export function randomDiffeomorphicField(grid: Volume, options: RandomFieldOptions): SyntheticField {
  const seed = integer('seed', options.seed, { min: 0, max: 0xffffffff });
  const amplitude = number('amplitude', options.amplitude, { min: 0 });
  const measure = oneOf('measure', options.measure ?? 'max', ['max', 'rms'] as const);
  const lengthScale = number('lengthScale', options.lengthScale ?? 32, { min: 0, exclusiveMin: true });
  const work = coarseGrid(grid, lengthScale / 8);
  const velocity = randomVelocity(work, lengthScale, new Random(seed));
  let scale = amplitude === 0 ? 0 : amplitude / displacementNorms(velocity)[measure];
  let field = upsample(expField(scaled(velocity, scale)), grid);
  for (let round = 0; round < 10 && amplitude > 0; round++) {
    const measured = displacementNorms(field)[measure];
    if (Math.abs(measured / amplitude - 1) <= 1e-3) break;
    scale *= amplitude / measured;
    field = upsample(expField(scaled(velocity, scale)), grid);
  }
  const initial = upsample(expField(scaled(velocity, -scale)), grid);
  const inverse = invertField(field, { initial, iterations: 30, tolerance: 0.01 }).field;
  const norms = displacementNorms(field);
  return { field, inverse, minJacobian: minimum(jacobianDeterminant(field).data), ...norms };
}

export interface BreathingOptions {
  /**
   * Cranio-caudal displacement at the lung base in mm (typically 10–25). Positive: the fixed image
   * is the inhale phase and the moving one exhale, so the diaphragm moves superior (+z in LPS).
   */
  amplitude: number;
  /** Anterior–posterior displacement of the anterior chest wall in mm (default 0.3·amplitude; positive: toward posterior, +y). */
  apAmplitude?: number;
  /** Lung mask on the grid: its world bounding box is the lung region. */
  mask?: Volume;
  /** Lung region as a world LPS box (when no mask); default the whole grid. */
  region?: { min: Vec3; max: Vec3 };
  /** Width in mm of the smooth transition of the cranio-caudal motion outside the region's x/y extent (default 20). */
  falloff?: number;
}

/** 0 below 0, 1 above 1, 3t² − 2t³ between: a C¹ step. */
function smoothstep(t: number): number {
  if (t <= 0) return 0;
  if (t >= 1) return 1;
  return t * t * (3 - 2 * t);
}

/** World LPS bounding box of the voxel centres where `mask` is nonzero. */
function maskBox(mask: Volume): { min: Vec3; max: Vec3 } {
  const [nx, ny, nz] = mask.dims;
  const lo: Vec3 = [nx, ny, nz];
  const hi: Vec3 = [-1, -1, -1];
  let t = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, t++) {
        if (mask.data[t] === 0) continue;
        if (i < lo[0]) lo[0] = i;
        if (i > hi[0]) hi[0] = i;
        if (j < lo[1]) lo[1] = j;
        if (j > hi[1]) hi[1] = j;
        if (k < lo[2]) lo[2] = k;
        if (k > hi[2]) hi[2] = k;
      }
    }
  }
  if (hi[0] < 0) fail('mask', 'is empty (no nonzero voxel)');
  return worldBox(mask, lo, hi);
}

/** World box around the corners of the index box [lo, hi]. */
function worldBox(grid: Volume, lo: Vec3, hi: Vec3): { min: Vec3; max: Vec3 } {
  const min: Vec3 = [Infinity, Infinity, Infinity];
  const max: Vec3 = [-Infinity, -Infinity, -Infinity];
  for (let corner = 0; corner < 8; corner++) {
    const p = grid.voxelToWorld([
      corner & 1 ? hi[0] : lo[0],
      corner & 2 ? hi[1] : lo[1],
      corner & 4 ? hi[2] : lo[2],
    ]);
    for (let a = 0; a < 3; a++) {
      min[a] = Math.min(min[a], p[a]);
      max[a] = Math.max(max[a], p[a]);
    }
  }
  return { min, max };
}

/**
 * A breathing-like deformation on `grid` (LPS: +y posterior, +z superior), with the lung region
 * [min, max] (mask box, given box, or the grid):
 * - cranio-caudal: u_z = amplitude · (1 − S(zₙ)) · w_x · w_y, zₙ the height in the region (0 at
 *   the base, 1 at the apex), S the C¹ smoothstep: largest at and below the diaphragm, 0 at the
 *   apex. w_x, w_y are 1 over the region's x/y extent and fall smoothly to 0 within `falloff` mm
 *   outside it, so chest wall, spine and table stay still. This is a smooth stand-in for sliding:
 *   the shear is concentrated in the falloff band, not discontinuous at the mask boundary.
 * - anterior–posterior: u_y = apAmplitude · S(yₙ) · (1 − S(zₙ)/2), yₙ running from 0 at the
 *   region's posterior side to 1 at its anterior side (constant beyond): the anterior chest wall
 *   moves back, the spine stays, the upper chest moves half as much.
 * The field is checked to be folding-free (min det J > 0), otherwise a DiffregError is thrown.
 */
export function breathingField(
  grid: Volume,
  options: BreathingOptions,
): { field: DisplacementField; minJacobian: number } {
  const amplitude = number('amplitude', options.amplitude);
  const apAmplitude = number('apAmplitude', options.apAmplitude ?? 0.3 * amplitude);
  const falloff = number('falloff', options.falloff ?? 20, { min: 0, exclusiveMin: true });
  let box: { min: Vec3; max: Vec3 };
  if (options.mask) {
    if (!options.mask.sameGrid(grid)) fail('mask', 'must lie on the grid of the deformation');
    box = maskBox(options.mask);
  } else if (options.region) {
    box = options.region;
    if (!box.min.every((v, a) => Number.isFinite(v) && v < box.max[a])) {
      fail(
        'region',
        `expected min < max on every axis, got min ${box.min.join(', ')} and max ${box.max.join(', ')}`,
      );
    }
  } else {
    box = worldBox(grid, [0, 0, 0], [grid.dims[0] - 1, grid.dims[1] - 1, grid.dims[2] - 1]);
  }
  const { min, max } = box;
  const height = Math.max(max[2] - min[2], 1e-6);
  const depth = Math.max(max[1] - min[1], 1e-6);
  const plateau = (v: number, lo: number, hi: number) =>
    smoothstep((v - lo + falloff) / falloff) * smoothstep((hi + falloff - v) / falloff);
  const n = grid.size;
  const data = new Float32Array(3 * n);
  const [nx, ny, nz] = grid.dims;
  const m = grid.indexToWorld;
  let t = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, t++) {
        const x = m[0] * i + m[1] * j + m[2] * k + m[3];
        const y = m[4] * i + m[5] * j + m[6] * k + m[7];
        const z = m[8] * i + m[9] * j + m[10] * k + m[11];
        const up = smoothstep((z - min[2]) / height);
        data[t + n] = apAmplitude * smoothstep((max[1] - y) / depth) * (1 - up / 2);
        data[t + 2 * n] = amplitude * (1 - up) * plateau(x, min[0], max[0]) * plateau(y, min[1], max[1]);
      }
    }
  }
  const field = grid.withData(data, 3);
  const minJacobian = minimum(jacobianDeterminant(field).data);
  if (!(minJacobian > 0)) {
    fail(
      'breathing deformation',
      `folds (min det J = ${minJacobian.toFixed(3)}): use a smaller amplitude or a larger falloff`,
    );
  }
  return { field, minJacobian };
}

export interface PairOptions {
  /** Fixed landmarks (world mm). Default: `pointCount` random voxel centres. */
  points?: Vec3[];
  /** Number of random landmarks when `points` is not given (default 100). */
  pointCount?: number;
  /** Random landmarks are drawn among this mask's nonzero voxels (same grid as fixed). */
  pointMask?: Volume;
  /** A label map on the fixed grid, warped along with nearest-neighbour interpolation. */
  labels?: Volume;
  /** Moving-image value where the deformation pulls from outside the fixed volume (default: fixed's minimum). */
  outside?: number;
}

export interface SyntheticPair {
  /** The fixed volume deformed so that moving(p + u(p)) = fixed(p) (float32, fixed grid). */
  moving: Volume;
  /** `labels` deformed the same way (nearest neighbour), when given. */
  movingLabels?: Volume;
  /** Ground-truth field: what a registration of fixed (fixed) to moving should recover. */
  field: DisplacementField;
  fixedPoints: Vec3[];
  /** fixedPoints[n] + u(fixedPoints[n]). */
  movingPoints: Vec3[];
  minJacobian: number;
  /**
   * Largest |u(p) + v(p + u(p))| (mm) over the voxels p whose moving point p + u(p) lies inside the
   * grid, v the inverse that made the moving image: how far apart fixed(p) and moving(p + u(p))
   * sample the fixed image. It is of the order of trilinear interpolation error of the fields.
   */
  inverseResidual: number;
}

/** True when p + u(p), p the centre of voxel (i, j, k) at offset t, lies within the grid's voxel centres. */
function landsInside(field: DisplacementField, i: number, j: number, k: number, t: number): boolean {
  const [a0, a1, a2, a3, a4, a5, a6, a7, a8] = field.worldToIndexMatrix;
  const [nx, ny, nz] = field.dims;
  const n = field.size;
  const u = field.data;
  // continuous index of p + u(p) = (i, j, k) + A⁻¹·u(p)
  const x = i + a0 * u[t] + a1 * u[t + n] + a2 * u[t + 2 * n];
  const y = j + a3 * u[t] + a4 * u[t + n] + a5 * u[t + 2 * n];
  const z = k + a6 * u[t] + a7 * u[t + n] + a8 * u[t + 2 * n];
  return x >= 0 && y >= 0 && z >= 0 && x <= nx - 1 && y <= ny - 1 && z <= nz - 1;
}

/** Uniformly drawn distinct voxel centres (within `mask`) whose moving point p + u(p) lies inside the grid. */
function randomPoints(field: DisplacementField, count: number, random: Random, mask?: Volume): Vec3[] {
  if (mask && !mask.sameGrid(field)) fail('pointMask', 'must lie on the fixed grid');
  let left = 0;
  const candidates = new Int32Array(field.size);
  for (let t = 0; t < field.size; t++) if (!mask || mask.data[t] !== 0) candidates[left++] = t;
  const [nx, ny] = field.dims;
  const points: Vec3[] = [];
  while (points.length < count && left > 0) {
    const pick = random.integer(left);
    const t = candidates[pick];
    candidates[pick] = candidates[--left];
    const index: Vec3 = [t % nx, Math.floor(t / nx) % ny, Math.floor(t / (nx * ny))];
    if (landsInside(field, ...index, t)) points.push(field.voxelToWorld(index));
  }
  if (points.length < count)
    fail('pointCount', `only ${points.length} of ${count} landmarks fit in the volume`);
  return points;
}

/** Largest |residual| over the voxels p of `field`'s grid whose p + u(p) lies inside that grid. */
function residualInside(field: DisplacementField, residual: DisplacementField): number {
  const [nx, ny, nz] = field.dims;
  const n = field.size;
  const r = residual.data;
  let max = 0;
  let t = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, t++) {
        if (landsInside(field, i, j, k, t)) max = Math.max(max, Math.hypot(r[t], r[t + n], r[t + 2 * n]));
      }
    }
  }
  return max;
}

function makePair(fixed: Volume, truth: SyntheticField, seed: number, options: PairOptions): SyntheticPair {
  const { field, inverse } = truth;
  const outside = number('outside', options.outside ?? minimum(fixed.data));
  let fixedPoints: Vec3[];
  if (options.points) {
    fixedPoints = options.points.map((p) => [...p]);
  } else {
    const count = integer('pointCount', options.pointCount ?? 100, { min: 0 });
    // a stream independent of the one that drew the deformation
    const random = new Random(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) >>> 0);
    fixedPoints = randomPoints(field, count, random, options.pointMask);
  }
  const u = sampleField(field, fixedPoints);
  const pair: SyntheticPair = {
    moving: warpVolume(fixed, inverse, { interpolation: 'linear', outside }),
    field,
    fixedPoints,
    movingPoints: fixedPoints.map((p, i) => [p[0] + u[i][0], p[1] + u[i][1], p[2] + u[i][2]]),
    minJacobian: truth.minJacobian,
    inverseResidual: residualInside(field, composeFields(inverse, field)),
  };
  if (options.labels) {
    if (!options.labels.sameGrid(fixed)) fail('labels', 'must lie on the fixed grid');
    pair.movingLabels = warpVolume(options.labels, inverse, { interpolation: 'nearest', outside: 0 });
  }
  return pair;
}

/**
 * A test pair from a fixed volume and a seed: a random diffeomorphic field u (randomDiffeomorphicField),
 * the moving volume fixed ∘ u⁻¹ (made with u's numerical inverse), and landmarks p ↔ p + u(p).
 */
export function makeSyntheticPair(fixed: Volume, options: RandomFieldOptions & PairOptions): SyntheticPair {
  return makePair(fixed, randomDiffeomorphicField(fixed, options), options.seed, options);
}

export interface BreathingPairOptions extends BreathingOptions, PairOptions {
  /** Seed for the random landmarks (default 1). */
  seed?: number;
}

/**
 * A synthetic breathing pair: breathingField u on the fixed grid (fixed = inhale for a positive
 * amplitude), the moving volume made with u's fixed-point inverse (invertField), landmarks p ↔ p + u(p).
 */
export function makeBreathingPair(fixed: Volume, options: BreathingPairOptions): SyntheticPair {
  const seed = integer('seed', options.seed ?? 1, { min: 0, max: 0xffffffff });
  const { field, minJacobian } = breathingField(fixed, options);
  const inverse = invertField(field, { iterations: 50, tolerance: 0.01 }).field;
  return makePair(fixed, { field, inverse, minJacobian, ...displacementNorms(field) }, seed, options);
}
