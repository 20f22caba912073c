/**
 * Distinctive points of a 3D image by the Förstner operator (Förstner & Gülch 1987), as used for
 * lung CT keypoints (e.g. Heinrich et al., the Learn2Reg lung tasks): the structure tensor
 * T = G_σ ∗ (∇I ∇Iᵀ) is large in every direction at corners and blob centres (vessel branchings in
 * the lung), and the distinctiveness 1 / trace(T⁻¹) = det T / (sum of T's principal 2×2 minors) is
 * high only when all three eigenvalues are. Keypoints are its local maxima (non-maximum suppression
 * in a box of ±minDistance), strongest first.
 */
import { fail } from '../util/errors.ts';
import { integer, number } from '../util/is.ts';
import type { Vec3, Volume } from '../geometry/index.ts';

export interface KeypointOptions {
  /** Only voxels where this volume (same grid) is nonzero can be keypoints. */
  mask?: Volume;
  /** Most keypoints returned, strongest first (default 300). */
  count?: number;
  /** Non-maximum suppression half-width in mm: keypoints are at least this far apart per axis (default 6). */
  minDistance?: number;
  /** Gaussian pre-smoothing (derivative scale) in mm (default 1). */
  sigmaDerivative?: number;
  /** Gaussian integration scale of the structure tensor in mm (default 2). */
  sigmaIntegration?: number;
  /** Keep only maxima above this fraction of the strongest response (default 0.01). */
  relativeThreshold?: number;
}

export interface Keypoints {
  /** Voxel indices (integer) of the keypoints. */
  indices: Vec3[];
  /** The same points in LPS world mm. */
  points: Vec3[];
  /** Distinctiveness 1/trace(T⁻¹) of each, descending. */
  strength: number[];
}

/** Indexable voxel data (typed arrays). */
type Voxels = { [index: number]: number; readonly length: number };

/**
 * Replaces every line of voxels along `axis` by `filter(line)` (the line is copied first, so the
 * filter sees the original values).
 */
export function filterLines(
  data: Voxels,
  dims: Vec3,
  axis: number,
  filter: (line: Float32Array) => ArrayLike<number>,
): void {
  const strides = [1, dims[0], dims[0] * dims[1]];
  const stride = strides[axis];
  const line = new Float32Array(dims[axis]);
  const [a, b] = [0, 1, 2].filter((x) => x !== axis);
  for (let q = 0; q < dims[b]; q++) {
    for (let p = 0; p < dims[a]; p++) {
      const start = p * strides[a] + q * strides[b];
      for (let m = 0; m < line.length; m++) line[m] = data[start + m * stride];
      const out = filter(line);
      for (let m = 0; m < line.length; m++) data[start + m * stride] = out[m];
    }
  }
}

/** In-place separable Gaussian blur (σ in mm, kernel ±3σ, edges replicated). */
function gaussianBlur(data: Float32Array, dims: Vec3, spacing: Vec3, sigma: number): void {
  for (let axis = 0; axis < 3; axis++) {
    const s = sigma / spacing[axis];
    if (s < 0.2) continue;
    const radius = Math.ceil(3 * s);
    const kernel = new Float32Array(2 * radius + 1);
    let sum = 0;
    for (let r = -radius; r <= radius; r++) sum += kernel[r + radius] = Math.exp((-r * r) / (2 * s * s));
    for (let r = 0; r < kernel.length; r++) kernel[r] /= sum;
    const out = new Float32Array(dims[axis]);
    filterLines(data, dims, axis, (line) => {
      const last = line.length - 1;
      for (let m = 0; m <= last; m++) {
        let v = 0;
        for (let r = -radius; r <= radius; r++)
          v += kernel[r + radius] * line[m + r < 0 ? 0 : m + r > last ? last : m + r];
        out[m] = v;
      }
      return out;
    });
  }
}

/**
 * In-place box maximum (or minimum) over ±radius[axis] voxels along each axis; beyond the grid
 * the minimum sees `outside` (default: nothing, i.e. the box is clipped).
 */
export function boxFilter(
  data: Voxels,
  dims: Vec3,
  radius: Vec3,
  kind: 'max' | 'min',
  outside?: number,
): void {
  const sign = kind === 'max' ? 1 : -1;
  for (let axis = 0; axis < 3; axis++) {
    const r = radius[axis];
    if (r < 1) continue;
    const out = new Float32Array(dims[axis]);
    filterLines(data, dims, axis, (line) => {
      const last = line.length - 1;
      for (let m = 0; m <= last; m++) {
        let v = m - r < 0 || m + r > last ? (outside ?? -sign * Infinity) : -sign * Infinity;
        for (let n = Math.max(0, m - r); n <= Math.min(last, m + r); n++)
          if (sign * (line[n] - v) > 0) v = line[n];
        out[m] = v;
      }
      return out;
    });
  }
}

/** Förstner keypoints of a scalar volume (see the module comment). */
export function forstnerKeypoints(volume: Volume, options: KeypointOptions = {}): Keypoints {
  if (volume.components !== 1)
    fail('keypoint image', `expected a scalar volume, got ${volume.components} components`);
  const count = integer('count', options.count ?? 300, { min: 1 });
  const minDistance = number('minDistance', options.minDistance ?? 6, { min: 0 });
  const sigmaD = number('sigmaDerivative', options.sigmaDerivative ?? 1, { min: 0 });
  const sigmaI = number('sigmaIntegration', options.sigmaIntegration ?? 2, { min: 0, exclusiveMin: true });
  const threshold = number('relativeThreshold', options.relativeThreshold ?? 0.01, { min: 0, max: 1 });
  const mask = options.mask;
  if (mask && !mask.sameGrid(volume)) fail('keypoint mask', 'must lie on the grid of the image');

  const dims = volume.dims;
  const [nx, ny, nz] = dims;
  const n = volume.size;
  const [sx, sy, sz] = volume.spacing;
  const image = Float32Array.from(volume.data);
  gaussianBlur(image, dims, volume.spacing, sigmaD);

  // Structure tensor products of central-difference gradients (per mm), then integrated.
  const tensor = Array.from({ length: 6 }, () => new Float32Array(n));
  const [xx, yy, zz, xy, xz, yz] = tensor;
  const sxy = nx * ny;
  let t = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, t++) {
        const gx =
          (image[i < nx - 1 ? t + 1 : t] - image[i > 0 ? t - 1 : t]) / ((i > 0 && i < nx - 1 ? 2 : 1) * sx);
        const gy =
          (image[j < ny - 1 ? t + nx : t] - image[j > 0 ? t - nx : t]) / ((j > 0 && j < ny - 1 ? 2 : 1) * sy);
        const gz =
          (image[k < nz - 1 ? t + sxy : t] - image[k > 0 ? t - sxy : t]) /
          ((k > 0 && k < nz - 1 ? 2 : 1) * sz);
        xx[t] = gx * gx;
        yy[t] = gy * gy;
        zz[t] = gz * gz;
        xy[t] = gx * gy;
        xz[t] = gx * gz;
        yz[t] = gy * gz;
      }
    }
  }
  for (const component of tensor) gaussianBlur(component, dims, volume.spacing, sigmaI);

  const response = image; // the smoothed image is no longer needed
  let strongest = 0;
  for (t = 0; t < n; t++) {
    const a = xx[t];
    const b = yy[t];
    const c = zz[t];
    const d = xy[t];
    const e = xz[t];
    const f = yz[t];
    const det = a * (b * c - f * f) - d * (d * c - f * e) + e * (d * f - b * e);
    const minors = a * b - d * d + a * c - e * e + b * c - f * f;
    const value = minors > 0 && det > 0 ? det / minors : 0;
    response[t] = value;
    if (value > strongest) strongest = value;
  }
  const maxima = Float32Array.from(response);
  const radius = [0, 1, 2].map((a) => Math.round(minDistance / volume.spacing[a])) as Vec3;
  boxFilter(maxima, dims, radius, 'max');

  const found: { index: Vec3; strength: number }[] = [];
  const floor = threshold * strongest;
  t = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, t++) {
        const value = response[t];
        if (value <= floor || value < maxima[t]) continue;
        if (mask && mask.data[t] === 0) continue;
        const index: Vec3 = [i, j, k];
        found.push({ index, strength: value });
      }
    }
  }
  // Plateaus give several equal maxima in one box: keep the first of each (strongest first, then scan order).
  found.sort((p, q) => q.strength - p.strength);
  const kept: typeof found = [];
  for (const candidate of found) {
    const close = kept.some((k) => k.index.every((v, a) => Math.abs(v - candidate.index[a]) <= radius[a]));
    if (!close) kept.push(candidate);
    if (kept.length === count) break;
  }
  return {
    indices: kept.map((k) => k.index),
    points: kept.map((k) => volume.voxelToWorld(k.index)),
    strength: kept.map((k) => k.strength),
  };
}
