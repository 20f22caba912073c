/**
 * The one image type of diffreg: voxel data on a regular grid placed in patient space.
 *
 * World convention: **LPS** millimetres, as in ITK, DICOM and elastix (+x toward patient Left,
 * +y toward Posterior, +z toward Superior). Readers of RAS formats (NIfTI, Learn2Reg, nibabel-style
 * landmarks) convert at the boundary by negating x and y.
 *
 * Memory layout: the first array axis (i) varies fastest, as in NIfTI/MetaImage/NRRD files:
 * offset = i + nx·(j + ny·k). Multi-component volumes (displacement fields) are stored planar:
 * component c occupies [c·N, (c+1)·N) with N = nx·ny·nz.
 *
 * Geometry: world = origin + direction · diag(spacing) · index, with `direction` a row-major 3×3
 * matrix whose columns are the unit directions of the array axes in LPS.
 */

export type VoxelArray =
  Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;

export type Vec3 = [number, number, number];
/** Row-major 3×3 matrix. */
export type Mat3 = [number, number, number, number, number, number, number, number, number];

export const IDENTITY3: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1];

export interface VolumeInit<T extends VoxelArray = VoxelArray> {
  data: T;
  dims: Vec3;
  spacing?: Vec3;
  origin?: Vec3;
  direction?: Mat3;
  components?: number;
}

/** The geometry of an image without its voxels (dims, spacing, origin, direction), e.g. a DIR-Lab case's. */
export interface GridInit {
  dims: readonly number[];
  spacing?: readonly number[];
  origin?: readonly number[];
  direction?: readonly number[];
}

/** A regular grid placed in patient space: the index ↔ world maps every image and landmark file needs. */
export class Grid {
  readonly dims: Vec3;
  readonly spacing: Vec3;
  readonly origin: Vec3;
  readonly direction: Mat3;

  constructor(init: GridInit) {
    if (init.dims.length !== 3 || !init.dims.every((d) => Number.isInteger(d) && d > 0)) {
      throw new Error(`volume: dimensions must be positive integers, got ${init.dims.join('x')}`);
    }
    const spacing = init.spacing ?? [1, 1, 1];
    if (!spacing.every((s) => Number.isFinite(s) && s > 0)) {
      throw new Error(`volume: spacing must be positive, got ${spacing.join(', ')}`);
    }
    this.dims = [...init.dims] as Vec3;
    this.spacing = [...spacing] as Vec3;
    this.origin = init.origin ? ([...init.origin] as Vec3) : [0, 0, 0];
    this.direction = init.direction ? ([...init.direction] as Mat3) : [...IDENTITY3];
  }

  /** `g` itself when it is a Grid (or Volume), else a Grid of its geometry. */
  static of(g: GridInit): Grid {
    return g instanceof Grid ? g : new Grid(g);
  }

  /** Number of voxels (per component). */
  get size(): number {
    return this.dims[0] * this.dims[1] * this.dims[2];
  }

  /** 4×4 row-major voxel-index → LPS-world affine. */
  get indexToWorld(): number[] {
    const [d, s, o] = [this.direction, this.spacing, this.origin];
    return [
      d[0] * s[0], d[1] * s[1], d[2] * s[2], o[0],
      d[3] * s[0], d[4] * s[1], d[5] * s[2], o[1],
      d[6] * s[0], d[7] * s[1], d[8] * s[2], o[2],
      0, 0, 0, 1,
    ]; // prettier-ignore
  }

  /** Continuous voxel index (0-based) → LPS world mm. */
  voxelToWorld(index: Vec3): Vec3 {
    const [d, s, o] = [this.direction, this.spacing, this.origin];
    const a = index[0] * s[0];
    const b = index[1] * s[1];
    const c = index[2] * s[2];
    return [
      o[0] + d[0] * a + d[1] * b + d[2] * c,
      o[1] + d[3] * a + d[4] * b + d[5] * c,
      o[2] + d[6] * a + d[7] * b + d[8] * c,
    ];
  }

  /** LPS world mm → continuous voxel index (0-based). */
  worldToVoxel(world: Vec3): Vec3 {
    const inv = this.worldToIndexMatrix;
    const x = world[0] - this.origin[0];
    const y = world[1] - this.origin[1];
    const z = world[2] - this.origin[2];
    return [
      inv[0] * x + inv[1] * y + inv[2] * z,
      inv[3] * x + inv[4] * y + inv[5] * z,
      inv[6] * x + inv[7] * y + inv[8] * z,
    ];
  }

  /** The 3×3 matrix (direction·diag(spacing))⁻¹, cached. */
  get worldToIndexMatrix(): Mat3 {
    if (!this.inverseCache) {
      const m = this.indexToWorld;
      this.inverseCache = invert3([m[0], m[1], m[2], m[4], m[5], m[6], m[8], m[9], m[10]]);
    }
    return this.inverseCache;
  }
  private inverseCache?: Mat3;

  /** True when a continuous voxel index lies within the image extent (voxel centres ± half a voxel). */
  containsIndex(index: Vec3): boolean {
    return index.every((v, a) => v >= -0.5 && v <= this.dims[a] - 0.5);
  }

  /** Linear offset of integer voxel (i, j, k), component 0. */
  offset(i: number, j: number, k: number): number {
    return i + this.dims[0] * (j + this.dims[1] * k);
  }

  /** The first difference from another grid (dims, then spacing/origin within `tolerance` mm, direction), or undefined. */
  gridDifference(other: GridInit, tolerance = 1e-4): string | undefined {
    const o = Grid.of(other);
    const show = (v: readonly number[]) => v.map((x) => +x.toFixed(6)).join(' ');
    const close = (a: readonly number[], b: readonly number[], tol: number) =>
      a.every((v, i) => Math.abs(v - b[i]) <= tol);
    if (this.dims.some((d, a) => d !== o.dims[a]))
      return `dims ${this.dims.join('x')} vs ${o.dims.join('x')}`;
    if (!close(this.spacing, o.spacing, tolerance))
      return `spacing ${show(this.spacing)} vs ${show(o.spacing)}`;
    if (!close(this.origin, o.origin, tolerance)) return `origin ${show(this.origin)} vs ${show(o.origin)}`;
    if (!close(this.direction, o.direction, 1e-6))
      return `direction ${show(this.direction)} vs ${show(o.direction)}`;
    return undefined;
  }

  /** A volume on the same grid with other data (and optionally another component count). */
  withData<U extends VoxelArray>(data: U, components = 1): Volume<U> {
    return new Volume({
      data,
      dims: this.dims,
      spacing: this.spacing,
      origin: this.origin,
      direction: this.direction,
      components,
    });
  }

  /** True when the other grid agrees (dims, spacing, origin, direction) within `tolerance` mm. */
  sameGrid(other: GridInit, tolerance = 1e-4): boolean {
    return this.gridDifference(other, tolerance) === undefined;
  }
}

export class Volume<T extends VoxelArray = VoxelArray> extends Grid {
  readonly data: T;
  readonly components: number;

  constructor(init: VolumeInit<T>) {
    super(init);
    const components = init.components ?? 1;
    const n = this.size;
    if (init.data.length !== n * components) {
      throw new Error(
        `volume: data has ${init.data.length} values but ${init.dims.join('x')}x${components} needs ${n * components}`,
      );
    }
    this.data = init.data;
    this.components = components;
  }
}

export function invert3(m: Mat3): Mat3 {
  const [a, b, c, d, e, f, g, h, i] = m;
  const A = e * i - f * h;
  const B = -(d * i - f * g);
  const C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) throw new Error('geometry: singular 3x3 matrix');
  const r = 1 / det;
  return [
    A * r, -(b * i - c * h) * r, (b * f - c * e) * r,
    B * r, (a * i - c * g) * r, -(a * f - c * d) * r,
    C * r, -(a * h - b * g) * r, (a * e - b * d) * r,
  ]; // prettier-ignore
}

export function multiply3(a: Mat3, b: Mat3): Mat3 {
  const out = new Array<number>(9) as Mat3;
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++)
      out[r * 3 + c] = a[r * 3] * b[c] + a[r * 3 + 1] * b[3 + c] + a[r * 3 + 2] * b[6 + c];
  }
  return out;
}

/** LPS ↔ RAS: negate x and y (its own inverse). */
export function flipXY(p: Vec3): Vec3 {
  return [-p[0], -p[1], p[2]];
}
