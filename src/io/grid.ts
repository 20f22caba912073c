/**
 * Image geometry without voxel data: what landmark readers need to convert voxel indices to LPS world
 * millimetres. A `Volume` is a `Grid`, and so is a bare object such as `dirLabGrid('case1')`.
 */
import { invert3, type Mat3, type Vec3, type Volume } from '../geometry/volume.ts';

export type Grid = Pick<Volume, 'dims' | 'spacing' | 'origin' | 'direction'>;

/** Index ↔ world maps of a grid (same convention as Volume: world = origin + direction·diag(spacing)·index). */
export interface GridMaps {
  toWorld(index: Vec3): Vec3;
  toIndex(world: Vec3): Vec3;
}

export function gridMaps(grid: Grid): GridMaps {
  const { direction: d, spacing: s, origin: o } = grid;
  const m: Mat3 = [
    d[0] * s[0], d[1] * s[1], d[2] * s[2],
    d[3] * s[0], d[4] * s[1], d[5] * s[2],
    d[6] * s[0], d[7] * s[1], d[8] * s[2],
  ]; // prettier-ignore
  const inv = invert3(m);
  const apply = (a: Mat3, v: Vec3): Vec3 => [
    a[0] * v[0] + a[1] * v[1] + a[2] * v[2],
    a[3] * v[0] + a[4] * v[1] + a[5] * v[2],
    a[6] * v[0] + a[7] * v[1] + a[8] * v[2],
  ];
  return {
    toWorld(index) {
      const w = apply(m, index);
      return [w[0] + o[0], w[1] + o[1], w[2] + o[2]];
    },
    toIndex(world) {
      return apply(inv, [world[0] - o[0], world[1] - o[1], world[2] - o[2]]);
    },
  };
}

/** True when a continuous voxel index lies within the image extent (voxel centres ± half a voxel). */
export function insideGrid(grid: Grid, index: Vec3): boolean {
  return index.every((v, a) => v >= -0.5 && v <= grid.dims[a] - 0.5);
}

/** Describes the first difference between two grids, or returns undefined when they agree. */
export function gridDifference(a: Grid, b: Grid, tolerance = 1e-4): string | undefined {
  const show = (v: readonly number[]) => v.map((x) => +x.toFixed(6)).join(' ');
  if (a.dims.some((d, i) => d !== b.dims[i])) return `dims ${a.dims.join('x')} vs ${b.dims.join('x')}`;
  const close = (x: readonly number[], y: readonly number[], tol: number) =>
    x.every((v, i) => Math.abs(v - y[i]) <= tol);
  if (!close(a.spacing, b.spacing, tolerance)) return `spacing ${show(a.spacing)} vs ${show(b.spacing)}`;
  if (!close(a.origin, b.origin, tolerance)) return `origin ${show(a.origin)} vs ${show(b.origin)}`;
  if (!close(a.direction, b.direction, 1e-6)) return `direction ${show(a.direction)} vs ${show(b.direction)}`;
  return undefined;
}
