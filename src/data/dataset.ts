/**
 * Registration datasets for the benchmark harness: a list of case ids plus a loader, so a run over
 * many cases holds one case in memory at a time. Every loader returns a RegistrationCase (see
 * data/case.ts): volumes and labels as read, points in LPS world mm.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Volume, type Vec3 } from '../geometry/index.ts';
import { allocateLike } from '../geometry/sampling.ts';
import type { RegistrationCase } from './case.ts';
import { fail } from '../util/errors.ts';

export interface RegistrationDataset {
  name: string;
  /** One line: what the pairs are and which way they are registered. */
  description: string;
  caseIds: string[];
  load(id: string): Promise<RegistrationCase>;
  /** Voxel axis normal to the overlay slices (2 axial by default; 1 coronal shows breathing best). */
  overlayAxis?: 0 | 1 | 2;
  /** The citation its licence asks for. */
  citation: string;
}

/** ../shared/data next to the repository, or DIFFREG_DATA when set. */
export function defaultDataRoot(): string {
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return process.env.DIFFREG_DATA ?? resolve(repo, '..', 'shared', 'data');
}

/** Throws a one-line error unless `path` is an existing directory. */
export function requireDirectory(path: string, what: string): string {
  if (!existsSync(path) || !statSync(path).isDirectory()) fail(path, `${what} folder not found`);
  return path;
}

/** The case with this id, or a one-line error listing how to name one. */
export function checkCaseId(dataset: string, ids: readonly string[], id: string): void {
  if (!ids.includes(id)) {
    const shown = ids.length > 4 ? `${ids.slice(0, 3).join(', ')}, …, ${ids.at(-1)}` : ids.join(', ');
    fail(`${dataset} case ${JSON.stringify(id)}`, `unknown (cases: ${shown || 'none'})`);
  }
}

/**
 * The sub-volume of voxels lo..hi (inclusive, clipped to the grid), with the geometry that keeps
 * every voxel at its world position.
 */
export function cropVolume<T extends Volume>(volume: T, lo: Vec3, hi: Vec3): T {
  const from = lo.map((v, a) => Math.max(0, Math.min(volume.dims[a] - 1, Math.round(v)))) as Vec3;
  const to = hi.map((v, a) => Math.max(from[a], Math.min(volume.dims[a] - 1, Math.round(v)))) as Vec3;
  const dims = to.map((v, a) => v - from[a] + 1) as Vec3;
  const n = dims[0] * dims[1] * dims[2];
  const data = allocateLike(volume.data, n * volume.components);
  const size = volume.size;
  for (let c = 0; c < volume.components; c++) {
    for (let k = 0, t = c * n; k < dims[2]; k++) {
      for (let j = 0; j < dims[1]; j++, t += dims[0]) {
        const start = c * size + volume.offset(from[0], from[1] + j, from[2] + k);
        data.set(volume.data.subarray(start, start + dims[0]), t);
      }
    }
  }
  return new Volume({
    data,
    dims,
    spacing: volume.spacing,
    origin: volume.voxelToWorld(from),
    direction: volume.direction,
    components: volume.components,
  }) as T;
}

/** Index bounding box [lo, hi] of the nonzero voxels of a volume (undefined when all are zero). */
export function nonzeroBox(volume: Volume): { lo: Vec3; hi: Vec3 } | undefined {
  const [nx, ny] = volume.dims;
  const lo: Vec3 = [Infinity, Infinity, Infinity];
  const hi: Vec3 = [-1, -1, -1];
  for (let t = 0; t < volume.size; t++) {
    if (volume.data[t] === 0) continue;
    const index = [t % nx, Math.floor(t / nx) % ny, Math.floor(t / (nx * ny))];
    for (let a = 0; a < 3; a++) {
      lo[a] = Math.min(lo[a], index[a]);
      hi[a] = Math.max(hi[a], index[a]);
    }
  }
  return hi[0] < 0 ? undefined : { lo, hi };
}
