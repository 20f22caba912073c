/**
 * `medDiftMatch`: point correspondence between two Volumes with diffusion features (MedDIFT), with
 * what the reference code leaves out: a local search window around an initial estimate, sub-voxel
 * refinement, a confidence per match, forward–backward consistency, and answers in world mm and in
 * voxel indices of the moving image as stored.
 */
import { Generator, dispose } from '../../engine/index.ts';
import { sampleField, type DisplacementField } from '../../geometry/field.ts';
import { alignAxes } from '../../geometry/orient.ts';
import { transformPoints } from '../../geometry/warp.ts';
import type { Vec3, Volume } from '../../geometry/volume.ts';
import { DiffregError, fail } from '../../util/errors.ts';
import { bool, integer, number, oneOf } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';
import {
  checkLevels,
  extractFeatureLevels,
  MEDDIFT_TIMESTEP,
  type DiffusionFeatureModel,
  type FeatureOptions,
} from './features.ts';
import {
  descriptorsAt,
  matchDescriptors,
  refineSubvoxel,
  type FeatureGrid,
  type SearchWindow,
} from './match.ts';
import type { Modality } from '../../data/case.ts';
import { asNetworkInput, type NetworkInput } from '../../models/index.ts';

/** Where each fixed point is expected in the moving image before matching (local search centre). */
export type InitialTransform =
  | { kind: 'identity' }
  /** 4×4 row-major world (LPS mm) transform from fixed to moving points. */
  | { kind: 'affine'; matrix: readonly number[] }
  /** Pull-back displacement field on the fixed grid: p ↦ p + u(p). */
  | { kind: 'field'; field: DisplacementField };

/** What images are described by: see describe.ts ('auto': one of the others by the fixed image's modality). */
export const DESCRIPTORS = ['auto', 'diffusion', 'mind', 'patches', 'fused', 'classical'] as const;
export type Descriptor = (typeof DESCRIPTORS)[number];
/** The descriptor of `diffreg match` and `diffreg register` when none is given. */
export const DEFAULT_DESCRIPTOR: Descriptor = 'auto';

export const SEARCH_MODES = ['registered', 'local', 'global'] as const;
export type SearchMode = (typeof SEARCH_MODES)[number];

/**
 * Default search radii (mm). 'local': about the largest motion of a breathing lung, for an initial
 * estimate that may be the identity. 'registered': the window that scores a registered position
 * (points.ts).
 */
export const SEARCH_RADIUS_MM = { local: 20, registered: 6 } as const;

export interface MedDiftMatchOptions extends FeatureOptions {
  modality?: Modality | 'auto';
  /** What the images are described by (default DEFAULT_DESCRIPTOR; see describe.ts). */
  descriptor?: Descriptor;
  /**
   * 'registered' (default): the registered positions of a dense registration on the same features,
   * scored by a search within `radiusMm` around them (points.ts); 'local': the best match within
   * `radiusMm` of `initial`; 'global': over every voxel of the moving image (MedDIFT's reference).
   */
  search?: SearchMode;
  /** Local search radius in mm (defaults in SEARCH_RADIUS_MM). */
  radiusMm?: number;
  /** Initial estimate for 'local' search (identity when absent). */
  initial?: InitialTransform;
  /** Level weights (default equal: the mean of per-level cosines). */
  levelWeights?: readonly number[];
  seed?: number;
  subvoxel?: boolean;
  /** Match every result back to the fixed image and report the distance to the query (mm). */
  consistency?: boolean;
  /** Target voxels scanned per step: bounds memory (default 2^17). */
  slabVoxels?: number;
  progress?: ProgressFn;
}

export interface PointMatch {
  /** Query point, world mm (LPS). */
  fixed: Vec3;
  /** Matched point, world mm (LPS); NaN when the search window held no voxel. */
  moving: Vec3;
  /** Matched point as a continuous voxel index of the moving image as stored (0-based). */
  movingVoxel: Vec3;
  /** Mean cosine similarity at the match. */
  similarity: number;
  /** Best similarity away from the match (the competing peak). */
  secondPeak: number;
  /** Distance (mm) from the query to the back-match of the match; NaN when not computed. */
  backErrorMm: number;
  /** In [0, 1]: how distinct the peak is, lowered when the match is not consistent both ways. */
  confidence: number;
}

export interface MedDiftMatchResult {
  matches: PointMatch[];
  modality: { fixed: Modality; moving: Modality };
  /** Wall time of the stages; registration is 0 unless the search is 'registered'. */
  seconds: { features: number; registration: number; matching: number };
}

/** Features of one image plus the RAS grid they live on. */
export interface ImageFeatures {
  grid: FeatureGrid;
  volume: Volume;
  modality: Modality;
}

/** The diffusion features of one image (a volume, or its network input converted once by the caller). */
export function imageFeatures(
  model: DiffusionFeatureModel,
  source: Volume | NetworkInput,
  options: MedDiftMatchOptions & { generator: Generator },
  subject: string,
): ImageFeatures {
  const { input, owned } = asNetworkInput(source, options.modality ?? 'auto', subject);
  try {
    const spacing = input.grid.spacing;
    const levels = extractFeatureLevels(model, input.image, spacing, options);
    for (const l of levels) l.keep();
    return {
      grid: { levels, shape: input.grid.dims, spacing },
      volume: input.grid,
      modality: input.modality,
    };
  } finally {
    if (owned) input.image.dispose();
  }
}

/**
 * Fewest voxels along any axis of an image the features are computed from: fewer make a 2-D image, a
 * single slice or a few slices, without the neighbours the 3-D networks and trilinear sampling need.
 */
export const MIN_AXIS_VOXELS = 4;

/**
 * Least extent (mm) of the thinnest axis against the widest. A thinner slab is not a volume: the
 * networks resize every axis to at least 128 voxels, so its anatomy would reach them stretched more
 * than 16-fold against the other axes. Short-axis cardiac stacks (6–7 slices of 10 mm across about
 * 200–350 mm in-plane: 1/6 to 1/3) are volumes; a 1-mm slab of 8 slices in a 256-mm image is not.
 */
export const MIN_EXTENT_RATIO = 1 / 16;

/** Refuses a 2-D image, a single slice or a thin slab (see MIN_AXIS_VOXELS, MIN_EXTENT_RATIO). */
export function checkVolumeAxes(volume: Volume, subject: string): void {
  const dims = volume.dims.join('x');
  if (volume.dims.some((n) => n < MIN_AXIS_VOXELS))
    fail(
      subject,
      `${dims} voxels is not a 3-D volume: at least ${MIN_AXIS_VOXELS} voxels along every axis are ` +
        'needed (2-D images and single slices are not supported)',
    );
  const extents = volume.dims.map((n, a) => n * volume.spacing[a]);
  const [thinnest, widest] = [Math.min(...extents), Math.max(...extents)];
  if (thinnest < MIN_EXTENT_RATIO * widest)
    fail(
      subject,
      `${dims} voxels is a slab, not a 3-D volume: its thinnest axis (${+thinnest.toFixed(1)} mm) is ` +
        `less than 1/${1 / MIN_EXTENT_RATIO} of its widest (${+widest.toFixed(1)} mm)`,
    );
}

/**
 * Features of a pair, computed by `describe` (side 0 fixed, 1 moving) on grids with the same world
 * orientation: neither the networks nor classical descriptors are rotation invariant, so a moving image
 * rotated against the fixed one is first resampled onto axes parallel to the fixed image's (alignAxes;
 * a flip or permutation alone is left to reorientation). Positions on either grid are related through
 * world coordinates, so the moving side's answers are mapped back to the moving image as stored.
 */
export function pairFeatures(
  fixed: Volume,
  moving: Volume,
  describe: (volume: Volume, subject: string, side: 0 | 1) => ImageFeatures,
): [ImageFeatures, ImageFeatures] {
  checkVolumeAxes(fixed, 'fixed image');
  checkVolumeAxes(moving, 'moving image');
  const f = describe(fixed, 'fixed image', 0);
  try {
    return [f, describe(alignAxes(moving, fixed.direction), 'moving image', 1)];
  } catch (error) {
    dispose(f.grid.levels);
    throw error;
  }
}

/**
 * Checks matching options before any file is read or feature computed — against the model when it is
 * given (a model loaded only if the pair's descriptor needs it is checked by its loader).
 */
export function checkMatchOptions(model: DiffusionFeatureModel | undefined, o: MedDiftMatchOptions): void {
  integer('timestep', o.timestep ?? MEDDIFT_TIMESTEP, {
    min: 0,
    max: model ? model.scheduler.numTrainTimesteps - 1 : undefined,
  });
  const levels = model ? checkLevels(model, o.levels) : undefined;
  integer('noiseDraws', o.noiseDraws ?? 1, { min: 1, max: 64 });
  const search = oneOf('search', o.search ?? 'registered', SEARCH_MODES);
  if (o.radiusMm !== undefined) {
    if (search === 'global') fail('radiusMm', 'only with search "local" or "registered"');
    number('radiusMm', o.radiusMm, { min: 0, exclusiveMin: true });
  }
  if (o.initial && search !== 'local')
    fail(
      'initial',
      `only with search "local" (search "${search}" ${search === 'global' ? 'has no window' : 'registers first'})`,
    );
  const descriptor = oneOf('descriptor', o.descriptor ?? DEFAULT_DESCRIPTOR, DESCRIPTORS);
  if (o.levelWeights && descriptor !== 'diffusion')
    fail('levelWeights', 'only with the diffusion descriptor');
  if (o.levelWeights) {
    if (levels && o.levelWeights.length !== levels.length)
      fail('levelWeights', `expected ${levels.length} weights (one per level), got ${o.levelWeights.length}`);
    o.levelWeights.forEach((w, i) => number(`levelWeights[${i}]`, w, { min: 0 }));
    if (o.levelWeights.every((w) => w === 0)) fail('levelWeights', 'at least one weight must be positive');
  }
  integer('seed', o.seed ?? 0, { min: 0 });
  bool('subvoxel', o.subvoxel ?? true);
  bool('consistency', o.consistency ?? true);
}

/** Initial estimates of the moving positions of fixed world points. */
export function initialEstimate(
  points: readonly Vec3[],
  initial: InitialTransform = { kind: 'identity' },
): Vec3[] {
  if (initial.kind === 'identity') return points.map((p) => [...p] as Vec3);
  if (initial.kind === 'affine') return transformPoints(points, initial.matrix);
  const u = sampleField(initial.field, points);
  return points.map((p, i) => [p[0] + u[i][0], p[1] + u[i][1], p[2] + u[i][2]]);
}

export function voxelsOf(volume: Volume, points: readonly Vec3[], subject: string): number[][] {
  return points.map((p, i) => {
    const v = volume.worldToVoxel(p);
    if (v.some((x, a) => x < -0.5 || x > volume.dims[a] - 0.5)) {
      throw new DiffregError(
        `${subject}: point ${i} at (${p.map((x) => x.toFixed(1)).join(', ')}) mm lies outside the image`,
      );
    }
    return v.map((x, a) => Math.min(Math.max(x, 0), volume.dims[a] - 1));
  });
}

/** Matches `queries` (voxels of `source`) in `target`; returns refined RAS voxels and the raw scores. */
function matchPoints(
  source: ImageFeatures,
  target: ImageFeatures,
  queries: number[][],
  windows: SearchWindow[] | undefined,
  o: MedDiftMatchOptions,
  stage: string,
) {
  const descriptors = descriptorsAt(source.grid, queries, o.levelWeights);
  try {
    const raw = matchDescriptors(descriptors, target.grid, {
      windows,
      slabVoxels: o.slabVoxels,
      progress: o.progress,
      stage,
    });
    const positions =
      o.subvoxel === false
        ? Float64Array.from(raw.voxels, (v) => (v < 0 ? NaN : v))
        : refineSubvoxel(descriptors, target.grid, raw);
    return { raw, positions };
  } finally {
    descriptors.dispose();
  }
}

/** The matching step on precomputed features of both images (any descriptors, not only diffusion ones). */
export function matchFeatures(
  f: ImageFeatures,
  m: ImageFeatures,
  fixedPoints: readonly Vec3[],
  moving: Volume,
  options: Omit<MedDiftMatchOptions, keyof FeatureOptions | 'modality' | 'search'> & {
    search?: 'global' | 'local';
  } = {},
): PointMatch[] {
  const queries = voxelsOf(f.volume, fixedPoints, 'fixed points');
  const local = options.search === 'local';
  const radius = options.radiusMm ?? SEARCH_RADIUS_MM.local;
  const windows = local
    ? initialEstimate(fixedPoints, options.initial).map((p) => ({
        center: m.volume.worldToVoxel(p),
        radiusMm: radius,
      }))
    : undefined;
  const forward = matchPoints(f, m, queries, windows, options, 'matching fixed → moving');
  const q = fixedPoints.length;
  const matchedWorld: Vec3[] = Array.from({ length: q }, (_, i) =>
    m.volume.voxelToWorld([
      forward.positions[i * 3],
      forward.positions[i * 3 + 1],
      forward.positions[i * 3 + 2],
    ]),
  );
  const backError = new Float64Array(q).fill(NaN);
  if (options.consistency !== false) {
    const found = Array.from({ length: q }, (_, i) => i).filter((i) => forward.raw.voxels[i * 3] >= 0);
    const backQueries = found.map((i) => Array.from(forward.raw.voxels.slice(i * 3, i * 3 + 3)));
    const backWindows = local ? found.map((i) => ({ center: queries[i], radiusMm: radius })) : undefined;
    if (found.length > 0) {
      const back = matchPoints(m, f, backQueries, backWindows, options, 'matching moving → fixed');
      found.forEach((i, j) => {
        const b = f.volume.voxelToWorld([
          back.positions[j * 3],
          back.positions[j * 3 + 1],
          back.positions[j * 3 + 2],
        ]);
        backError[i] = Math.hypot(
          b[0] - fixedPoints[i][0],
          b[1] - fixedPoints[i][1],
          b[2] - fixedPoints[i][2],
        );
      });
    }
  }
  const voxelSize = Math.max(...m.volume.spacing);
  return fixedPoints.map((p, i) => {
    const best = forward.raw.best[i];
    const peak = forward.raw.secondPeak[i];
    const distinct = Number.isFinite(best)
      ? Math.max(0, Math.min(1, (best - peak) / Math.max(1e-6, 1 - peak)))
      : 0;
    const consistent = Number.isNaN(backError[i]) ? 1 : Math.exp(-backError[i] / (2 * voxelSize));
    return {
      fixed: [...p] as Vec3,
      moving: matchedWorld[i],
      movingVoxel: moving.worldToVoxel(matchedWorld[i]),
      similarity: best,
      secondPeak: peak,
      backErrorMm: backError[i],
      confidence: distinct * consistent,
    };
  });
}
