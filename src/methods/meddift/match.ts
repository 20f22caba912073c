/**
 * Matching query descriptors against every voxel of a target image, in bounded memory.
 *
 * A descriptor is the concatenation over levels of the L2-normalised level features (v / max(‖v‖, 1e-8)),
 * and similarity is the weighted mean of the per-level cosines (MedDIFT: equal weights, i.e. the dot
 * product divided by the number of levels). The engine's fused search (engine/search.ts) scores every
 * target voxel from the level grids directly — interpolated dot products over interpolated norms — and
 * keeps each query's best candidates, so no full-resolution feature or similarity volume ever exists.
 */
import {
  cat,
  cosineScores,
  cosineTopK,
  dispose,
  searchLevel,
  tensor,
  tidy,
  type SearchLevel,
  type Tensor,
} from '../../engine/index.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { levelArray, sampleLevel } from './sampling.ts';

/** One image's feature levels plus the grid they describe. */
export interface FeatureGrid {
  /** (C_l, w_l, h_l, d_l) per level, in matching order. */
  levels: Tensor[];
  /** The original (un-resized) array shape the levels describe, (W, H, D). */
  shape: [number, number, number];
  /** Voxel spacing of that array in mm, per axis. */
  spacing: [number, number, number];
  /** The levels' weights when none are given (equal when absent; the fused descriptor's groups). */
  weights?: readonly number[];
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
  /** Target voxels per step of a global scan (a progress step; the scan holds no per-voxel buffers). */
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
  const w = levelWeights(grid.levels.length, weights ?? grid.weights);
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

/** A box [lo, hi) of target voxel indices. */
interface Box {
  lo: number[];
  hi: number[];
}

/** Bytes of query dot products held at once (queries are scanned in groups beyond this). */
const DOTS_BUDGET = 512 * 2 ** 20;

function queryGroupSize(queries: number, target: FeatureGrid): number {
  const coarse = target.levels.reduce((n, l) => n + l.shape[1] * l.shape[2] * l.shape[3], 0);
  return Math.max(1, Math.min(queries, Math.floor(DOTS_BUDGET / (4 * coarse))));
}

/**
 * Calls `scan` for groups of query rows [first, first + count) with the target's levels prepared for
 * them (see engine/search.ts: the dot products of each level with the query rows of its channels,
 * and the corner Gram maps), in groups small enough to keep the dot products within DOTS_BUDGET.
 */
function forQueryGroups(
  query: Tensor,
  target: FeatureGrid,
  scan: (levels: SearchLevel[], first: number, count: number) => void,
): void {
  const q = query.shape[0];
  const group = queryGroupSize(q, target);
  for (let first = 0; first < q; first += group) {
    const count = Math.min(group, q - first);
    const levels = tidy(() => {
      let offset = 0;
      return target.levels.map((level) => {
        const c = level.shape[0];
        const rows = query.narrow(0, first, count).narrow(1, offset, c);
        offset += c;
        return searchLevel(level, rows);
      });
    });
    try {
      scan(levels, first, count);
    } finally {
      dispose(levels.flatMap((l) => [l.dots, l.gram]));
    }
  }
}

/** Slabs along the first axis covering the whole target, each about `voxels` voxels. */
function slabs(target: FeatureGrid, voxels: number): Box[] {
  const [W, H, D] = target.shape;
  const thickness = Math.max(1, Math.floor(voxels / (H * D)));
  const out: Box[] = [];
  for (let start = 0; start < W; start += thickness)
    out.push({ lo: [start, 0, 0], hi: [Math.min(W, start + thickness), H, D] });
  return out;
}

/** The full similarity volume (W·H·D, C order) of each query row, for inspection and figures. */
export function similarityMaps(query: Tensor, target: FeatureGrid, slabVoxels = 1 << 18): Float32Array[] {
  const [W, H, D] = target.shape;
  const maps = Array.from({ length: query.shape[0] }, () => new Float32Array(W * H * D));
  forQueryGroups(query, target, (levels, first, count) => {
    for (const box of slabs(target, slabVoxels)) {
      const values = tidy(
        () =>
          cosineScores(levels, {
            size: target.shape,
            ...box,
            first: 0,
            count,
          }).toTypedArray() as Float32Array,
      );
      const n = (box.hi[0] - box.lo[0]) * H * D;
      for (let i = 0; i < count; i++)
        maps[first + i].set(values.subarray(i * n, (i + 1) * n), box.lo[0] * H * D);
    }
  });
  return maps;
}

/** The bounding box of a spherical window, clipped to the target; undefined when it misses the target. */
function windowBox(target: FeatureGrid, w: SearchWindow): Box | undefined {
  const lo: number[] = [];
  const hi: number[] = [];
  for (let a = 0; a < 3; a++) {
    const r = w.radiusMm / target.spacing[a];
    lo.push(Math.max(0, Math.ceil(w.center[a] - r - 1e-9)));
    hi.push(Math.min(target.shape[a], Math.floor(w.center[a] + r + 1e-9) + 1));
    if (hi[a] <= lo[a]) return undefined;
  }
  return { lo, hi };
}

/** Running top candidates per query: values (Q, K) and global flat indices (Q, K). */
interface Candidates {
  values: Tensor;
  indices: Tensor;
}

function mergeCandidates(previous: Candidates | undefined, next: Candidates, keep: number): Candidates {
  if (!previous) return next;
  return tidy(() => {
    const values = cat([previous.values, next.values], 1);
    const all = cat([previous.indices, next.indices], 1);
    const best = values.topk(Math.min(keep, values.shape[1]), { dim: 1 });
    return { values: best.values, indices: all.gather(1, best.indices) };
  });
}

/**
 * The best target voxel for each query descriptor (global argmax, or within each query's window), plus
 * the runner-up values used for confidence. Ties go to the lowest C-order flat index, as torch.argmax.
 */
export function matchDescriptors(query: Tensor, target: FeatureGrid, options: MatchOptions = {}): RawMatches {
  const [, H, D] = target.shape;
  const q = query.shape[0];
  const plane = H * D;
  const windows = options.windows;
  const report = options.progress;
  const stage = options.stage ?? 'matching';
  // Rows of candidate values/indices per query, filled by one scan (global) or one box per query (local).
  const rows: { values: Float32Array; indices: BigInt64Array; k: number }[] = new Array(q);
  const collect = (c: Candidates, first: number) => {
    const k = c.values.shape[1];
    const values = c.values.toTypedArray() as Float32Array;
    const indices = c.indices.toTypedArray() as BigInt64Array;
    for (let i = 0; i < c.values.shape[0]; i++)
      rows[first + i] = {
        values: values.subarray(i * k, (i + 1) * k),
        indices: indices.subarray(i * k, (i + 1) * k),
        k,
      };
  };
  const boxes = windows ? [] : slabs(target, options.slabVoxels ?? 1 << 18);
  const steps = windows ? q : boxes.length * Math.ceil(q / queryGroupSize(q, target));
  let done = 0;
  forQueryGroups(query, target, (levels, first, count) => {
    if (!windows) {
      let running: Candidates | undefined;
      for (const box of boxes) {
        const next = cosineTopK(levels, KEEP, { size: target.shape, ...box, first: 0, count });
        const merged = mergeCandidates(running, next, KEEP);
        if (merged !== next) dispose([next.values, next.indices]);
        if (running && merged !== running) dispose([running.values, running.indices]);
        running = merged;
        report?.({ stage, done: ++done, total: steps });
      }
      if (running) {
        collect(running, first);
        dispose([running.values, running.indices]);
      }
      return;
    }
    for (let i = first; i < first + count; i++) {
      const w = windows[i];
      const box = windowBox(target, w);
      if (!box) {
        rows[i] = { values: new Float32Array([-Infinity]), indices: new BigInt64Array([0n]), k: 1 };
      } else {
        const window = { center: w.center, spacing: target.spacing, radius: w.radiusMm };
        const found = cosineTopK(levels, KEEP, {
          size: target.shape,
          ...box,
          first: i - first,
          count: 1,
          window,
        });
        collect(found, i);
        dispose([found.values, found.indices]);
      }
      report?.({ stage, done: ++done, total: steps });
    }
  });
  const result: RawMatches = {
    voxels: new Int32Array(q * 3).fill(-1),
    best: new Float32Array(q).fill(-Infinity),
    secondBest: new Float32Array(q).fill(-Infinity),
    secondPeak: new Float32Array(q).fill(-Infinity),
  };
  const exclusion = options.peakExclusion ?? 2;
  const voxelOf = (flat: number) => [Math.floor(flat / plane), Math.floor(flat / D) % H, flat % D];
  rows.forEach(({ values, indices, k }, i) => {
    // Among equal best values take the lowest flat index (torch.argmax's first maximum).
    let bestJ = 0;
    for (let j = 1; j < k && values[j] === values[0]; j++) if (indices[j] < indices[bestJ]) bestJ = j;
    if (!Number.isFinite(values[bestJ])) return;
    const v = voxelOf(Number(indices[bestJ]));
    result.voxels.set(v, i * 3);
    result.best[i] = values[bestJ];
    result.secondBest[i] = k > 1 ? values[bestJ === 0 ? 1 : 0] : -Infinity;
    let peak = values[k - 1];
    for (let j = 0; j < k; j++) {
      const o = voxelOf(Number(indices[j]));
      if (Math.max(Math.abs(o[0] - v[0]), Math.abs(o[1] - v[1]), Math.abs(o[2] - v[2])) > exclusion) {
        peak = values[j];
        break;
      }
    }
    result.secondPeak[i] = Number.isFinite(peak) ? peak : result.best[i];
  });
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
