/**
 * Registration metrics: target registration error, Dice (per label and of label unions),
 * 95th-percentile Hausdorff distance and Jacobian-determinant statistics. Percentiles use linear
 * interpolation between order statistics (numpy's default): the q-th percentile of sorted
 * x₀..x_{n−1} is at position (n − 1)·q/100.
 */
import { fail } from '../util/errors.ts';
import { meanStd, percentile, summarize, type Summary } from '../util/stats.ts';
import { integer } from '../util/is.ts';
import {
  checkField,
  jacobianDeterminant,
  sampleField,
  squaredDistanceTransform,
  type DisplacementField,
  type Vec3,
  type Volume,
} from '../geometry/index.ts';

export interface TreOptions {
  /** Registration result on the fixed grid: fixed p is mapped to p + u(p) before comparing. */
  field?: DisplacementField;
  /** Fixed points are (0-based, continuous) voxel indices of this volume instead of world mm. */
  fixedGrid?: Volume;
  /** Moving points are (0-based, continuous) voxel indices of this volume instead of world mm. */
  movingGrid?: Volume;
}

export interface TreResult extends Summary {
  /** Per-point error in mm, in input order. */
  errors: number[];
}

function toWorld(points: readonly Vec3[], grid: Volume | undefined, name: string): Vec3[] {
  if (!points.every((p) => Array.isArray(p) && p.length === 3 && p.every(Number.isFinite))) {
    fail(name, 'expected finite [x, y, z] coordinates for every point');
  }
  return grid ? points.map((p) => grid.voxelToWorld(p)) : points.map((p) => [...p]);
}

/**
 * Target registration error: |p + u(p) − q| in world mm per landmark pair (|p − q| without a
 * field: the initial displacement), with its summary. Voxel-index inputs are placed in world space
 * through their grid, so anisotropic spacing and direction are respected.
 */
export function targetRegistrationError(
  fixedPoints: readonly Vec3[],
  movingPoints: readonly Vec3[],
  options: TreOptions = {},
): TreResult {
  if (fixedPoints.length !== movingPoints.length) {
    fail('landmarks', `${fixedPoints.length} fixed points but ${movingPoints.length} moving points`);
  }
  const fixed = toWorld(fixedPoints, options.fixedGrid, 'fixed points');
  const moving = toWorld(movingPoints, options.movingGrid, 'moving points');
  const u = options.field ? sampleField(checkField(options.field, 'field'), fixed) : undefined;
  const errors = fixed.map((p, n) =>
    Math.hypot(
      p[0] + (u ? u[n][0] : 0) - moving[n][0],
      p[1] + (u ? u[n][1] : 0) - moving[n][1],
      p[2] + (u ? u[n][2] : 0) - moving[n][2],
    ),
  );
  return { errors, ...summarize(errors) };
}

export interface LabelScore {
  label: number;
  value: number;
}

export interface LabelScores {
  /** One entry per evaluated label (labels absent from both volumes are left out). */
  perLabel: LabelScore[];
  /** Mean over perLabel (NaN when empty). */
  mean: number;
}

function checkLabelPair(fixed: Volume, warped: Volume): void {
  if (fixed.components !== 1 || warped.components !== 1)
    fail('label maps', 'expected single-component volumes');
  if (!fixed.sameGrid(warped)) {
    const dims = [fixed, warped].map((v) => v.dims.join('x'));
    const why =
      dims[0] !== dims[1] ? `${dims[0]} vs ${dims[1]} voxels` : 'spacing, origin or direction differ';
    fail('label maps', `must lie on the same grid (${why})`);
  }
}

/** The requested labels, or every nonzero value present in either volume, ascending. */
function labelSet(fixed: Volume, warped: Volume, labels?: readonly number[]): number[] {
  if (labels) {
    if (!labels.every(Number.isFinite)) fail('labels', 'expected finite label values');
    return [...new Set(labels)];
  }
  const found = new Set<number>();
  for (const data of [fixed.data, warped.data]) {
    let last = 0;
    for (let t = 0; t < data.length; t++) {
      const v = data[t];
      if (v !== 0 && v !== last) {
        found.add(v);
        last = v;
      }
    }
  }
  return [...found].sort((a, b) => a - b);
}

function scores(perLabel: LabelScore[]): LabelScores {
  const mean = perLabel.length ? perLabel.reduce((s, e) => s + e.value, 0) / perLabel.length : NaN;
  return { perLabel, mean };
}

/**
 * Dice 2|A∩B| / (|A| + |B|) per label between two label maps on the same grid. Labels: the given
 * set, or every nonzero value present. A label absent from both volumes is excluded (it would be
 * 0/0); absent from one only, it scores 0.
 */
export function dice(
  fixed: Volume,
  warped: Volume,
  options: { labels?: readonly number[] } = {},
): LabelScores {
  checkLabelPair(fixed, warped);
  const labels = labelSet(fixed, warped, options.labels);
  const slot = new Map(labels.map((l, n) => [l, n]));
  const inFixed = new Float64Array(labels.length);
  const inWarped = new Float64Array(labels.length);
  const inBoth = new Float64Array(labels.length);
  const a = fixed.data;
  const b = warped.data;
  for (let t = 0; t < a.length; t++) {
    const sa = slot.get(a[t]);
    if (sa !== undefined) {
      inFixed[sa]++;
      if (a[t] === b[t]) inBoth[sa]++;
    }
    const sb = slot.get(b[t]);
    if (sb !== undefined) inWarped[sb]++;
  }
  const perLabel: LabelScore[] = [];
  labels.forEach((label, n) => {
    const total = inFixed[n] + inWarped[n];
    if (total > 0) perLabel.push({ label, value: (2 * inBoth[n]) / total });
  });
  return scores(perLabel);
}

/**
 * Dice of a union of labels scored as one structure (e.g. LV cavity + myocardium): both maps reduced
 * to membership of the union, then `dice`. NaN when the union is absent from both maps.
 */
export function unionDice(fixed: Volume, warped: Volume, members: readonly number[]): number {
  if (members.length === 0 || !members.every(Number.isFinite))
    fail('label union', 'expected one or more finite label values');
  const union = new Set(members);
  const membership = (v: Volume) => v.withData(Uint8Array.from(v.data, (l) => (union.has(l) ? 1 : 0)));
  return dice(membership(fixed), membership(warped), { labels: [1] }).mean;
}

/** Index bounding boxes [i0, j0, k0, i1, j1, k1] of each label over both volumes. */
function labelBoxes(volumes: Volume[], labels: number[]): Map<number, Int32Array> {
  const boxes = new Map<number, Int32Array>();
  for (const l of labels) boxes.set(l, Int32Array.of(2 ** 30, 2 ** 30, 2 ** 30, -1, -1, -1));
  const [nx, ny, nz] = volumes[0].dims;
  for (const volume of volumes) {
    let t = 0;
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++, t++) {
          const box = boxes.get(volume.data[t]);
          if (box === undefined) continue;
          if (i < box[0]) box[0] = i;
          if (j < box[1]) box[1] = j;
          if (k < box[2]) box[2] = k;
          if (i > box[3]) box[3] = i;
          if (j > box[4]) box[4] = j;
          if (k > box[5]) box[5] = k;
        }
      }
    }
  }
  return boxes;
}

/** Surface voxels of the mask: inside, with a 6-neighbour outside (the box border counts as outside). */
function surface(mask: Uint8Array, dims: Vec3): Uint8Array {
  const [nx, ny, nz] = dims;
  const edge = new Uint8Array(mask.length);
  let t = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, t++) {
        if (!mask[t]) continue;
        edge[t] =
          i === 0 || i === nx - 1 || j === 0 || j === ny - 1 || k === 0 || k === nz - 1 ||
          !mask[t - 1] || !mask[t + 1] || !mask[t - nx] || !mask[t + nx] || !mask[t - nx * ny] || !mask[t + nx * ny]
            ? 1
            : 0; // prettier-ignore
      }
    }
  }
  return edge;
}

/** Sorted distances (mm) from each `from` surface voxel to the nearest `to` surface voxel. */
function directedDistances(from: Uint8Array, to: Uint8Array, dims: Vec3, spacing: Vec3): Float64Array {
  const squared = new Float64Array(to.length);
  for (let t = 0; t < to.length; t++) squared[t] = to[t] ? 0 : Infinity;
  squaredDistanceTransform(squared, dims, spacing);
  const distances: number[] = [];
  for (let t = 0; t < from.length; t++) if (from[t]) distances.push(Math.sqrt(squared[t]));
  return Float64Array.from(distances).sort();
}

/**
 * 95th-percentile Hausdorff distance (mm) per label, MONAI's definition: surface voxels are label
 * voxels with a 6-neighbour outside the label (or on the image border); for each surface voxel of
 * one map, the Euclidean distance (grid spacing) to the nearest surface voxel of the other; HD95 =
 * max of the two directed 95th percentiles (numpy-linear). Labels as in `dice`: absent from both →
 * excluded; absent from one → Infinity. (The DeepMind surface-distance package used by Learn2Reg
 * weights surface elements by area and can differ slightly.)
 */
export function hausdorff95(
  fixed: Volume,
  warped: Volume,
  options: { labels?: readonly number[] } = {},
): LabelScores {
  checkLabelPair(fixed, warped);
  const labels = labelSet(fixed, warped, options.labels);
  const boxes = labelBoxes([fixed, warped], labels);
  const [nx, ny] = fixed.dims;
  const perLabel: LabelScore[] = [];
  for (const label of labels) {
    const box = boxes.get(label) as Int32Array;
    if (box[3] < 0) continue; // absent from both
    // Work in the label's bounding box over both maps: all surfaces and queries lie inside it.
    const dims: Vec3 = [box[3] - box[0] + 1, box[4] - box[1] + 1, box[5] - box[2] + 1];
    const size = dims[0] * dims[1] * dims[2];
    const a = new Uint8Array(size);
    const b = new Uint8Array(size);
    let countA = 0;
    let countB = 0;
    let t = 0;
    for (let k = box[2]; k <= box[5]; k++) {
      for (let j = box[1]; j <= box[4]; j++) {
        for (let i = box[0]; i <= box[3]; i++, t++) {
          const o = i + nx * (j + ny * k);
          if (fixed.data[o] === label) {
            a[t] = 1;
            countA++;
          }
          if (warped.data[o] === label) {
            b[t] = 1;
            countB++;
          }
        }
      }
    }
    if (countA === 0 || countB === 0) {
      perLabel.push({ label, value: Infinity });
      continue;
    }
    const edgeA = surface(a, dims);
    const edgeB = surface(b, dims);
    const ab = percentile(directedDistances(edgeA, edgeB, dims, fixed.spacing), 95);
    const ba = percentile(directedDistances(edgeB, edgeA, dims, fixed.spacing), 95);
    perLabel.push({ label, value: Math.max(ab, ba) });
  }
  return scores(perLabel);
}

export interface JacobianOptions {
  /** Only voxels where this volume (same grid) is nonzero. */
  mask?: Volume;
  /** Voxels left out at each face of the grid (default 0; Learn2Reg's evaluation uses 2). */
  crop?: number;
}

export interface JacobianStats {
  /** Voxels evaluated. */
  count: number;
  min: number;
  max: number;
  mean: number;
  /** Population standard deviation (ddof = 0, numpy's default) of det J. */
  std: number;
  /** Fraction (0–1) of voxels with det J ≤ 0. */
  fractionNonPositive: number;
  /** The same in percent (%NJD). */
  percentNonPositive: number;
  /** Population standard deviation of log(clip(det J, 1e-9, 1e9)). */
  sdLogJ: number;
}

/**
 * Statistics of det(I + ∇u) (jacobianDeterminant: central differences in mm, one-sided on the
 * outermost voxels). SDlogJ clips det J to [1e-9, 1e9] before the log, as Learn2Reg does (its
 * current evaluation script also adds 3 to det J first, an oddity not reproduced here).
 */
export function jacobianStats(field: DisplacementField, options: JacobianOptions = {}): JacobianStats {
  checkField(field, 'field');
  const crop = integer('crop', options.crop ?? 0, { min: 0 });
  const mask = options.mask;
  if (mask && !mask.sameGrid(field)) fail('mask', 'must lie on the grid of the field');
  const det = jacobianDeterminant(field).data;
  const [nx, ny, nz] = field.dims;
  const values = new Float64Array(det.length);
  let count = 0;
  let t = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, t++) {
        const inside = i >= crop && j >= crop && k >= crop && i < nx - crop && j < ny - crop && k < nz - crop;
        if (inside && (!mask || mask.data[t] !== 0)) values[count++] = det[t];
      }
    }
  }
  if (count === 0) fail('jacobian statistics', 'no voxel left after crop and mask');
  const kept = values.subarray(0, count);
  const logs = new Float64Array(count);
  let nonPositive = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let n = 0; n < count; n++) {
    const d = kept[n];
    if (d <= 0) nonPositive++;
    if (d < min) min = d;
    if (d > max) max = d;
    logs[n] = Math.log(d < 1e-9 ? 1e-9 : d > 1e9 ? 1e9 : d);
  }
  const { mean, std } = meanStd(kept);
  return {
    count,
    min,
    max,
    mean,
    std,
    fractionNonPositive: nonPositive / count,
    percentNonPositive: (100 * nonPositive) / count,
    sdLogJ: meanStd(logs).std,
  };
}
