/**
 * Reading feature levels at voxels of the ORIGINAL image grid without building full-resolution
 * feature volumes. MedDIFT upsamples every level trilinearly (align_corners false) to the original
 * shape and reads voxels from that; the same values come from evaluating the interpolation only
 * where needed: here at query points, and in the engine's fused search (engine/search.ts) for whole
 * target grids.
 */
import type { Tensor } from '../../engine/index.ts';

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
