/**
 * Figures a person can look at: slices of volumes as grey images with marked points, laid out side by
 * side, written as PNG. Coronal slices are drawn with superior up and patient right on the left, and
 * pixels are resampled to square millimetres so anatomy keeps its proportions.
 */
import type { Vec3, Volume } from '../geometry/volume.ts';
import { encodePng } from '../util/png.ts';

export interface Panel {
  title: string;
  /** RGB pixels, row-major. */
  pixels: Uint8Array;
  width: number;
  height: number;
}

export type Colour = [number, number, number];

/**
 * A slice through `volume` at world point `at`, perpendicular to array axis `axis` (0, 1 or 2), with
 * intensities mapped linearly from [lo, hi] to black–white. Pixels are `pixelMm` wide.
 */
export function slicePanel(
  volume: Volume,
  axis: 0 | 1 | 2,
  at: Vec3,
  window: [number, number],
  title: string,
  pixelMm?: number,
): Panel {
  const [u, v] = [0, 1, 2].filter((a) => a !== axis) as [number, number];
  const centre = volume.worldToVoxel(at);
  const step = pixelMm ?? Math.min(volume.spacing[u], volume.spacing[v]);
  const width = Math.max(1, Math.round((volume.dims[u] * volume.spacing[u]) / step));
  const height = Math.max(1, Math.round((volume.dims[v] * volume.spacing[v]) / step));
  const pixels = new Uint8Array(width * height * 3);
  const [lo, hi] = window;
  const k = Math.round(centre[axis]);
  for (let y = 0; y < height; y++) {
    // Second in-plane axis drawn upward (superior / anterior up for the usual orientations).
    const jv = Math.min(volume.dims[v] - 1, Math.floor(((height - 1 - y + 0.5) * step) / volume.spacing[v]));
    for (let x = 0; x < width; x++) {
      const ju = Math.min(volume.dims[u] - 1, Math.floor(((x + 0.5) * step) / volume.spacing[u]));
      const index = [0, 0, 0];
      index[axis] = Math.min(volume.dims[axis] - 1, Math.max(0, k));
      index[u] = ju;
      index[v] = jv;
      const value = volume.data[volume.offset(index[0], index[1], index[2])];
      const g = Math.max(0, Math.min(255, Math.round(((value - lo) / (hi - lo)) * 255)));
      pixels.set([g, g, g], (y * width + x) * 3);
    }
  }
  return { title, pixels, width, height };
}

/** Marks world points lying within `toleranceMm` of the panel's slice with small crosses. */
export function markPoints(
  panel: Panel,
  volume: Volume,
  axis: 0 | 1 | 2,
  at: Vec3,
  points: readonly Vec3[],
  colour: Colour,
  toleranceMm = 6,
): void {
  const [u, v] = [0, 1, 2].filter((a) => a !== axis) as [number, number];
  const plane = volume.worldToVoxel(at)[axis];
  const stepU = (volume.dims[u] * volume.spacing[u]) / panel.width;
  const stepV = (volume.dims[v] * volume.spacing[v]) / panel.height;
  for (const p of points) {
    const idx = volume.worldToVoxel(p);
    if (Math.abs(idx[axis] - plane) * volume.spacing[axis] > toleranceMm) continue;
    const x = Math.round(((idx[u] + 0.5) * volume.spacing[u]) / stepU - 0.5);
    const y = panel.height - 1 - Math.round(((idx[v] + 0.5) * volume.spacing[v]) / stepV - 0.5);
    for (let d = -3; d <= 3; d++) {
      for (const [px, py] of [
        [x + d, y],
        [x, y + d],
      ]) {
        if (px >= 0 && py >= 0 && px < panel.width && py < panel.height)
          panel.pixels.set(colour, (py * panel.width + px) * 3);
      }
    }
  }
}

/** Panels side by side on a dark background, as PNG bytes. Titles go to the caller's legend. */
export function montage(panels: readonly Panel[], gap = 6): Buffer {
  const width = panels.reduce((s, p) => s + p.width, 0) + gap * (panels.length + 1);
  const height = Math.max(...panels.map((p) => p.height)) + 2 * gap;
  const pixels = new Uint8Array(width * height * 3).fill(24);
  let x0 = gap;
  for (const p of panels) {
    for (let y = 0; y < p.height; y++) {
      pixels.set(p.pixels.subarray(y * p.width * 3, (y + 1) * p.width * 3), ((y + gap) * width + x0) * 3);
    }
    x0 += p.width + gap;
  }
  return encodePng(width, height, pixels, 3);
}
