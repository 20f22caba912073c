/**
 * `medDiftRegister`: a dense, smooth deformation from MedDIFT's diffusion descriptors. MedDIFT itself
 * stops at point matches; here the same descriptors, sampled on a working lattice over the fixed image
 * (coarse enough for a correlation cost volume), drive ConvexAdam (convex coupling + Adam instance
 * optimisation, optionally diffeomorphic). The result is a pull-back displacement field in world mm on
 * the fixed image's grid: warped(p) = moving(p + u(p)).
 */
import {
  F,
  Generator,
  cat,
  dispose,
  noGrad,
  randn,
  stack,
  tensor,
  tidy,
  type Tensor,
} from '../../engine/index.ts';
import type { DisplacementField } from '../../geometry/field.ts';
import { axisCodes, reorient } from '../../geometry/orient.ts';
import { Volume, type Vec3 } from '../../geometry/volume.ts';
import { integer } from '../../util/is.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { convexAdam, type ConvexAdamOptions } from '../dense/convex-adam.ts';
import { imageFeatures, type ImageFeatures, type MedDiftMatchOptions } from './correspond.ts';
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

/** Per-level normalised, weighted, concatenated descriptors from level tensors sampled by `sample`. */
function describe(
  features: ImageFeatures,
  weights: readonly number[] | undefined,
  sample: (level: Tensor) => Tensor,
): Tensor {
  const levels = features.grid.levels;
  const w = weights ?? levels.map(() => 1);
  const total = w.reduce((s, v) => s + v, 0);
  // One scope per level: a level's sampled, normalised and weighted copies are lattice-sized each.
  const parts = levels.map((level, l) =>
    tidy(() => {
      const v = sample(level.unsqueeze(0)).squeeze(0);
      return v.div(v.norm(2, 0, true).clamp(1e-8)).mul(w[l] / total);
    }),
  );
  const out = cat(parts, 0);
  dispose(parts);
  return out;
}

/** Voxels per image from which the PCA's covariance is estimated. */
const PCA_SAMPLES = 65536;

/**
 * Projection of both descriptor volumes (C, …) onto their joint top-k principal components, by
 * subspace iteration on the channel covariance (k ≪ C, so no full eigendecomposition).
 */
export function jointPca(a: Tensor, b: Tensor, k: number, seed = 0): [Tensor, Tensor] {
  return tidy(() => {
    const c = a.shape[0];
    if (c <= k) return [a.clone(), b.clone()];
    // Covariance of both volumes' voxels together, E[xxᵀ] − μμᵀ, without a concatenated or centred copy,
    // from every s-th voxel: 2·65536 samples estimate a C×C covariance well, at a fraction of the cost.
    const flat = [a.reshape(c, -1), b.reshape(c, -1)].map((x) => {
      const step = Math.max(1, Math.floor(x.shape[1] / PCA_SAMPLES));
      return x.slice(1, 0, x.shape[1], step).contiguous();
    });
    const n = flat[0].shape[1] + flat[1].shape[1];
    const mean = flat[0].sum(1, true).add(flat[1].sum(1, true)).div(n);
    const cov = flat[0]
      .matmul(flat[0].t())
      .add(flat[1].matmul(flat[1].t()))
      .div(n)
      .sub(mean.matmul(mean.t()));
    let basis = randn([c, k], { generator: new Generator(seed) });
    for (let i = 0; i < 12; i++) basis = orthonormalColumns(cov.matmul(basis));
    const shift = basis.t().matmul(mean);
    const project = (x: Tensor) =>
      basis
        .t()
        .matmul(x.reshape(c, -1))
        .sub(shift)
        .reshape(k, ...x.shape.slice(1));
    return [project(a), project(b)];
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

/** Normalised grid_sample coordinates (1, w, h, d, 3) of lattice voxels in the moving RAS grid. */
function movingSamplingGrid(fixedRas: Volume, movingRas: Volume, lattice: Vec3): Tensor {
  const n = fixedRas.dims;
  // Lattice voxel k sits at fixed voxel (k + 0.5)·n/l − 0.5; the map lattice → moving voxel is affine.
  const toMoving = (k: Vec3) =>
    movingRas.worldToVoxel(
      fixedRas.voxelToWorld(k.map((v, a) => ((v + 0.5) * n[a]) / lattice[a] - 0.5) as Vec3),
    );
  const q0 = toMoving([0, 0, 0]);
  const steps = [0, 1, 2].map((a) => {
    const e: Vec3 = [0, 0, 0];
    e[a] = 1;
    const q = toMoving(e);
    return q.map((v, b) => v - q0[b]);
  });
  const m = movingRas.dims;
  return tidy(() => {
    const index = [0, 1, 2].map((a) => {
      const view = [1, 1, 1];
      view[a] = lattice[a];
      return tensor(Array.from({ length: lattice[a] }, (_, i) => i)).reshape(view);
    });
    // Moving voxel coordinate b, then align_corners-false normalisation 2(q + 0.5)/m − 1.
    const coord = (b: number) =>
      index[0]
        .mul(steps[0][b])
        .add(index[1].mul(steps[1][b]))
        .add(index[2].mul(steps[2][b]))
        .add(q0[b] + 0.5)
        .mul(2 / m[b])
        .sub(1);
    return stack([coord(2), coord(1), coord(0)], -1).unsqueeze(0);
  });
}

/** Lattice displacement (3, l…) in lattice voxels → world-mm field on the fixed image's own grid. */
export function toWorldField(u: Tensor, fixedRas: Volume, fixed: Volume): DisplacementField {
  const n = fixedRas.dims;
  const lattice = u.shape.slice(1);
  const data = noGrad(() =>
    tidy(() => {
      const full = F.interpolate(u.unsqueeze(0), {
        size: [...n],
        mode: 'trilinear',
        alignCorners: false,
      }).squeeze(0);
      // Lattice voxels → fixed voxels (per axis n/l), then world mm = direction · diag(spacing) · voxels.
      const voxels = [0, 1, 2].map((a) => full.select(0, a).mul(n[a] / lattice[a]));
      const d = fixedRas.direction;
      const s = fixedRas.spacing;
      const world = [0, 1, 2].map((c) =>
        voxels[0]
          .mul(d[c * 3] * s[0])
          .add(voxels[1].mul(d[c * 3 + 1] * s[1]))
          .add(voxels[2].mul(d[c * 3 + 2] * s[2])),
      );
      // (3, W, H, D) C order → planar, i fastest.
      return stack(world, 0).permute(0, 3, 2, 1).contiguous().toTypedArray() as Float32Array;
    }),
  );
  const onRas = fixedRas.withData(data, 3) as Volume<Float32Array>;
  return fixed.withData(reorient(onRas, axisCodes(fixed)).volume.data, 3) as DisplacementField;
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
  const grid = movingSamplingGrid(f.volume, m.volume, lattice);
  const [fixedDesc, movingDesc] = noGrad(() =>
    tidy(() => {
      const a = describe(f, options.levelWeights, (level) =>
        F.interpolate(level, { size: lattice, mode: 'trilinear', alignCorners: false }),
      );
      const b = describe(m, options.levelWeights, (level) =>
        F.gridSample(level, grid, { mode: 'bilinear', paddingMode: 'border', alignCorners: false }),
      );
      return jointPca(a, b, channels, seed);
    }),
  );
  grid.dispose();
  const u = convexAdam(fixedDesc, movingDesc, options);
  dispose([fixedDesc, movingDesc]);
  const field = toWorldField(u, f.volume, fixed);
  u.dispose();
  const spacing = f.volume.spacing.map((s, a) => (s * f.volume.dims[a]) / lattice[a]) as Vec3;
  return { field, lattice: { dims: lattice, spacing } };
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
  const f = imageFeatures(model, fixed, { ...options, generator: new Generator(seed) }, 'fixed image');
  let m: ImageFeatures | undefined;
  try {
    m = imageFeatures(model, moving, { ...options, generator: new Generator(seed + 1) }, 'moving image');
    report?.({ stage: 'diffusion features', done: 2, total: 2 });
    const t1 = performance.now();
    const registration = registerFeatures(f, m, fixed, options);
    return {
      ...registration,
      seconds: { features: (t1 - t0) / 1000, registration: (performance.now() - t1) / 1000 },
    };
  } finally {
    dispose(f.grid.levels);
    if (m) dispose(m.grid.levels);
  }
}
