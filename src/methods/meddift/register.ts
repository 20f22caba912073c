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
import { gridPositions, latticeOver, tensorToField } from '../../geometry/field-tensor.ts';
import { Volume, type Vec3 } from '../../geometry/volume.ts';
import { integer } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { convexAdam, type ConvexAdamOptions } from '../dense/convex-adam.ts';
import { imageFeatures, pairFeatures, type ImageFeatures, type MedDiftMatchOptions } from './correspond.ts';
import type { DiffusionFeatureModel, FeatureOptions } from './features.ts';

export interface MedDiftRegisterOptions
  extends
    Omit<MedDiftMatchOptions, 'search' | 'radiusMm' | 'initial' | 'subvoxel' | 'consistency'>,
    ConvexAdamOptions {
  /** Upper bound on working-lattice voxels (default 64³): sets the lattice spacing. */
  maxLatticeVoxels?: number;
  /** Descriptor channels kept after a joint PCA of both images (default 24). */
  channels?: number;
  progress?: ProgressFn;
}

export interface MedDiftRegisterResult {
  field: DisplacementField;
  /** The working lattice: dims and spacing (mm). */
  lattice: { dims: Vec3; spacing: Vec3 };
  seconds: { features: number; registration: number };
}

/** Lattice dims: the grid shrunk by one factor per axis so that at most `maxVoxels` remain. */
export function latticeDims(dims: readonly number[], maxVoxels: number): Vec3 {
  const n = dims[0] * dims[1] * dims[2];
  const factor = Math.max(1, Math.cbrt(n / maxVoxels));
  return dims.map((d) => Math.max(4, Math.floor(d / factor))) as Vec3;
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
  const maxVoxels = integer('maxLatticeVoxels', options.maxLatticeVoxels ?? 64 ** 3, {
    min: 512,
    max: 256 ** 3,
  });
  const channels = integer('channels', options.channels ?? 24, { min: 1, max: 1024 });
  const seed = integer('seed', options.seed ?? 0, { min: 0 });
  const lattice = latticeDims(f.volume.dims, maxVoxels);
  // The working lattice spans the fixed image's network grid (RAS order, as the features).
  const latticeGrid = latticeOver(f.volume, lattice);
  const [fixedDesc, movingDesc] = noGrad(() =>
    tidy(() =>
      projectedDescriptors(
        [
          [f, gridPositions(latticeGrid, f.volume)],
          [m, gridPositions(latticeGrid, m.volume)],
        ],
        channels,
        options.levelWeights ?? f.grid.weights,
        seed,
      ),
    ),
  );
  const u = convexAdam(fixedDesc, movingDesc, options);
  dispose([fixedDesc, movingDesc]);
  const field = tensorToField(u, latticeGrid, fixed);
  u.dispose();
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
