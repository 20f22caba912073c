/**
 * Slice overlays as PNG: three panels on the fixed grid — fixed | moving before registration |
 * moving warped by the result — with label contours (fixed green, moving/warped magenta) and points
 * (fixed keypoints green; on the moving panel their true moving positions yellow; on the warped
 * panel each fixed keypoint green with its residual error e = predicted − true drawn as a red dot at
 * p + e). Pixels are square at the smallest in-plane spacing; superior is up in coronal and sagittal
 * views; grey values are windowed to the fixed slice's 1st–99th percentiles.
 */
import { resampleVolume, warpPoints, warpVolume, type Vec3, type Volume } from '../../geometry/index.ts';
import type { RegistrationCase, RegistrationResult } from '../../methods/method.ts';
import { encodePng } from '../../util/png.ts';
import { percentile } from '../../util/stats.ts';

type Rgb = [number, number, number];
const GREEN: Rgb = [40, 220, 60];
const MAGENTA: Rgb = [240, 40, 220];
const YELLOW: Rgb = [250, 220, 30];
const RED: Rgb = [250, 30, 30];

/** Slice index along `axis` through the centre of the fixed labels (else of the points, else the middle). */
function sliceThroughCentre(item: RegistrationCase, axis: number): number {
  const grid = item.fixed;
  const labels = item.fixedLabels;
  if (labels && labels.sameGrid(grid)) {
    let lo = Infinity;
    let hi = -Infinity;
    const [nx, ny] = grid.dims;
    for (let t = 0; t < labels.size; t++) {
      if (labels.data[t] === 0) continue;
      const index = [t % nx, Math.floor(t / nx) % ny, Math.floor(t / (nx * ny))][axis];
      if (index < lo) lo = index;
      if (index > hi) hi = index;
    }
    if (hi >= lo) return Math.round((lo + hi) / 2);
  }
  if (item.fixedPoints?.length) {
    const sum = item.fixedPoints.reduce((s, p) => s + grid.worldToVoxel(p)[axis], 0);
    return Math.min(grid.dims[axis] - 1, Math.max(0, Math.round(sum / item.fixedPoints.length)));
  }
  return Math.floor(grid.dims[axis] / 2);
}

interface View {
  /** Voxel-index axes along the image columns and rows, and the sliced one. */
  column: number;
  row: number;
  axis: number;
  slice: number;
  width: number;
  height: number;
  /** Output pixel → continuous voxel index on the fixed grid. */
  index(x: number, y: number): Vec3;
  /** Continuous voxel index → output pixel. */
  pixel(index: Vec3): [number, number];
}

function view(grid: Volume, axis: number, slice: number): View {
  const [column, row] = axis === 2 ? [0, 1] : axis === 1 ? [0, 2] : [1, 2];
  const size = Math.min(grid.spacing[column], grid.spacing[row]);
  const width = Math.max(1, Math.round((grid.dims[column] * grid.spacing[column]) / size));
  const height = Math.max(1, Math.round((grid.dims[row] * grid.spacing[row]) / size));
  // axial: row index down; coronal/sagittal: the slice axis (usually toward superior) up
  const flip = axis !== 2;
  const scaleX = grid.dims[column] / width;
  const scaleY = grid.dims[row] / height;
  return {
    column,
    row,
    axis,
    slice,
    width,
    height,
    index(x, y) {
      const index: Vec3 = [0, 0, 0];
      index[axis] = slice;
      index[column] = (x + 0.5) * scaleX - 0.5;
      index[row] = ((flip ? height - 1 - y : y) + 0.5) * scaleY - 0.5;
      return index;
    },
    pixel(index) {
      const x = (index[column] + 0.5) / scaleX - 0.5;
      const yy = (index[row] + 0.5) / scaleY - 0.5;
      return [Math.round(x), Math.round(flip ? height - 1 - yy : yy)];
    },
  };
}

/** Nearest-voxel value of a volume on the fixed grid at a continuous index (0 outside). */
function valueAt(volume: Volume, index: Vec3): number {
  const [i, j, k] = index.map(Math.round);
  const [nx, ny, nz] = volume.dims;
  if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz) return 0;
  return volume.data[volume.offset(i, j, k)];
}

function panel(v: View, image: Volume, lo: number, hi: number): Uint8Array {
  const rgb = new Uint8Array(v.width * v.height * 3);
  for (let y = 0; y < v.height; y++) {
    for (let x = 0; x < v.width; x++) {
      const g = Math.round((255 * (valueAt(image, v.index(x, y)) - lo)) / (hi - lo || 1));
      const c = g < 0 ? 0 : g > 255 ? 255 : g;
      const o = 3 * (y * v.width + x);
      rgb[o] = rgb[o + 1] = rgb[o + 2] = c;
    }
  }
  return rgb;
}

/** Marks pixels whose label differs from a 4-neighbour's (and is nonzero) in `colour`. */
function contours(v: View, rgb: Uint8Array, labels: Volume, colour: Rgb): void {
  const at = (x: number, y: number) => valueAt(labels, v.index(x, y));
  for (let y = 0; y < v.height; y++) {
    for (let x = 0; x < v.width; x++) {
      const l = at(x, y);
      if (l === 0) continue;
      const edge =
        (x > 0 && at(x - 1, y) !== l) ||
        (x < v.width - 1 && at(x + 1, y) !== l) ||
        (y > 0 && at(x, y - 1) !== l) ||
        (y < v.height - 1 && at(x, y + 1) !== l);
      if (edge) rgb.set(colour, 3 * (y * v.width + x));
    }
  }
}

/** 3×3 dots at the world points whose `near` point lies within `nearVoxels` of the slice. */
function dots(
  v: View,
  rgb: Uint8Array,
  grid: Volume,
  points: Vec3[],
  colour: Rgb,
  nearVoxels: number,
  near: Vec3[] = points,
): void {
  points.forEach((p, n) => {
    if (Math.abs(grid.worldToVoxel(near[n])[v.axis] - v.slice) > nearVoxels) return;
    const [x, y] = v.pixel(grid.worldToVoxel(p));
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        if (x + dx >= 0 && x + dx < v.width && y + dy >= 0 && y + dy < v.height)
          rgb.set(colour, 3 * ((y + dy) * v.width + x + dx));
      }
    }
  });
}

export interface OverlayOptions {
  /** Array axis the slice is perpendicular to (default 2: axial for RAS/LPS-ordered volumes). */
  axis?: 0 | 1 | 2;
  /** Points are drawn when they lie within this distance (mm) of the slice (default half a voxel). */
  nearMm?: number;
}

/** The three-panel overlay PNG of one case and result (see the module comment). */
export function overlayPng(
  item: RegistrationCase,
  result: Pick<RegistrationResult, 'field' | 'movingPointsPredicted'>,
  options: OverlayOptions = {},
): Buffer {
  const grid = item.fixed;
  const axis = options.axis ?? 2;
  const v = view(grid, axis, sliceThroughCentre(item, axis));
  const nearVoxels = options.nearMm === undefined ? 0.5 : options.nearMm / grid.spacing[axis];
  const samples: number[] = [];
  for (let y = 0; y < v.height; y += 2)
    for (let x = 0; x < v.width; x += 2) samples.push(valueAt(grid, v.index(x, y)));
  samples.sort((a, b) => a - b);
  const [lo, hi] = [percentile(samples, 1), percentile(samples, 99)];
  const moving = resampleVolume(item.moving, grid);
  const warped = result.field ? warpVolume(item.moving, result.field) : moving;
  const panels = [panel(v, grid, lo, hi), panel(v, moving, lo, hi), panel(v, warped, lo, hi)];
  if (item.fixedLabels) contours(v, panels[0], item.fixedLabels, GREEN);
  if (item.movingLabels) {
    contours(v, panels[1], resampleVolume(item.movingLabels, grid, { interpolation: 'nearest' }), MAGENTA);
    if (result.field)
      contours(
        v,
        panels[2],
        warpVolume(item.movingLabels, result.field, { interpolation: 'nearest' }),
        MAGENTA,
      );
  }
  if (item.fixedLabels) contours(v, panels[2], item.fixedLabels, GREEN);
  const { fixedPoints, movingPoints } = item;
  if (fixedPoints && movingPoints) {
    dots(v, panels[0], grid, fixedPoints, GREEN, nearVoxels);
    dots(v, panels[1], grid, movingPoints, YELLOW, nearVoxels);
    const predicted =
      result.movingPointsPredicted ?? (result.field ? warpPoints(fixedPoints, result.field) : undefined);
    if (predicted) {
      const residual = fixedPoints.map(
        (p, n) => [0, 1, 2].map((a) => p[a] + predicted[n][a] - movingPoints[n][a]) as Vec3,
      );
      dots(v, panels[2], grid, residual, RED, nearVoxels, fixedPoints);
    }
    dots(v, panels[2], grid, fixedPoints, GREEN, nearVoxels);
  }
  const gap = 4;
  const width = 3 * v.width + 2 * gap;
  const out = new Uint8Array(width * v.height * 3).fill(255);
  panels.forEach((rgb, n) => {
    for (let y = 0; y < v.height; y++) {
      out.set(rgb.subarray(3 * y * v.width, 3 * (y + 1) * v.width), 3 * (y * width + n * (v.width + gap)));
    }
  });
  return encodePng(width, v.height, out, 3);
}
