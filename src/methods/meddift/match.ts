/**
 * Matching query descriptors against every voxel of a target image, in bounded memory.
 *
 * A descriptor is the concatenation over levels of the L2-normalised level features (v / max(‖v‖, 1e-8)),
 * and similarity is the weighted mean of the per-level cosines (MedDIFT: equal weights, i.e. the dot
 * product divided by the number of levels). The target grid is processed in slabs along its first axis:
 * each slab's descriptors are interpolated from the level grids, normalised, multiplied with the queries,
 * and reduced to each query's best candidates, so no full-resolution feature volume ever exists.
 */
import { arange, cat, tensor, tidy, type Tensor } from '../../engine/index.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { levelArray, sampleLevel, upsampleSlab } from './sampling.ts';

/** One image's feature levels plus the grid they describe. */
export interface FeatureGrid {
  /** (C_l, w_l, h_l, d_l) per level, in matching order. */
  levels: Tensor[];
  /** The original (un-resized) array shape the levels describe, (W, H, D). */
  shape: [number, number, number];
  /** Voxel spacing of that array in mm, per axis. */
  spacing: [number, number, number];
}

/** A local search region: a sphere of `radiusMm` around a continuous voxel position of the target. */
export interface SearchWindow {
  center: number[];
  radiusMm: number;
}

export interface MatchOptions {
  /** Level weights (default equal). */
  weights?: readonly number[];
  /** One window per query for local search; global search when absent. */
  windows?: readonly SearchWindow[];
  /** Target voxels per slab (memory bound: about 4·(ΣC + queries)·slabVoxels bytes). */
  slabVoxels?: number;
  /** Radius (voxels) around the best match inside which other candidates do not count as a second peak. */
  peakExclusion?: number;
  progress?: ProgressFn;
  stage?: string;
}

export interface RawMatches {
  /** Integer voxel (w, h, d) of the best match per query; −1 when a window held no voxel. */
  voxels: Int32Array;
  /** Best similarity per query. */
  best: Float32Array;
  /** Second-largest similarity anywhere (MedDIFT's top-2), per query. */
  secondBest: Float32Array;
  /**
   * Best similarity farther than `peakExclusion` voxels from the best match: the competing peak. When
   * all kept candidates lie near the best, it is the smallest kept value, an upper bound.
   */
  secondPeak: Float32Array;
}

/** Candidates kept per query while scanning; enough to find a second peak beyond the exclusion radius. */
const KEEP = 64;

function levelWeights(count: number, weights?: readonly number[]): number[] {
  const w = weights ?? new Array<number>(count).fill(1);
  const total = w.reduce((s, v) => s + v, 0);
  return w.map((v) => v / total);
}

/** Row-wise L2 normalisation of (N, C) rows, as MedDIFT: v / max(‖v‖, 1e-8). */
function normaliseRows(rows: Float32Array, channels: number): void {
  for (let r = 0; r < rows.length / channels; r++) {
    let s = 0;
    for (let c = 0; c < channels; c++) s += rows[r * channels + c] ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-8);
    for (let c = 0; c < channels; c++) rows[r * channels + c] = Math.fround(rows[r * channels + c] * inv);
  }
}

/** Weighted, per-level normalised descriptors at continuous voxel positions: (Q, ΣC). */
export function descriptorsAt(
  grid: FeatureGrid,
  points: readonly number[][],
  weights?: readonly number[],
): Tensor {
  const w = levelWeights(grid.levels.length, weights);
  return tidy(() => {
    const parts = grid.levels.map((level, l) => {
      const arr = levelArray(level);
      const rows = sampleLevel(arr, grid.shape, points);
      normaliseRows(rows, arr.channels);
      return tensor(Array.from(rows)).reshape(points.length, arr.channels).mul(w[l]);
    });
    return cat(parts, 1);
  });
}

/** Per-level cosine between query descriptors and target descriptors at given voxels: (Q, L). */
export function perLevelCosines(
  source: FeatureGrid,
  sourcePoints: readonly number[][],
  target: FeatureGrid,
  targetPoints: readonly number[][],
): Float32Array[] {
  return source.levels.map((level, l) => {
    const a = levelArray(level);
    const b = levelArray(target.levels[l]);
    const qa = sampleLevel(a, source.shape, sourcePoints);
    const qb = sampleLevel(b, target.shape, targetPoints);
    normaliseRows(qa, a.channels);
    normaliseRows(qb, b.channels);
    const out = new Float32Array(sourcePoints.length);
    for (let q = 0; q < out.length; q++) {
      let s = 0;
      for (let c = 0; c < a.channels; c++) s += qa[q * a.channels + c] * qb[q * b.channels + c];
      out[q] = s;
    }
    return out;
  });
}

/** Similarities of query descriptors (Q, ΣC) to the target descriptors of first-axis slab [start, end). */
function slabSimilarities(query: Tensor, target: FeatureGrid, start: number, end: number): Tensor {
  return tidy(() => {
    const parts = target.levels.map((level) => {
      const slab = upsampleSlab(level, target.shape, start, end);
      const flat = slab.reshape(slab.shape[0], -1);
      return flat.div(flat.norm(2, 0, true).clamp(1e-8));
    });
    return query.matmul(cat(parts, 0));
  });
}

/** The full similarity volume (W·H·D, C order) of each query row, for inspection and figures. */
export function similarityMaps(query: Tensor, target: FeatureGrid, slabVoxels = 1 << 17): Float32Array[] {
  const [W, H, D] = target.shape;
  const slab = Math.max(1, Math.floor(slabVoxels / (H * D)));
  const maps = Array.from({ length: query.shape[0] }, () => new Float32Array(W * H * D));
  for (let start = 0; start < W; start += slab) {
    const end = Math.min(W, start + slab);
    const values = tidy(() => slabSimilarities(query, target, start, end).toTypedArray() as Float32Array);
    const n = (end - start) * H * D;
    maps.forEach((m, i) => m.set(values.subarray(i * n, (i + 1) * n), start * H * D));
  }
  return maps;
}

/** Masks (−∞) the slab's voxels outside each query's window. */
function maskOutsideWindows(
  sims: Tensor,
  target: FeatureGrid,
  windows: readonly SearchWindow[],
  start: number,
  end: number,
): Tensor {
  return tidy(() => {
    const q = windows.length;
    const [, H, D] = target.shape;
    const sp = target.spacing;
    const squaredOffsets = (axis: number, from: number, to: number) => {
      const centres = tensor(windows.map((w) => w.center[axis])).reshape(q, 1);
      return arange(from, to, 1).reshape(1, -1).sub(centres).mul(sp[axis]).square();
    };
    const dw = squaredOffsets(0, start, end).reshape(q, end - start, 1, 1);
    const dh = squaredOffsets(1, 0, H).reshape(q, 1, H, 1);
    const dd = squaredOffsets(2, 0, D).reshape(q, 1, 1, D);
    const radius2 = tensor(windows.map((w) => w.radiusMm * w.radiusMm)).reshape(q, 1, 1, 1);
    const outside = dw.add(dh).add(dd).gt(radius2).reshape(q, -1);
    return sims.maskedFill(outside, -Infinity);
  });
}

/**
 * The best target voxel for each query descriptor (global argmax, or within each query's window), plus
 * the runner-up values used for confidence. Ties go to the lowest C-order flat index, as torch.argmax.
 */
export function matchDescriptors(query: Tensor, target: FeatureGrid, options: MatchOptions = {}): RawMatches {
  const [W, H, D] = target.shape;
  const q = query.shape[0];
  const plane = H * D;
  const slabVoxels = options.slabVoxels ?? 1 << 17;
  const slab = Math.max(1, Math.floor(slabVoxels / plane));
  const windows = options.windows;
  let first = 0;
  let last = W;
  if (windows) {
    // Only slabs that some window reaches.
    first = W;
    last = 0;
    for (const w of windows) {
      const r = w.radiusMm / target.spacing[0];
      first = Math.min(first, Math.max(0, Math.floor(w.center[0] - r)));
      last = Math.max(last, Math.min(W, Math.ceil(w.center[0] + r) + 1));
    }
  }
  const keep = Math.min(KEEP, W * plane);
  let values: Tensor | undefined;
  let indices: Tensor | undefined;
  const total = Math.max(0, last - first);
  const report = options.progress;
  for (let start = first; start < last; start += slab) {
    const end = Math.min(last, start + slab);
    const merged = tidy(() => {
      let sims = slabSimilarities(query, target, start, end);
      if (windows) sims = maskOutsideWindows(sims, target, windows, start, end);
      const k = Math.min(keep, sims.shape[1]);
      const top = sims.topk(k, { dim: 1 });
      const candIdx = top.indices.add(start * plane);
      if (!values || !indices) return { values: top.values, indices: candIdx };
      const allValues = cat([values, top.values], 1);
      const allIndices = cat([indices, candIdx], 1);
      // Stable choice among equal values: prefer lower flat indices, as torch.argmax does.
      const order = allValues.topk(Math.min(keep, allValues.shape[1]), { dim: 1 });
      return { values: order.values, indices: allIndices.gather(1, order.indices) };
    });
    values?.dispose();
    indices?.dispose();
    values = merged.values.keep();
    indices = merged.indices.keep();
    report?.({ stage: options.stage ?? 'matching', done: end - first, total });
  }
  const result: RawMatches = {
    voxels: new Int32Array(q * 3).fill(-1),
    best: new Float32Array(q).fill(-Infinity),
    secondBest: new Float32Array(q).fill(-Infinity),
    secondPeak: new Float32Array(q).fill(-Infinity),
  };
  if (!values || !indices) return result;
  const vals = values.toTypedArray() as Float32Array;
  const idx = indices.toTypedArray() as BigInt64Array;
  const k = values.shape[1];
  values.dispose();
  indices.dispose();
  const exclusion = options.peakExclusion ?? 2;
  for (let i = 0; i < q; i++) {
    const row = i * k;
    // Among equal best values take the lowest flat index (torch.argmax's first maximum).
    let bestJ = 0;
    for (let j = 1; j < k && vals[row + j] === vals[row]; j++) if (idx[row + j] < idx[row + bestJ]) bestJ = j;
    if (!Number.isFinite(vals[row + bestJ])) continue;
    const flat = Number(idx[row + bestJ]);
    const v: [number, number, number] = [Math.floor(flat / plane), Math.floor(flat / D) % H, flat % D];
    result.voxels.set(v, i * 3);
    result.best[i] = vals[row + bestJ];
    result.secondBest[i] = vals[row + (bestJ === 0 ? 1 : 0)] ?? -Infinity;
    let peak = vals[row + k - 1];
    for (let j = 0; j < k; j++) {
      const other = Number(idx[row + j]);
      const o = [Math.floor(other / plane), Math.floor(other / D) % H, other % D];
      if (Math.max(Math.abs(o[0] - v[0]), Math.abs(o[1] - v[1]), Math.abs(o[2] - v[2])) > exclusion) {
        peak = vals[row + j];
        break;
      }
    }
    result.secondPeak[i] = peak;
  }
  return result;
}

/**
 * Sub-voxel refinement: a parabola through the similarities at the match and its two neighbours along
 * each axis gives the offset of the peak (clamped to half a voxel; none at the image border or where
 * the similarity is not concave). Returns continuous voxel positions, NaN for unmatched queries.
 */
export function refineSubvoxel(query: Tensor, target: FeatureGrid, matches: RawMatches): Float64Array {
  const { voxels, best } = matches;
  const q = query.shape[0];
  const qd = query.toTypedArray() as Float32Array;
  const width = query.shape[1];
  const neighbours: number[][] = [];
  for (let i = 0; i < q; i++) {
    const v = [voxels[i * 3], voxels[i * 3 + 1], voxels[i * 3 + 2]];
    for (let a = 0; a < 3; a++) {
      for (const step of [-1, 1]) {
        const p = [...v];
        p[a] = Math.min(Math.max(p[a] + step, 0), target.shape[a] - 1);
        neighbours.push(p);
      }
    }
  }
  // Neighbour descriptors, normalised per level (the level weights sit on the query side).
  const rows = new Float32Array(neighbours.length * width);
  let offset = 0;
  for (const level of target.levels.map(levelArray)) {
    const vals = sampleLevel(level, target.shape, neighbours);
    normaliseRows(vals, level.channels);
    for (let n = 0; n < neighbours.length; n++) {
      rows.set(vals.subarray(n * level.channels, (n + 1) * level.channels), n * width + offset);
    }
    offset += level.channels;
  }
  const similarity = (i: number, n: number) => {
    let s = 0;
    for (let c = 0; c < width; c++) s += qd[i * width + c] * rows[n * width + c];
    return s;
  };
  const out = new Float64Array(q * 3);
  for (let i = 0; i < q; i++) {
    for (let a = 0; a < 3; a++) {
      const centre = voxels[i * 3 + a];
      if (centre < 0) {
        out[i * 3 + a] = NaN;
        continue;
      }
      const minus = similarity(i, i * 6 + a * 2);
      const plus = similarity(i, i * 6 + a * 2 + 1);
      const curvature = minus - 2 * best[i] + plus;
      const atBorder = centre === 0 || centre === target.shape[a] - 1;
      const shift = atBorder || curvature >= 0 ? 0 : (minus - plus) / (2 * curvature);
      out[i * 3 + a] = centre + Math.max(-0.5, Math.min(0.5, shift));
    }
  }
  return out;
}
