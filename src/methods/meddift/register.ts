/**
 * `medDiftRegister`: a dense, smooth deformation from MedDIFT's diffusion descriptors. MedDIFT itself
 * stops at point matches; here the same descriptors, sampled on a working lattice over the fixed image
 * (coarse enough for a correlation cost volume), drive ConvexAdam (convex coupling + Adam instance
 * optimisation, optionally diffeomorphic). The result is a pull-back displacement field in world mm on
 * the fixed image's grid: warped(p) = moving(p + u(p)).
 */
import {
  Generator,
  cat,
  dispose,
  noGrad,
  randn,
  sampleTrilinear,
  tensor,
  tidy,
  type Tensor,
} from '../../engine/index.ts';
import type { DisplacementField } from '../../geometry/field.ts';
import { fieldThenAffine } from '../../geometry/compose.ts';
import { gridPositions, latticeOver, tensorToField } from '../../geometry/field-tensor.ts';
import { Volume, type Vec3 } from '../../geometry/volume.ts';
import { integer } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { affineAlign, latticeAffineToWorld } from '../dense/affine.ts';
import { convexAdam, type ConvexAdamOptions } from '../dense/convex-adam.ts';
import type { RefinementLatticeOptions, RefineOptions } from '../dense/refine.ts';
import type { Modality } from '../../data/case.ts';
import { imageFeatures, pairFeatures, type ImageFeatures, type MedDiftMatchOptions } from './correspond.ts';
import type { DiffusionFeatureModel, FeatureOptions } from './features.ts';

export interface MedDiftRegisterOptions
  extends
    Omit<MedDiftMatchOptions, 'search' | 'radiusMm' | 'initial' | 'subvoxel' | 'consistency'>,
    ConvexAdamOptions {
  /** Upper bound on working-lattice voxels: sets the lattice spacing of the Adam stage. */
  maxLatticeVoxels?: number;
  /** Upper bound on the convex search's lattice voxels (at most the working lattice's). */
  maxSearchLatticeVoxels?: number;
  /** An affine pre-alignment on the search lattice before the deformable stages. */
  affine?: boolean;
  /** Descriptor channels kept after a joint PCA of both images. */
  channels?: number;
  /**
   * Iterations of the intensity refinement after the deformable stages (dense/refine.ts; 0 = off;
   * by default per modality, FEATURE_REGISTRATION_DEFAULTS.refine).
   */
  refine?: number;
  /** The refinement's other settings (its defaults otherwise). */
  refinement?: Omit<RefineOptions, 'iterations' | 'controlDims' | 'window'> & RefinementLatticeOptions;
  progress?: ProgressFn;
}

/**
 * The lattices', the descriptors' and the stages' defaults of the dense registration (ConvexAdam's
 * others apart), some by the images' modality.
 */
export const FEATURE_REGISTRATION_DEFAULTS = {
  /**
   * Working-lattice budget. On MR 48³ chosen with 40 Adam iterations for time (bench/harness/RESULTS.md,
   * 2026-12-07 15:50–16:45, with the other defaults: LPBA40 S11–S12 0.7031 → 0.6999, elastix 0.681;
   * ACDC 002/022/042 0.8302 → 0.8315, elastix 0.835; at about half the time); CT keeps 64³ (its
   * cases are fast already).
   */
  maxLatticeVoxels: { mr: 48 ** 3, ct: 64 ** 3 } as Readonly<Record<Modality, number>>,
  maxSearchLatticeVoxels: 64 ** 3,
  /**
   * ConvexAdam's Adam iterations (its own default: 80). On MR 40 cost nothing on validation (LPBA40
   * S11–S12 0.7038 → 0.7029, ACDC 002/022/042 0.8305 → 0.8302, 2026-12-07 15:50); on CT it did
   * (synthetic lung 1–2: 0.218 → 0.254 mm), so CT keeps 80.
   */
  iterations: { mr: 40, ct: 80 } as Readonly<Record<Modality, number>>,
  channels: 24,
  affine: true,
  /**
   * Refinement iterations by the images' modality, chosen on the validation subsets with the default
   * descriptor (bench/harness/RESULTS.md, 2026-12-07): MR on — ACDC 002/022/042 0.747 → 0.841
   * (elastix 0.835), LPBA40 S11–S12 0.655 → 0.685 (elastix 0.681); CT off — synthetic lung 1–2 MIND
   * 0.218 → 0.92 mm (0.52 mm on a finer lattice at 7 times the time).
   */
  refine: { mr: 50, ct: 0 } as Readonly<Record<Modality, number>>,
};

export interface MedDiftRegisterResult {
  field: DisplacementField;
  /** The working lattice: dims and spacing (mm). */
  lattice: { dims: Vec3; spacing: Vec3 };
  seconds: { features: number; registration: number };
}

/**
 * Lattice dims over a grid of `dims` voxels of `spacing` mm: one spacing for every axis (the search
 * cube, the smoothing and the regulariser are isotropic in lattice voxels, so they are in mm too),
 * the image's finest spacing or coarser so that at most `maxVoxels` remain. Thick-slice stacks are
 * sampled finer than their slices across them.
 */
export function latticeDims(dims: readonly number[], spacing: readonly number[], maxVoxels: number): Vec3 {
  const extent = dims.map((n, a) => n * spacing[a]);
  const step = Math.max(Math.min(...spacing), Math.cbrt((extent[0] * extent[1] * extent[2]) / maxVoxels));
  const fit = (e: number) => Math.max(4, Math.round(e / step));
  let lattice = extent.map(fit);
  // Rounding up may overshoot the budget by a few voxels: shrink by the excess.
  const excess = Math.cbrt((lattice[0] * lattice[1] * lattice[2]) / maxVoxels);
  if (excess > 1) lattice = extent.map((e) => Math.max(4, Math.floor(e / (step * excess))));
  return lattice as Vec3;
}

/**
 * Level `l` of an image's features read at `positions` (3, …) given in voxels of the image's grid
 * (MedDIFT's trilinear upsampling evaluated there), L2-normalised per voxel and weighted: (C_l, …).
 */
function levelDescriptors(features: ImageFeatures, l: number, positions: Tensor, weight: number): Tensor {
  return tidy(() => {
    const level = features.grid.levels[l];
    // align_corners false: level voxel = (p + 0.5)·n_level/n_image − 0.5, per axis.
    const scale = tensor(features.grid.shape.map((n, a) => level.shape[a + 1] / n)).reshape(3, 1, 1, 1);
    const v = sampleTrilinear(level, positions.add(0.5).mul(scale).sub(0.5));
    return v.div(v.norm(2, 0, true).clamp(1e-8)).mul(weight);
  });
}

/** Voxels per image from which the PCA's mean and covariance are estimated. */
const PCA_SAMPLES = 16384;

/**
 * A joint PCA of two sets of descriptor samples (C, n_a) and (C, n_b): their mean (C, 1) and top-k
 * principal directions (C, k), by subspace iteration on the covariance E[xxᵀ] − μμᵀ (k ≪ C, so no full
 * eigendecomposition, and no concatenated or centred copy).
 */
export function pcaBasis(a: Tensor, b: Tensor, k: number, seed = 0): { mean: Tensor; basis: Tensor } {
  return tidy(() => {
    const c = a.shape[0];
    const n = a.shape[1] + b.shape[1];
    const mean = a.sum(1, true).add(b.sum(1, true)).div(n);
    const cov = a.matmul(a.t()).add(b.matmul(b.t())).div(n).sub(mean.matmul(mean.t()));
    let basis = randn([c, k], { generator: new Generator(seed) });
    for (let i = 0; i < 12; i++) basis = orthonormalColumns(cov.matmul(basis));
    return { mean, basis };
  });
}

/**
 * Both images' descriptors on the lattice — each read at its positions (3, w, h, d, in voxels of the
 * image) — projected onto their joint top-k principal components: the basis comes from PCA_SAMPLES
 * lattice voxels per image, and the projection is accumulated level by level, so the full-width
 * lattice descriptors (C = 960 for MAISI) never exist at once.
 */
function projectedDescriptors(
  sides: [ImageFeatures, Tensor][],
  k: number,
  weights: readonly number[] | undefined,
  seed: number,
): Tensor[] {
  const count = sides[0][0].grid.levels.length;
  const w = weights ?? new Array<number>(count).fill(1);
  const total = w.reduce((s, v) => s + v, 0);
  const levels = Array.from({ length: count }, (_, l) => l);
  const describe = ([x, positions]: [ImageFeatures, Tensor], l: number) =>
    levelDescriptors(x, l, positions, w[l] / total);
  const widths = sides[0][0].grid.levels.map((level) => level.shape[0]);
  const channels = widths.reduce((n, c) => n + c, 0);
  if (channels <= k)
    return sides.map((side) =>
      tidy(() =>
        cat(
          levels.map((l) => describe(side, l)),
          0,
        ),
      ),
    );
  return tidy(() => {
    const samples = sides.map(([x, positions]) => {
      const flat = positions.reshape(3, -1);
      const step = Math.max(1, Math.floor(flat.shape[1] / PCA_SAMPLES));
      const picked = flat.slice(1, 0, flat.shape[1], step).contiguous().reshape(3, -1, 1, 1);
      return cat(
        levels.map((l) => describe([x, picked], l).reshape(widths[l], -1)),
        0,
      );
    });
    const { mean, basis } = pcaBasis(samples[0], samples[1], k, seed);
    const shift = basis.t().matmul(mean);
    return sides.map((side) => {
      let projected = shift.neg();
      let offset = 0;
      for (const l of levels) {
        const part = tidy(() =>
          basis.narrow(0, offset, widths[l]).t().matmul(describe(side, l).reshape(widths[l], -1)),
        );
        offset += widths[l];
        projected = projected.add(part);
      }
      return projected.reshape(k, ...side[1].shape.slice(1));
    });
  });
}

/** Gram–Schmidt on the columns of a (C, k) matrix. */
function orthonormalColumns(m: Tensor): Tensor {
  const [c, k] = m.shape;
  const values = m.t().contiguous().toTypedArray() as Float32Array;
  const cols = Array.from({ length: k }, (_, j) => Float64Array.from(values.subarray(j * c, (j + 1) * c)));
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < j; i++) {
      let dot = 0;
      for (let x = 0; x < c; x++) dot += cols[j][x] * cols[i][x];
      for (let x = 0; x < c; x++) cols[j][x] -= dot * cols[i][x];
    }
    let norm = 0;
    for (let x = 0; x < c; x++) norm += cols[j][x] ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let x = 0; x < c; x++) cols[j][x] /= norm;
  }
  return tensor(cols.map((col) => Array.from(col)))
    .t()
    .contiguous();
}

export interface FeatureRegistration {
  field: DisplacementField;
  lattice: { dims: Vec3; spacing: Vec3 };
}

/** Dense registration on precomputed features of both images (any descriptors, not only diffusion ones). */
export function registerFeatures(
  f: ImageFeatures,
  m: ImageFeatures,
  fixed: Volume,
  options: Omit<MedDiftRegisterOptions, keyof FeatureOptions | 'modality'> = {},
): FeatureRegistration {
  const maxVoxels = integer(
    'maxLatticeVoxels',
    options.maxLatticeVoxels ?? FEATURE_REGISTRATION_DEFAULTS.maxLatticeVoxels[f.modality],
    {
      min: 512,
      max: 256 ** 3,
    },
  );
  // The default search lattice shrinks with a smaller working lattice; a given one may not exceed it.
  const maxSearchVoxels =
    options.maxSearchLatticeVoxels === undefined
      ? Math.min(maxVoxels, FEATURE_REGISTRATION_DEFAULTS.maxSearchLatticeVoxels)
      : integer('maxSearchLatticeVoxels', options.maxSearchLatticeVoxels, { min: 512, max: maxVoxels });
  const channels = integer('channels', options.channels ?? FEATURE_REGISTRATION_DEFAULTS.channels, {
    min: 1,
    max: 1024,
  });
  const seed = integer('seed', options.seed ?? 0, { min: 0 });
  // The lattices span the fixed image's network grid (RAS order, as the features); the moving
  // descriptors are read through the affine pre-alignment (a world affine), when there is one.
  const onLattice = (dims: Vec3, affine?: readonly number[]) => {
    const grid = latticeOver(f.volume, dims);
    const [fixedDesc, movingDesc] = noGrad(() =>
      tidy(() =>
        projectedDescriptors(
          [
            [f, gridPositions(grid, f.volume)],
            [m, gridPositions(grid, m.volume, affine)],
          ],
          channels,
          options.levelWeights ?? f.grid.weights,
          seed,
        ),
      ),
    );
    return { grid, fixed: fixedDesc, moving: movingDesc };
  };
  const lattice = latticeDims(f.volume.dims, f.volume.spacing, maxVoxels);
  const searchDims = latticeDims(f.volume.dims, f.volume.spacing, maxSearchVoxels);
  let search = onLattice(searchDims);
  let affine: number[] | undefined;
  if (options.affine ?? FEATURE_REGISTRATION_DEFAULTS.affine) {
    const a = affineAlign(search.fixed, search.moving, { progress: options.progress });
    affine = latticeAffineToWorld(a, search.grid);
    dispose([search.fixed, search.moving]);
    search = onLattice(searchDims, affine);
  }
  const fine = searchDims.every((n, a) => n === lattice[a]) ? undefined : onLattice(lattice, affine);
  const latticeGrid = (fine ?? search).grid;
  const u = convexAdam(
    search.fixed,
    search.moving,
    { ...options, iterations: options.iterations ?? FEATURE_REGISTRATION_DEFAULTS.iterations[f.modality] },
    fine && {
      ...fine,
      // A search-lattice displacement read at the fine voxels, in fine voxels.
      fromCoarse: (u) =>
        tidy(() =>
          sampleTrilinear(u, gridPositions(fine.grid, search.grid)).mul(
            tensor(search.grid.spacing.map((s, a) => s / fine.grid.spacing[a])).reshape(3, 1, 1, 1),
          ),
        ),
    },
  );
  dispose([search.fixed, search.moving, ...(fine ? [fine.fixed, fine.moving] : [])]);
  const deformable = tensorToField(u, latticeGrid, fixed);
  u.dispose();
  const field = affine ? fieldThenAffine(deformable, affine) : deformable;
  return { field, lattice: { dims: lattice, spacing: latticeGrid.spacing } };
}

export function medDiftRegister(
  model: DiffusionFeatureModel,
  fixed: Volume,
  moving: Volume,
  options: MedDiftRegisterOptions = {},
): MedDiftRegisterResult {
  const seed = integer('seed', options.seed ?? 0, { min: 0 });
  const t0 = performance.now();
  const report = options.progress;
  report?.({ stage: 'diffusion features', done: 0, total: 2 });
  const [f, m] = pairFeatures(fixed, moving, (volume, subject, side) =>
    imageFeatures(model, volume, { ...options, generator: new Generator(seed + side) }, subject),
  );
  try {
    report?.({ stage: 'diffusion features', done: 2, total: 2 });
    const t1 = performance.now();
    const registration = registerFeatures(f, m, fixed, options);
    return {
      ...registration,
      seconds: { features: (t1 - t0) / 1000, registration: (performance.now() - t1) / 1000 },
    };
  } finally {
    dispose([...f.grid.levels, ...m.grid.levels]);
  }
}
