/**
 * Reading feature levels at voxels of the ORIGINAL image grid without building full-resolution
 * feature volumes. MedDIFT upsamples every level trilinearly (align_corners false) to the original
 * shape and reads voxels from that; the same values come from evaluating the interpolation only
 * where needed: at query points (in JavaScript) or for slabs of the target grid (with tensor ops).
 */
import { cat, stack, Tensor, tidy } from '../../engine/index.ts';

const f = Math.fround;

/** PyTorch's linear-interpolation source index for output index `dst` (align_corners false), float32. */
export function sourceIndex(
  dst: number,
  inSize: number,
  outSize: number,
): { i0: number; i1: number; w1: number } {
  const scale = f(inSize / outSize);
  let src = f(f(scale * f(dst + 0.5)) - 0.5);
  if (src < 0) src = 0;
  const i0 = Math.min(Math.floor(src), inSize - 1);
  const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
  return { i0, i1, w1: f(src - i0) };
}

/** A feature level held as a JS array for point lookups: (C, w, h, d), C-order. */
export interface LevelArray {
  channels: number;
  shape: [number, number, number];
  data: Float32Array;
}

export function levelArray(level: Tensor): LevelArray {
  const [c, w, h, d] = level.shape;
  return { channels: c, shape: [w, h, d], data: level.contiguous().toTypedArray() as Float32Array };
}

/**
 * The level's upsampled features at continuous voxel positions of the original grid (`shape`), one
 * row of C values per point. At integer positions this equals MedDIFT's upsample-then-index; between
 * voxels it is the same continuous interpolation.
 */
export function sampleLevel(
  level: LevelArray,
  originalShape: readonly number[],
  points: readonly number[][],
): Float32Array {
  const { channels: c, shape, data } = level;
  const [, h, d] = shape;
  const out = new Float32Array(points.length * c);
  const plane = h * d;
  const cstride = shape[0] * plane;
  points.forEach((p, q) => {
    const ax = [0, 1, 2].map((a) => {
      // Continuous positions: the same mapping as an integer output index, evaluated at p.
      const scale = shape[a] / originalShape[a];
      let src = scale * (p[a] + 0.5) - 0.5;
      if (src < 0) src = 0;
      const i0 = Math.min(Math.floor(src), shape[a] - 1);
      const i1 = i0 < shape[a] - 1 ? i0 + 1 : i0;
      return { i0, i1, w1: src - i0 };
    });
    if (p.every((v) => Number.isInteger(v))) {
      // Integer voxels: PyTorch's exact float32 weights.
      for (let a = 0; a < 3; a++) ax[a] = sourceIndex(p[a], shape[a], originalShape[a]);
    }
    const [x, y, z] = ax;
    for (let ch = 0; ch < c; ch++) {
      const base = ch * cstride;
      let v = 0;
      for (const [ix, wx] of [
        [x.i0, 1 - x.w1],
        [x.i1, x.w1],
      ] as const) {
        for (const [iy, wy] of [
          [y.i0, 1 - y.w1],
          [y.i1, y.w1],
        ] as const) {
          const row = base + ix * plane + iy * d;
          v += wx * wy * ((1 - z.w1) * data[row + z.i0] + z.w1 * data[row + z.i1]);
        }
      }
      out[q * c + ch] = v;
    }
  });
  return out;
}

/**
 * The (inSize, hi − lo) matrix of linear interpolation along one axis for output indices [lo, hi):
 * column j holds 1 − w1 at row i0 and w1 at row i1 of output index lo + j.
 */
function interpolationMatrix(lo: number, hi: number, inSize: number, outSize: number): Tensor {
  const n = hi - lo;
  const m = new Float32Array(inSize * n);
  for (let j = 0; j < n; j++) {
    const s = sourceIndex(lo + j, inSize, outSize);
    m[s.i0 * n + j] += 1 - s.w1;
    m[s.i1 * n + j] += s.w1;
  }
  return Tensor.fromArray(m, [inSize, n]);
}

/** `t` (C, X, Y, Z) with the matrix (n_axis, m) applied along spatial `axis`: (…, m, …). */
function alongAxis(t: Tensor, axis: number, matrix: Tensor): Tensor {
  return t
    .movedim(axis + 1, 3)
    .matmul(matrix)
    .movedim(3, axis + 1);
}

/**
 * The level upsampled to the original grid (trilinear, align_corners false) over the box
 * [lo, hi) of original voxel indices: (C, hi0 − lo0, hi1 − lo1, hi2 − lo2). Separable: one small
 * matrix product per axis (gathering rows with index_select along inner axes was ten times slower).
 */
export function upsampleBox(
  level: Tensor,
  originalShape: readonly number[],
  lo: readonly number[],
  hi: readonly number[],
): Tensor {
  return tidy(() => {
    let out = level;
    for (let a = 0; a < 3; a++) {
      const inSize = level.shape[a + 1];
      if (inSize === originalShape[a] && lo[a] === 0 && hi[a] === inSize) continue;
      const m = interpolationMatrix(lo[a], hi[a], inSize, originalShape[a]);
      out = alongAxis(out, a, m);
    }
    return out.contiguous();
  });
}

/**
 * What `upsampledSquaredNorm` needs of a level: for every pair (a, b) of the 8 corners of a trilinear
 * cell, the map of dot products ⟨L[p + a], L[p + b]⟩ over base voxels p (corners clamped at the far
 * border as the interpolation clamps them). 36 maps of the coarse grid instead of C channels.
 */
export interface CornerGram {
  /** (36, w, h, d) */
  maps: Tensor;
  /** Corner offsets (bits 0, 1, 2 = axes 0, 1, 2) of each map's pair, and its weight (1 or 2). */
  pairs: { a: number; b: number; weight: number }[];
}

export function cornerGram(level: Tensor): CornerGram {
  return tidy(() => {
    const shifted = Array.from({ length: 8 }, (_, corner) => {
      let t = level;
      for (let axis = 0; axis < 3; axis++) {
        if (!(corner & (1 << axis))) continue;
        const n = level.shape[axis + 1];
        if (n === 1) continue;
        // L[min(p + 1, n − 1)]: the next voxel, the last one repeated.
        t = cat([t.narrow(axis + 1, 1, n - 1), t.narrow(axis + 1, n - 1, 1)], axis + 1);
      }
      return t;
    });
    const pairs: CornerGram['pairs'] = [];
    const maps: Tensor[] = [];
    for (let a = 0; a < 8; a++) {
      for (let b = a; b < 8; b++) {
        pairs.push({ a, b, weight: a === b ? 1 : 2 });
        maps.push(shifted[a].mul(shifted[b]).sum(0));
      }
    }
    return { maps: stack(maps, 0), pairs };
  });
}

/**
 * ‖upsampled level‖² over the box [lo, hi) of original voxels, (box voxels), C order — without
 * upsampling the channels: with trilinear weights W_a(v) = Π_axis (1 − w or w), the norm is the
 * quadratic form Σ_ab W_a W_b ⟨L[p + a], L[p + b]⟩ of the corner Gram maps, each weight product being
 * separable per axis.
 */
export function upsampledSquaredNorm(
  gram: CornerGram,
  originalShape: readonly number[],
  lo: readonly number[],
  hi: readonly number[],
): Tensor {
  return tidy(() => {
    const coarse = gram.maps.shape.slice(1);
    // Per axis and corner-bit pair (0,0), (0,1), (1,1): the (coarse, box) matrix of weight products at the base voxel.
    const factors = [0, 1, 2].map((axis) => {
      const n = hi[axis] - lo[axis];
      const m = [
        new Float32Array(coarse[axis] * n),
        new Float32Array(coarse[axis] * n),
        new Float32Array(coarse[axis] * n),
      ];
      for (let j = 0; j < n; j++) {
        const s = sourceIndex(lo[axis] + j, coarse[axis], originalShape[axis]);
        const w0 = 1 - s.w1;
        m[0][s.i0 * n + j] = w0 * w0;
        m[1][s.i0 * n + j] = w0 * s.w1;
        m[2][s.i0 * n + j] = s.w1 * s.w1;
      }
      return m.map((values) => Tensor.fromArray(values, [coarse[axis], n]));
    });
    let total: Tensor | undefined;
    gram.pairs.forEach(({ a, b, weight }, k) => {
      let t = gram.maps.narrow(0, k, 1);
      for (let axis = 0; axis < 3; axis++) {
        const type = ((a >> axis) & 1) + ((b >> axis) & 1);
        t = alongAxis(t, axis, factors[axis][type]);
      }
      const term = weight === 1 ? t : t.mul(weight);
      total = total ? total.add_(term) : term.contiguous();
    });
    return (total as Tensor).reshape(-1);
  });
}
