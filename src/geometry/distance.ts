/**
 * Exact Euclidean distance transform with anisotropic spacing, by the separable lower-envelope
 * method of Felzenszwalb & Huttenlocher (2012): one 1-D squared-distance pass per axis, O(N).
 */
import { Volume, type Vec3 } from './volume.ts';

/**
 * In place: squared distances (mm²) to the nearest feature voxel, given `squared` = 0 at feature
 * voxels and Infinity elsewhere. Distances use the grid spacing only (an orthonormal direction does
 * not change them). Lines without a feature stay Infinity until another axis reaches them.
 */
export function squaredDistanceTransform(squared: Float64Array, dims: Vec3, spacing: Vec3): void {
  const longest = Math.max(...dims);
  const f = new Float64Array(longest);
  const sites = new Int32Array(longest);
  const bounds = new Float64Array(longest + 1);
  const strides = [1, dims[0], dims[0] * dims[1]];
  for (let axis = 0; axis < 3; axis++) {
    const len = dims[axis];
    if (len === 1) continue;
    const stride = strides[axis];
    const s = spacing[axis];
    const [o1, o2] = [0, 1, 2].filter((a) => a !== axis);
    for (let b = 0; b < dims[o2]; b++) {
      for (let a = 0; a < dims[o1]; a++) {
        const start = a * strides[o1] + b * strides[o2];
        for (let q = 0; q < len; q++) f[q] = squared[start + q * stride];
        envelope(f, len, s, sites, bounds, squared, start, stride);
      }
    }
  }
}

/** 1-D pass: lower envelope of the parabolas (x − q·s)² + f[q] over the finite sites q. */
function envelope(
  f: Float64Array,
  len: number,
  s: number,
  sites: Int32Array,
  bounds: Float64Array,
  out: Float64Array,
  start: number,
  stride: number,
): void {
  let k = -1;
  for (let q = 0; q < len; q++) {
    if (f[q] === Infinity) continue;
    const xq = q * s;
    let boundary = -Infinity;
    while (k >= 0) {
      const xv = sites[k] * s;
      // where the parabolas of sites[k] and q intersect
      boundary = (f[q] + xq * xq - (f[sites[k]] + xv * xv)) / (2 * (xq - xv));
      if (boundary > bounds[k]) break;
      k--;
    }
    k++;
    sites[k] = q;
    bounds[k] = k === 0 ? -Infinity : boundary;
  }
  if (k < 0) return; // no feature on this line
  let e = 0;
  for (let q = 0; q < len; q++) {
    const x = q * s;
    while (e < k && bounds[e + 1] < x) e++;
    const d = x - sites[e] * s;
    out[start + q * stride] = d * d + f[sites[e]];
  }
}

/** Distance (mm) from every voxel to the nearest nonzero voxel of `mask` (Infinity if none). */
export function distanceTransform(mask: Volume): Volume<Float32Array> {
  const squared = new Float64Array(mask.size);
  for (let t = 0; t < squared.length; t++) squared[t] = mask.data[t] !== 0 ? 0 : Infinity;
  squaredDistanceTransform(squared, mask.dims, mask.spacing);
  const distance = new Float32Array(squared.length);
  for (let t = 0; t < squared.length; t++) distance[t] = Math.sqrt(squared[t]);
  return mask.withData(distance);
}
