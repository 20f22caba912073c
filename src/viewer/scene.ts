/**
 * What the viewer shows, made once when the pair is opened: the images and every derived volume as
 * NIfTI bytes under fixed route names (warped moving, |u|, det J, warped labels, the fixed/warped
 * checkerboard and difference), and the description the page reads first (`/api/scene`).
 */
import { gzipSync } from 'node:zlib';
import { jacobianDeterminant } from '../geometry/jacobian.ts';
import { resampleVolume, warpPoints, warpVolume } from '../geometry/warp.ts';
import type { DisplacementField } from '../geometry/field.ts';
import type { Vec3, Volume } from '../geometry/volume.ts';
import { encodeNifti } from '../io/index.ts';
import { guessModality } from '../models/preprocess.ts';
import { samplePercentiles } from '../util/stats.ts';

export interface PointRow {
  fixed: Vec3;
  /** Where the result puts the point on the moving image: a MedDIFT match, or p + u(p). */
  moving?: Vec3;
  /** The point's true position on the moving image. */
  truth?: Vec3;
  confidence?: number;
}

export interface ViewerInputs {
  fixed: Volume;
  moving: Volume;
  field?: DisplacementField;
  /** Label map on the fixed image. */
  labels?: Volume;
  /** Label map on the moving image (warped onto the fixed grid for display). */
  movingLabels?: Volume;
  points?: PointRow[];
  /** How the rows' moving positions were found, for the table ("MedDIFT match", "p + u(p)"). */
  pointsSource?: string;
  /** Names shown on the page (file names, or case and method). */
  titles: { fixed: string; moving: string; field?: string };
}

export type VolumeKind = 'image' | 'displacement' | 'jacobian' | 'labels' | 'checkerboard' | 'difference';

export interface SceneVolume {
  route: string;
  kind: VolumeKind;
  /** Display range: the 0.5th–99.5th percentile for images, the value range that matters otherwise. */
  window: [number, number];
}

export interface Scene {
  /** What `/api/scene` answers (LPS world mm throughout; the page converts to NiiVue's RAS). */
  description: {
    titles: ViewerInputs['titles'];
    volumes: Record<string, SceneVolume>;
    field?: { maxMm: number; percentFolded: number };
    labels?: number;
    points: (PointRow & { errorMm?: number })[];
    pointsSource?: string;
    /** Click to correspond: a window of radiusMm around p + u(p) with a field, else the whole image. */
    search: { kind: 'local' | 'global'; radiusMm?: number };
    fixedGrid: { dims: Vec3; spacing: Vec3 };
  };
  /** Route → NIfTI bytes (gzip). */
  files: Map<string, Buffer>;
}

/**
 * Rows for landmarks of the fixed image: their moving positions are a method's predictions when
 * given, else where the field sends them (p + u(p)); `truth` are their true moving positions.
 */
export function landmarkRows(
  fixed: readonly Vec3[],
  options: { truth?: readonly Vec3[]; predicted?: readonly Vec3[]; field?: DisplacementField },
): PointRow[] {
  const moving = options.predicted ?? (options.field && warpPoints(fixed, options.field));
  return fixed.map((p, i) => ({ fixed: p, moving: moving?.[i], truth: options.truth?.[i] }));
}

/** Intensity percentiles of an image from a subsample of at most a million voxels. */
const percentiles = (volume: Volume, ps: number[]): number[] => samplePercentiles(volume.data, ps, 1_000_000);

function imageWindow(volume: Volume): [number, number] {
  const [lo, hi] = percentiles(volume, [0.5, 99.5]);
  return [lo, hi > lo ? hi : lo + 1];
}

/** Intensities mapped by the display window to [0, 1] (clipped): what the eye compares. */
function normalised(volume: Volume, [lo, hi]: [number, number]): Float32Array {
  const out = new Float32Array(volume.size);
  for (let t = 0; t < out.length; t++) out[t] = Math.min(1, Math.max(0, (volume.data[t] - lo) / (hi - lo)));
  return out;
}

function largest(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  return max;
}

/** |u| per voxel (mm). */
function displacementLength(field: DisplacementField): Float32Array {
  const n = field.size;
  const u = field.data;
  const out = new Float32Array(n);
  for (let t = 0; t < n; t++) out[t] = Math.hypot(u[t], u[t + n], u[t + 2 * n]);
  return out;
}

/** Tiles of the checkerboard: eight along the longest axis, at least four voxels each. */
function tileVoxels(dims: Vec3): number {
  return Math.max(4, Math.round(Math.max(...dims) / 8));
}

/** Point rows with the distance of the result to the truth where both are given. */
function withErrors(rows: readonly PointRow[]) {
  return rows.map((r) => ({
    ...r,
    errorMm: r.moving && r.truth ? Math.hypot(...r.moving.map((v, a) => v - r.truth![a])) : undefined,
  }));
}

export function buildScene(inputs: ViewerInputs, search: Scene['description']['search']): Scene {
  const { fixed, moving, field } = inputs;
  const files = new Map<string, Buffer>();
  const volumes: Record<string, SceneVolume> = {};
  const add = (key: string, volume: Volume, kind: VolumeKind, window: [number, number]) => {
    const route = `/volumes/${key}.nii.gz`;
    // Level 1: these bytes cross a loopback connection once; speed matters more than size.
    files.set(route, gzipSync(encodeNifti(volume, {}, key), { level: 1 }));
    volumes[key] = { route, kind, window };
  };
  // Without a field the comparison is with the moving image as it lies on the fixed grid.
  const warped = field ? warpVolume(moving, field) : resampleVolume(moving, fixed);
  const fixedWindow = imageWindow(fixed);
  // Two CTs share Hounsfield units, so one window shows equal tissue equally bright; other images
  // (MR) have intensities of their own and each its own window.
  const bothCt = guessModality(fixed) === 'ct' && guessModality(moving) === 'ct';
  const movingWindow = bothCt ? fixedWindow : imageWindow(moving);
  add('fixed', fixed, 'image', fixedWindow);
  add('moving', moving, 'image', movingWindow);
  add('warped', warped, 'image', movingWindow);

  const a = normalised(fixed, fixedWindow);
  const b = normalised(warped, movingWindow);
  const tile = tileVoxels(fixed.dims);
  const [nx, ny, nz] = fixed.dims;
  // Tiles centred on the middle of the image, where the views open: a slice between two voxels of
  // different tiles would show their average instead of either image.
  const tileOf = (v: number, n: number) => Math.floor((v - (n - 1) / 2) / tile + 0.5);
  const checker = new Float32Array(a.length);
  const difference = new Float32Array(a.length);
  for (let t = 0; t < a.length; t++) {
    const i = t % nx;
    const j = Math.floor(t / nx) % ny;
    const k = Math.floor(t / (nx * ny));
    const odd = (tileOf(i, nx) + tileOf(j, ny) + tileOf(k, nz)) & 1;
    checker[t] = odd ? b[t] : a[t];
    difference[t] = b[t] - a[t];
  }
  add('checkerboard', fixed.withData(checker), 'checkerboard', [0, 1]);
  add('difference', fixed.withData(difference), 'difference', [-1, 1]);

  let fieldSummary: Scene['description']['field'];
  if (field) {
    const length = displacementLength(field);
    const jacobian = jacobianDeterminant(field);
    const folded = jacobian.data.reduce((n, v) => (v <= 0 ? n + 1 : n), 0);
    const maxMm = largest(length);
    fieldSummary = { maxMm, percentFolded: (100 * folded) / jacobian.size };
    add('displacement', field.withData(length), 'displacement', [0, maxMm > 0 ? maxMm : 1]);
    add('jacobian', jacobian, 'jacobian', [0, 2]);
  }
  let labelCount: number | undefined;
  const labelMaps: [string, Volume | undefined][] = [
    ['labels', inputs.labels],
    ['moving-labels', inputs.movingLabels],
    [
      'warped-labels',
      inputs.movingLabels &&
        (field
          ? warpVolume(inputs.movingLabels, field, { interpolation: 'nearest' })
          : resampleVolume(inputs.movingLabels, fixed, { interpolation: 'nearest' })),
    ],
  ];
  for (const [key, map] of labelMaps) {
    if (!map) continue;
    const max = largest(map.data);
    labelCount = Math.max(labelCount ?? 0, max);
    add(key, map, 'labels', [0, max]);
  }
  return {
    description: {
      titles: inputs.titles,
      volumes,
      field: fieldSummary,
      labels: labelCount,
      points: withErrors(inputs.points ?? []),
      pointsSource: inputs.pointsSource,
      search,
      fixedGrid: { dims: fixed.dims, spacing: fixed.spacing },
    },
    files,
  };
}
