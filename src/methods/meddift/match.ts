/**
 * Matching query descriptors against every voxel of a target image, in bounded memory.
 *
 * A descriptor is the concatenation over levels of the L2-normalised level features (v / max(‖v‖, 1e-8)),
 * and similarity is the weighted mean of the per-level cosines (MedDIFT: equal weights, i.e. the dot
 * product divided by the number of levels). The target grid is processed in slabs along its first axis:
 * each slab's descriptors are interpolated from the level grids, normalised, multiplied with the queries,
 * and reduced to each query's best candidates, so no full-resolution feature volume ever exists.
 */
import { arange, cat, dispose, tensor, tidy, type Tensor } from '../../engine/index.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { cornerGram, levelArray, sampleLevel, upsampleBox, upsampledSquaredNorm } from './sampling.ts';

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

/** A box [lo, hi) of target voxel indices. */
interface Box {
  lo: number[];
  hi: number[];
}

/**
 * Similarity of query descriptors (Q, ΣC) to the target descriptors of any box of target voxels:
 * `score(box, first, count)` gives (count, box voxels, C order) for query rows [first, first + count).
 * Per level, sim = ⟨q, U(L)(v)⟩ / ‖U(L)(v)‖ with U the trilinear upsampling. When a level has more
 * channels than there are queries, both factors are formed on the coarse grid first — the dot products
 * ⟨q, L⟩ (then upsampled: U is linear) and the corner Gram maps of the norm — so the C channels are
 * never upsampled; otherwise the level is upsampled and multiplied. Both equal MedDIFT's
 * upsample-normalise-dot up to float rounding.
 */
interface Scorer {
  score(box: Box, first: number, count: number): Tensor;
  dispose(): void;
}

function similarityScorer(query: Tensor, target: FeatureGrid): Scorer {
  const q = query.shape[0];
  let offset = 0;
  const held: Tensor[] = [];
  const levels = target.levels.map((level) => {
    const c = level.shape[0];
    const rows = query.narrow(1, offset, c).keep();
    offset += c;
    held.push(rows);
    if (c <= q) return { level, rows, coarse: undefined, gram: undefined };
    const coarse = tidy(() => rows.matmul(level.reshape(c, -1)).reshape(q, ...level.shape.slice(1)));
    const gram = cornerGram(level);
    held.push(coarse, gram.maps);
    return { level, rows, coarse, gram };
  });
  return {
    score(box, first, count) {
      return tidy(() => {
        let sims: Tensor | undefined;
        for (const { level, rows, coarse, gram } of levels) {
          let part: Tensor;
          if (coarse && gram) {
            const dots = upsampleBox(coarse.narrow(0, first, count), target.shape, box.lo, box.hi).reshape(
              count,
              -1,
            );
            const inverseNorm = upsampledSquaredNorm(gram, target.shape, box.lo, box.hi).clamp(1e-16).rsqrt();
            part = dots.mul(inverseNorm);
          } else {
            const c = level.shape[0];
            const flat = upsampleBox(level, target.shape, box.lo, box.hi).reshape(c, -1);
            part = rows.narrow(0, first, count).matmul(flat.div(flat.norm(2, 0, true).clamp(1e-8)));
          }
          sims = sims ? sims.add_(part) : part;
        }
        return sims as Tensor;
      });
    },
    dispose() {
      dispose(held);
    },
  };
}

/** Global flat indices (C order over the whole target) of the voxels of a box, as an int64 (1, N) tensor. */
function boxFlatIndices(target: FeatureGrid, box: Box): Tensor {
  const [, H, D] = target.shape;
  return tidy(() => {
    const axis = (a: number, stride: number) => {
      const view = [1, 1, 1];
      view[a] = box.hi[a] - box.lo[a];
      return arange(box.lo[a], box.hi[a], 1, { dtype: 'int64' }).mul(stride).reshape(view);
    };
    return axis(0, H * D)
      .add(axis(1, D))
      .add(axis(2, 1))
      .reshape(1, -1);
  });
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
export function similarityMaps(query: Tensor, target: FeatureGrid, slabVoxels = 1 << 17): Float32Array[] {
  const [W, H, D] = target.shape;
  const maps = Array.from({ length: query.shape[0] }, () => new Float32Array(W * H * D));
  const scorer = similarityScorer(query, target);
  for (const box of slabs(target, slabVoxels)) {
    const values = tidy(() => scorer.score(box, 0, query.shape[0]).toTypedArray() as Float32Array);
    const n = (box.hi[0] - box.lo[0]) * H * D;
    maps.forEach((m, i) => m.set(values.subarray(i * n, (i + 1) * n), box.lo[0] * H * D));
  }
  scorer.dispose();
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

/** −∞ for the box voxels farther than the window radius from its centre. */
function maskOutsideWindow(sims: Tensor, target: FeatureGrid, box: Box, w: SearchWindow): Tensor {
  return tidy(() => {
    const axis = (a: number) => {
      const view = [1, 1, 1];
      view[a] = box.hi[a] - box.lo[a];
      return arange(box.lo[a], box.hi[a], 1).sub(w.center[a]).mul(target.spacing[a]).square().reshape(view);
    };
    const outside = axis(0)
      .add(axis(1))
      .add(axis(2))
      .gt(w.radiusMm * w.radiusMm)
      .reshape(1, -1);
    return sims.maskedFill(outside, -Infinity);
  });
}

/** Running top candidates per query: values (Q, K) and global flat indices (Q, K). */
interface Candidates {
  values: Tensor;
  indices: Tensor;
}

function mergeCandidates(
  previous: Candidates | undefined,
  sims: Tensor,
  flat: Tensor,
  keep: number,
): Candidates {
  return tidy(() => {
    const top = sims.topk(Math.min(keep, sims.shape[1]), { dim: 1 });
    const indices = flat.expand(sims.shape[0], flat.shape[1]).gather(1, top.indices);
    if (!previous) return { values: top.values, indices };
    const values = cat([previous.values, top.values], 1);
    const all = cat([previous.indices, indices], 1);
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
  const rows: { values: Float32Array; indices: BigInt64Array; k: number }[] = [];
  const collect = (c: Candidates, count: number) => {
    const k = c.values.shape[1];
    const values = c.values.toTypedArray() as Float32Array;
    const indices = c.indices.toTypedArray() as BigInt64Array;
    for (let i = 0; i < count; i++)
      rows.push({
        values: values.subarray(i * k, (i + 1) * k),
        indices: indices.subarray(i * k, (i + 1) * k),
        k,
      });
  };
  const scorer = similarityScorer(query, target);
  try {
    if (!windows) {
      const boxes = slabs(target, options.slabVoxels ?? 1 << 17);
      let running: Candidates | undefined;
      boxes.forEach((box, b) => {
        const next = tidy(() =>
          mergeCandidates(running, scorer.score(box, 0, q), boxFlatIndices(target, box), KEEP),
        );
        if (running) dispose([running.values, running.indices]);
        running = { values: next.values.keep(), indices: next.indices.keep() };
        report?.({ stage, done: b + 1, total: boxes.length });
      });
      if (running) {
        collect(running, q);
        dispose([running.values, running.indices]);
      }
    } else {
      windows.forEach((w, i) => {
        const box = windowBox(target, w);
        if (!box) {
          rows.push({ values: new Float32Array([-Infinity]), indices: new BigInt64Array([0n]), k: 1 });
        } else {
          tidy(() => {
            const sims = maskOutsideWindow(scorer.score(box, i, 1), target, box, w);
            collect(mergeCandidates(undefined, sims, boxFlatIndices(target, box), KEEP), 1);
          });
        }
        report?.({ stage, done: i + 1, total: windows.length });
      });
    }
  } finally {
    scorer.dispose();
  }
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
