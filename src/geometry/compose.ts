/**
 * Field algebra on displacement fields (world mm, pull-back convention; see field.ts): composition,
 * approximate inversion, and exponentiation of stationary velocity fields.
 */
import { fail } from '../util/errors.ts';
import { integer, number } from '../util/is.ts';
import { checkField, displacementNorms, type DisplacementField } from './field.ts';
import { checkAffine, indexMap, resampleInto } from './sampling.ts';
import type { Vec3 } from './volume.ts';

/**
 * The field of x ↦ A(x + u(x)): the deformation u, then the world affine A (4×4 row-major), on u's
 * grid. A(x + u) − x = (A(x) − x) + B·u with B A's linear part; A(x) − x is affine in the voxel index.
 */
export function fieldThenAffine(field: DisplacementField, affine: readonly number[]): DisplacementField {
  checkField(field, 'field');
  const a = checkAffine('affine', affine);
  const moved = (index: Vec3) => {
    const x = field.voxelToWorld(index);
    return [0, 1, 2].map(
      (r) => a[4 * r] * x[0] + a[4 * r + 1] * x[1] + a[4 * r + 2] * x[2] + a[4 * r + 3] - x[r],
    );
  };
  const t0 = moved([0, 0, 0]);
  const step = (
    [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ] as Vec3[]
  ).map((e) => moved(e).map((v, r) => v - t0[r]));
  const out = new Float32Array(field.size * 3);
  const [nx, ny, nz] = field.dims;
  const n = field.size;
  const u = field.data;
  for (let r = 0; r < 3; r++) {
    const [b0, b1, b2] = [a[4 * r], a[4 * r + 1], a[4 * r + 2]];
    for (let k = 0, i = 0; k < nz; k++)
      for (let j = 0; j < ny; j++) {
        const row = t0[r] + j * step[1][r] + k * step[2][r];
        for (let l = 0; l < nx; l++, i++)
          out[r * n + i] = row + l * step[0][r] + b0 * u[i] + b1 * u[n + i] + b2 * u[2 * n + i];
      }
  }
  return field.withData(out, 3) as DisplacementField;
}

/**
 * The field of the transform "inner, then outer": w(x) = inner(x) + outer(x + inner(x)), on inner's
 * grid (outer may lie on any grid; it is sampled trilinearly in world space, edges replicated).
 * For images this is the warp order: warpVolume(warpVolume(m, outer), inner) ≈ warpVolume(m, w).
 */
export function composeFields(outer: DisplacementField, inner: DisplacementField): DisplacementField {
  checkField(outer, 'outer field');
  checkField(inner, 'inner field');
  const out = new Float32Array(inner.size * 3);
  resampleInto(outer, inner.dims, indexMap(outer, inner), inner.data, out, 'linear', null);
  const v = inner.data;
  for (let t = 0; t < out.length; t++) out[t] += v[t];
  return inner.withData(out, 3);
}

export interface InvertOptions {
  /** Most fixed-point iterations (default 30). */
  iterations?: number;
  /** Stop when the largest residual |v(x) + u(x + v(x))| is at most this many mm (default 1e-3). */
  tolerance?: number;
  /** Starting estimate of the inverse on u's grid (default zero), e.g. exp(−v) for u = exp(v). */
  initial?: DisplacementField;
}

export interface InverseField {
  field: DisplacementField;
  /** Largest residual |v(x) + u(x + v(x))| over the voxels (mm) of the returned field. */
  residual: number;
  /** Mean residual over the voxels (mm). */
  meanResidual: number;
  /** Fixed-point iterations done. */
  iterations: number;
}

/**
 * Approximate inverse v of u on u's grid, by the fixed-point iteration v ← −u(x + v(x)) from
 * v = 0 (or `initial`).
 * It converges where the transform is invertible and u's gradient is moderate (a contraction);
 * the residual says how well composeFields(u, v) ≈ 0 holds.
 */
export function invertField(u: DisplacementField, options: InvertOptions = {}): InverseField {
  checkField(u);
  const maxIterations = integer('iterations', options.iterations ?? 30, { min: 0 });
  const tolerance = number('tolerance', options.tolerance ?? 1e-3, { min: 0 });
  const n = u.size;
  const map = indexMap(u, u);
  if (options.initial && !checkField(options.initial, 'initial').sameGrid(u)) {
    fail('initial', 'must lie on the grid of the field to invert');
  }
  let v = options.initial ? options.initial.data.slice() : new Float32Array(n * 3);
  let sampled = new Float32Array(n * 3);
  let iterations = 0;
  while (true) {
    resampleInto(u, u.dims, map, v, sampled, 'linear', null);
    let max2 = 0;
    let sum = 0;
    for (let t = 0; t < n; t++) {
      const rx = v[t] + sampled[t];
      const ry = v[t + n] + sampled[t + n];
      const rz = v[t + 2 * n] + sampled[t + 2 * n];
      const r2 = rx * rx + ry * ry + rz * rz;
      sum += Math.sqrt(r2);
      if (r2 > max2) max2 = r2;
    }
    const residual = Math.sqrt(max2);
    if (residual <= tolerance || iterations === maxIterations) {
      return { field: u.withData(v, 3), residual, meanResidual: sum / n, iterations };
    }
    // v ← −u(x + v): reuse the old v's buffer for the next samples
    for (let t = 0; t < 3 * n; t++) sampled[t] = -sampled[t];
    [v, sampled] = [sampled, v];
    iterations++;
  }
}

export interface ExpOptions {
  /**
   * Number of squarings N. Default: the smallest N ≥ 0 with max|v|/2^N ≤ 0.25 of the smallest
   * spacing, so the first (explicit Euler) step moves no point by more than a quarter voxel.
   */
  squarings?: number;
}

/** The smallest N with max|v|/2^N ≤ spacing/4 (see ExpOptions.squarings). */
export function defaultSquarings(velocity: DisplacementField): number {
  const step = 0.25 * Math.min(...velocity.spacing);
  const max = displacementNorms(velocity).max;
  return max <= step ? 0 : Math.min(30, Math.ceil(Math.log2(max / step)));
}

/**
 * exp(v) of a stationary velocity field by scaling and squaring: u₀ = v/2^N, then N times
 * u ← composeFields(u, u). The result is the displacement of the time-1 flow of v.
 */
export function expField(velocity: DisplacementField, options: ExpOptions = {}): DisplacementField {
  checkField(velocity, 'velocity field');
  const squarings =
    options.squarings === undefined
      ? defaultSquarings(velocity)
      : integer('squarings', options.squarings, { min: 0, max: 60 });
  const n = velocity.size;
  const scale = 2 ** -squarings;
  let u = new Float32Array(n * 3);
  for (let t = 0; t < 3 * n; t++) u[t] = velocity.data[t] * scale;
  let next = new Float32Array(n * 3);
  const map = indexMap(velocity, velocity);
  for (let s = 0; s < squarings; s++) {
    resampleInto(velocity.withData(u, 3), velocity.dims, map, u, next, 'linear', null);
    for (let t = 0; t < 3 * n; t++) next[t] += u[t];
    [u, next] = [next, u];
  }
  return velocity.withData(u, 3);
}
