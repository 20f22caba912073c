/**
 * Training data of diffreg's default model: the volumes of ../shared/data, their split by case id,
 * and seeded patch sampling (the intensity normalisation is models/preprocess.ts, shared with MedDIFT).
 *
 * Every volume is reoriented to RAS (MedDIFT feeds RAS-ordered arrays) and normalised per modality.
 * Patches are cut from the grid MedDIFT feeds the networks — each axis resized to the nearest
 * multiple of 128 — so the networks are trained on what they see at inference. ACDC's 6–13 short-axis
 * slices therefore become 128 interpolated slices, as they do in MedDIFT; no padding is needed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cat, F, Tensor, tensor, tidy } from '../../engine/index.ts';
import { reorient } from '../../geometry/orient.ts';
import { Random } from '../../geometry/random.ts';
import type { Volume } from '../../geometry/volume.ts';
import { readVolume } from '../../io/index.ts';
import { fail } from '../../util/errors.ts';
import type { BodyRegion } from '../maisi/unet.ts';
import type { Modality } from '../../data/case.ts';
import { networkGridSize, volumeToNetworkInput } from '../preprocess.ts';

export type DataGroup = 'ct' | 'brain' | 'heart';

export interface TrainingCase {
  /** e.g. "lung/ct-thorax-256", "brain-lpba40/S11", "cardiac-acdc/patient001/ed". */
  id: string;
  path: string;
  group: DataGroup;
  modality: Modality;
  region: { top: BodyRegion; bottom: BodyRegion };
  split: 'train' | 'validation';
  /** Part of the network-grid k axis (inferior → superior) this case may be sampled from, [start, end) as fractions. */
  kRange: [number, number];
}

const pad3 = (n: number) => String(n).padStart(3, '0');

/** LPBA40 subjects held out for validation. */
export const BRAIN_VALIDATION = ['S38', 'S39', 'S40'];
/** ACDC patients held out: the last two of each of the five diagnostic groups of 20. */
export const HEART_VALIDATION = [19, 20, 39, 40, 59, 60, 79, 80, 99, 100].map((p) => `patient${pad3(p)}`);

/**
 * The cases of ../shared/data with their split. The single thoracic CT is split by slab: its inferior
 * half (network-grid slices 0–63, chest down to the upper abdomen) trains, its superior half validates.
 * LPBA40 S02–S10 and ACDC 101–150 are not in ../shared and never used.
 */
export function defaultCases(dataRoot: string): TrainingCase[] {
  const cases: TrainingCase[] = [];
  const ct = join(dataRoot, 'lung', 'ct-thorax-256.nii.gz');
  const whole: [number, number] = [0, 1];
  cases.push({
    id: 'lung/ct-thorax-256#inferior',
    path: ct,
    group: 'ct',
    modality: 'ct',
    region: { top: 'chest', bottom: 'abdomen' },
    split: 'train',
    kRange: [0, 0.5],
  });
  cases.push({
    id: 'lung/ct-thorax-256#superior',
    path: ct,
    group: 'ct',
    modality: 'ct',
    region: { top: 'chest', bottom: 'chest' },
    split: 'validation',
    kRange: [0.5, 1],
  });
  for (const s of [1, ...Array.from({ length: 30 }, (_, i) => i + 11)]) {
    const id = `S${String(s).padStart(2, '0')}`;
    cases.push({
      id: `brain-lpba40/${id}`,
      path: join(dataRoot, 'brain-lpba40', `${id}.nii.gz`),
      group: 'brain',
      modality: 'mr',
      region: { top: 'head', bottom: 'head' },
      split: BRAIN_VALIDATION.includes(id) ? 'validation' : 'train',
      kRange: whole,
    });
  }
  for (let p = 1; p <= 100; p++) {
    const patient = `patient${pad3(p)}`;
    for (const frame of ['ed', 'es']) {
      cases.push({
        id: `cardiac-acdc/${patient}/${frame}`,
        path: join(dataRoot, 'cardiac-acdc', patient, `${frame}.nii.gz`),
        group: 'heart',
        modality: 'mr',
        region: { top: 'chest', bottom: 'chest' },
        split: HEART_VALIDATION.includes(patient) ? 'validation' : 'train',
        kRange: whole,
      });
    }
  }
  return cases;
}

/** A case loaded for sampling: the normalised RAS image at its native resolution. */
export interface LoadedCase extends TrainingCase {
  /** (1, 1, nx, ny, nz), intensities in [0, 1]. */
  image: Tensor;
  /** RAS voxel spacing (mm), the spacing conditioning. */
  spacing: [number, number, number];
  /** Network-grid size of each axis. */
  grid: [number, number, number];
}

/** Reads, reorients to RAS and normalises one case (cases sharing a file share the tensor). */
export async function loadCases(cases: readonly TrainingCase[]): Promise<LoadedCase[]> {
  const byPath = new Map<string, { image: Tensor; volume: Volume }>();
  const out: LoadedCase[] = [];
  for (const c of cases) {
    if (!existsSync(c.path)) fail(c.path, `training volume of ${c.id} not found`);
    let entry = byPath.get(c.path);
    if (!entry) {
      const volume = reorient(await readVolume(c.path), 'RAS').volume;
      entry = { image: volumeToNetworkInput(volume, c.modality).keep(), volume };
      byPath.set(c.path, entry);
    }
    const { volume, image } = entry;
    out.push({
      ...c,
      image,
      spacing: [...volume.spacing],
      grid: volume.dims.map(networkGridSize) as [number, number, number],
    });
  }
  return out;
}

export interface AugmentOptions {
  /** Largest rotation about each axis (degrees). */
  rotationDeg: number;
  /** Largest relative change of scale (isotropic). */
  scale: number;
  /** Random flips of each axis. */
  flip: boolean;
}

export const DEFAULT_AUGMENT: AugmentOptions = { rotationDeg: 10, scale: 0.1, flip: true };
export const NO_AUGMENT: AugmentOptions = { rotationDeg: 0, scale: 0, flip: false };

type Mat3 = number[][];

const matmul3 = (a: Mat3, b: Mat3): Mat3 =>
  a.map((row) => [0, 1, 2].map((j) => row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j]));

function rotation(axis: number, angle: number): Mat3 {
  const [c, s] = [Math.cos(angle), Math.sin(angle)];
  const [a, b] = [0, 1, 2].filter((i) => i !== axis);
  const m = [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ];
  m[a][a] = c;
  m[a][b] = -s;
  m[b][a] = s;
  m[b][b] = c;
  return m;
}

/** The random linear part (in patch voxel units) and patch origin of one draw. */
export interface PatchDraw {
  caseIndex: number;
  /** Patch origin on the network grid. */
  offset: [number, number, number];
  linear: Mat3;
}

/**
 * Cuts one patch of `size`³ voxels of the case's network grid, through `draw.linear` about the patch
 * centre, with one trilinear resampling of the native image (align_corners false, border padding,
 * so the identity draw equals the network-grid resize of F.interpolate).
 */
export function cutPatch(c: LoadedCase, size: number, offset: readonly number[], linear: Mat3): Tensor {
  return tidy(() => {
    // Normalised coordinate of network-grid axis a: u = (size/N)·b + (2·o + size)/N − 1 for base b.
    const scale = c.grid.map((n) => size / n);
    const centre = c.grid.map((n, a) => (2 * offset[a] + size) / n - 1);
    // The grid's components run (x, y, z) = tensor axes (4, 3, 2) = array axes (k, j, i).
    const ax = (g: number) => 2 - g;
    const theta = [0, 1, 2].map((g) => [
      ...[0, 1, 2].map((h) => scale[ax(g)] * linear[ax(g)][ax(h)]),
      centre[ax(g)],
    ]);
    const grid = F.affineGrid(tensor([theta]), [1, 1, size, size, size], { alignCorners: false });
    return F.gridSample(c.image, grid, { mode: 'bilinear', paddingMode: 'border', alignCorners: false });
  });
}

/**
 * Seeded patch draws: a data group uniformly (CT, brain, heart), a case of it uniformly, a patch
 * origin uniformly inside the case's allowed k range, then flips, rotations and scaling.
 */
export function drawPatch(
  cases: readonly LoadedCase[],
  size: number,
  random: Random,
  augment: AugmentOptions,
): PatchDraw {
  const groups = [...new Set(cases.map((c) => c.group))];
  const group = groups[random.integer(groups.length)];
  const members = cases.map((c, i) => [c, i] as const).filter(([c]) => c.group === group);
  const [c, caseIndex] = members[random.integer(members.length)];
  const offset = [0, 1, 2].map((a) => {
    const lo = a === 2 ? Math.round(c.kRange[0] * c.grid[2]) : 0;
    const hi = a === 2 ? Math.round(c.kRange[1] * c.grid[2]) : c.grid[a];
    if (hi - lo < size)
      fail(c.id, `allowed extent ${hi - lo} along axis ${a} is smaller than the patch size ${size}`);
    return lo + random.integer(hi - lo - size + 1);
  }) as [number, number, number];
  const rad = (augment.rotationDeg * Math.PI) / 180;
  let linear: Mat3 = [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ];
  for (let a = 0; a < 3; a++) linear = matmul3(linear, rotation(a, (2 * random.uniform() - 1) * rad));
  const s = 1 + (2 * random.uniform() - 1) * augment.scale;
  const flips = [0, 1, 2].map(() => (augment.flip && random.uniform() < 0.5 ? -1 : 1));
  linear = linear.map((row) => row.map((v, j) => v * s * flips[j]));
  return { caseIndex, offset, linear };
}

/** A batch (B, 1, size, size, size) of patches and the draws that made them. */
export function samplePatches(
  cases: readonly LoadedCase[],
  size: number,
  batch: number,
  random: Random,
  augment: AugmentOptions,
): { patches: Tensor; draws: PatchDraw[] } {
  if (size % 32 !== 0) fail('patch size', `expected a multiple of 32, got ${size}`);
  const draws = Array.from({ length: batch }, () => drawPatch(cases, size, random, augment));
  const patches = tidy(() =>
    cat(
      draws.map((d) => cutPatch(cases[d.caseIndex], size, d.offset, d.linear)),
      0,
    ),
  );
  return { patches, draws };
}
