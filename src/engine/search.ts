/**
 * Cosine-similarity search of query vectors against a feature grid that is read through trilinear
 * upsampling (align_corners false) to a finer grid, without building the upsampled features: the fused
 * native kernel (native/ops_search.cc) interpolates the coarse dot products ⟨q, L⟩ and evaluates the
 * upsampled norm from corner Gram maps, voxel by voxel, summing the cosines of several levels.
 *
 *   const levels = features.map((level, l) => searchLevel(level, queriesOfLevel[l]));
 *   const { values, indices } = cosineTopK(levels, 64, { size: [160, 192, 160] });
 */
import { invalid } from '../util/is.ts';
import { intList } from './check.ts';
import { N, type Handle } from './native.ts';
import { tidy } from './scope.ts';
import { Tensor } from './tensor.ts';

/** One level prepared for search: the queries' dot products and the corner Gram maps, channels last. */
export interface SearchLevel {
  /** ⟨q, L[p]⟩: (w, h, d, Q) float32. */
  dots: Tensor;
  /** ⟨L[p + a], L[p + b]⟩ for the 36 pairs a ≤ b of cell corners (bits 0, 1, 2 = axes): (w, h, d, 36). */
  gram: Tensor;
}

/** A level (C, w, h, d) and query vectors (Q, C) prepared for `cosineTopK` / `cosineScores`. */
export function searchLevel(level: Tensor, queries: Tensor): SearchLevel {
  if (level.ndim !== 4) throw invalid('search level', 'a 4-D tensor (C, w, h, d)', level.toString());
  if (queries.ndim !== 2 || queries.shape[1] !== level.shape[0])
    throw invalid('search queries', `a (Q, ${level.shape[0]}) tensor`, queries.toString());
  return tidy(() => {
    const [c, w, h, d] = level.shape;
    const dots = level
      .reshape(c, -1)
      .t()
      .matmul(queries.float().t())
      .reshape(w, h, d, queries.shape[0])
      .contiguous();
    return { dots, gram: new Tensor(N.corner_gram(level.float().handle)) };
  });
}

export interface CosineSearchOptions {
  /** The fine grid the levels are upsampled to, (W, H, D). */
  size: readonly number[];
  /** The part [lo, hi) of the fine grid to score; the whole grid when absent. */
  lo?: readonly number[];
  hi?: readonly number[];
  /** Query rows [first, first + count) of the levels' dots; all when absent. */
  first?: number;
  count?: number;
  /** Score only voxels v with Σ ((v − center)·spacing)² ≤ radius²; others are −∞. */
  window?: { center: readonly number[]; spacing: readonly number[]; radius: number };
}

function nativeArgs(levels: readonly SearchLevel[], o: CosineSearchOptions, k: number) {
  if (levels.length === 0) throw invalid('search levels', 'at least one level', '[]');
  const queries = levels[0].dots.shape[3];
  const size = intList('search size', o.size, 1);
  if (size.length !== 3) throw invalid('search size', 'three positive integers', o.size);
  const lo = intList('search lo', o.lo ?? [0, 0, 0], 0);
  const hi = intList('search hi', o.hi ?? size, 1);
  if (lo.length !== 3 || hi.length !== 3 || lo.some((v, a) => v >= hi[a] || hi[a] > size[a]))
    throw invalid('search box', `0 <= lo < hi <= [${size.join(', ')}] per axis`, [...lo, ...hi]);
  const first = o.first ?? 0;
  const count = o.count ?? queries - first;
  if (
    !Number.isInteger(first) ||
    !Number.isInteger(count) ||
    first < 0 ||
    count < 1 ||
    first + count > queries
  )
    throw invalid('search query range', `first + count within ${queries} queries`, [first, count]);
  const w = o.window;
  const window = w ? [...w.center, ...w.spacing, w.radius] : null;
  if (window && (window.length !== 7 || !window.every(Number.isFinite) || w!.radius <= 0))
    throw invalid('search window', 'a centre, a spacing (3 values each) and a radius > 0', window);
  const handles = (key: 'dots' | 'gram'): Handle[] => levels.map((l) => l[key].handle);
  return [handles('dots'), handles('gram'), size, lo, hi, first, count, k, window] as const;
}

/**
 * Each query's `k` best voxels of the box by summed cosine: values (count, k') descending and flat C-order
 * indices into the whole fine grid (count, k'), lowest index first among equal values; k' = min(k, box).
 */
export function cosineTopK(
  levels: readonly SearchLevel[],
  k: number,
  options: CosineSearchOptions,
): { values: Tensor; indices: Tensor } {
  if (!Number.isInteger(k) || k < 1) throw invalid('search k', 'an integer >= 1', k);
  const [values, indices] = N.interpolated_cosine_search(...nativeArgs(levels, options, k)) as [
    Handle,
    Handle,
  ];
  return { values: new Tensor(values), indices: new Tensor(indices) };
}

/** The summed cosines of every voxel of the box: (count, box voxels), C order, −∞ outside the window. */
export function cosineScores(levels: readonly SearchLevel[], options: CosineSearchOptions): Tensor {
  return new Tensor(N.interpolated_cosine_search(...nativeArgs(levels, options, 0)) as Handle);
}

/**
 * For each row of `x` (N, c), the index of the nearest row of `codes` (K, c) by squared Euclidean
 * distance, the lowest index among equal distances: (N) int64, no gradient. A fused native kernel keeps
 * one row of distances in cache instead of an (N, K) matrix (the VQ codebook lookup).
 */
export function nearestRows(x: Tensor, codes: Tensor): Tensor {
  if (x.ndim !== 2) throw invalid('nearest rows', 'a 2-D tensor (N, c)', x.toString());
  if (codes.ndim !== 2 || codes.shape[1] !== x.shape[1] || codes.shape[0] < 1)
    throw invalid('nearest rows codes', `a (K, ${x.shape[1]}) tensor with K >= 1`, codes.toString());
  return tidy(() => new Tensor(N.nearest_rows(x.detach().float().handle, codes.detach().float().handle)));
}
