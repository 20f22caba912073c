/**
 * Synthetic lung CT pairs with exact ground truth: the thoracic CT of ../shared/data/lung (fixed,
 * end-inhale) and the same CT deformed by a breathing-like field (geometry/synthetic.ts
 * breathingField: diaphragm motion of 15–25 mm cranio-caudal, largest at the lung base, anterior
 * chest wall moving posterior by 20–40 % of that, a smooth shear band standing in for sliding at the
 * lung boundary) as the moving, end-exhale image. Keypoints: Förstner maxima inside the eroded lung
 * mask (keypoints.ts); their moving positions are p + u(p) through the known field. The lung mask is
 * scored as label 1. Case n of seed s draws its amplitudes from its own stream, so another seed gives
 * other, unseen deformations.
 */
import { join } from 'node:path';
import { makeBreathingPair, resampleVolume, Random, Volume, type Vec3 } from '../geometry/index.ts';
import { readVolume } from '../io/index.ts';
import { fail } from '../util/errors.ts';
import { integer, number } from '../util/is.ts';
import { checkCaseId, cropVolume, defaultDataRoot, nonzeroBox, type RegistrationDataset } from './dataset.ts';
import { boxFilter, forstnerKeypoints } from './keypoints.ts';

export interface LungMaskOptions {
  /** Air threshold in HU (default −400). */
  threshold?: number;
  /** Components smaller than this fraction of the largest are dropped (default 0.1). */
  minFraction?: number;
}

/**
 * Lung mask of a CT in HU: voxels below `threshold` that are not connected (6-neighbourhood) to the
 * in-plane border of the image (outside air), in the largest such components; then holes are filled
 * slice by slice so vessels inside the lungs belong to the mask.
 */
export function lungMask(ct: Volume, options: LungMaskOptions = {}): Volume<Uint8Array> {
  const threshold = number('threshold', options.threshold ?? -400);
  const minFraction = number('minFraction', options.minFraction ?? 0.1, { min: 0, max: 1 });
  const [nx, ny, nz] = ct.dims;
  const n = ct.size;
  const component = new Int32Array(n); // 0 unvisited or tissue, −1 outside air, c > 0 component c
  const queue = new Int32Array(n);
  const sizes: number[] = [0];
  for (let seed = 0; seed < n; seed++) {
    if (component[seed] !== 0 || !(ct.data[seed] < threshold)) continue;
    const label = sizes.length;
    let head = 0;
    let tail = 0;
    let touchesBorder = false;
    component[seed] = label;
    queue[tail++] = seed;
    while (head < tail) {
      const t = queue[head++];
      const i = t % nx;
      const j = Math.floor(t / nx) % ny;
      const k = Math.floor(t / (nx * ny));
      if (i === 0 || j === 0 || i === nx - 1 || j === ny - 1) touchesBorder = true;
      const visit = (u: number) => {
        if (component[u] === 0 && ct.data[u] < threshold) {
          component[u] = label;
          queue[tail++] = u;
        }
      };
      if (i > 0) visit(t - 1);
      if (i < nx - 1) visit(t + 1);
      if (j > 0) visit(t - nx);
      if (j < ny - 1) visit(t + nx);
      if (k > 0) visit(t - nx * ny);
      if (k < nz - 1) visit(t + nx * ny);
    }
    sizes.push(touchesBorder ? 0 : tail);
  }
  const largest = Math.max(...sizes);
  if (largest === 0) fail('lung mask', `no enclosed air below ${threshold} HU`);
  const mask = new Uint8Array(n);
  for (let t = 0; t < n; t++)
    if (component[t] > 0 && sizes[component[t]] >= minFraction * largest) mask[t] = 1;

  // Fill holes per axial slice: what the slice border cannot reach through non-lung pixels is lung.
  const outside = new Uint8Array(nx * ny);
  for (let k = 0; k < nz; k++) {
    const base = k * nx * ny;
    outside.fill(0);
    let tail = 0;
    const push = (p: number) => {
      if (!outside[p] && !mask[base + p]) {
        outside[p] = 1;
        queue[tail++] = p;
      }
    };
    for (let i = 0; i < nx; i++) {
      push(i);
      push(i + nx * (ny - 1));
    }
    for (let j = 0; j < ny; j++) {
      push(j * nx);
      push(nx - 1 + j * nx);
    }
    for (let head = 0; head < tail; head++) {
      const p = queue[head];
      const i = p % nx;
      const j = Math.floor(p / nx);
      if (i > 0) push(p - 1);
      if (i < nx - 1) push(p + 1);
      if (j > 0) push(p - nx);
      if (j < ny - 1) push(p + nx);
    }
    for (let p = 0; p < nx * ny; p++) if (!outside[p]) mask[base + p] = 1;
  }
  return ct.withData(mask);
}

/** The mask shrunk by `radius` voxels (box neighbourhood; outside the grid counts as background). */
function erode(mask: Volume<Uint8Array>, radius: number): Volume<Uint8Array> {
  const data = Uint8Array.from(mask.data);
  boxFilter(data, mask.dims, [radius, radius, radius], 'min', 0);
  return mask.withData(data);
}

export interface SyntheticLungOptions {
  /** The thoracic CT in HU (default <data>/lung/ct-thorax-256.nii.gz). */
  ctPath?: string;
  /** Number of cases (default 20). */
  count?: number;
  /** Seed of the case stream (default 1). */
  seed?: number;
  /** Range of the cranio-caudal amplitude in mm (default [15, 25]). */
  amplitude?: [number, number];
  /** Most keypoints per case (default 300). */
  keypoints?: number;
  /** Downsample the CT 2× per axis (for tests; default false). */
  quick?: boolean;
}

interface Prepared {
  ct: Volume;
  mask: Volume<Uint8Array>;
  points: Vec3[];
}

/** A grid over the same box as `volume` with `factor` times fewer voxels per axis. */
function coarser(volume: Volume, factor: number): Volume {
  const dims = volume.dims.map((d) => Math.max(1, Math.floor(d / factor))) as Vec3;
  const spacing = volume.spacing.map((s, a) => (s * volume.dims[a]) / dims[a]) as Vec3;
  // keep the outer box: the first voxel centre moves by half the change of spacing
  const shift = spacing.map((s, a) => (s - volume.spacing[a]) / 2) as Vec3;
  const grid = new Volume({
    data: new Uint8Array(dims[0] * dims[1] * dims[2]),
    dims,
    spacing,
    origin: volume.voxelToWorld(shift.map((d, a) => d / volume.spacing[a]) as Vec3),
    direction: volume.direction,
  });
  return resampleVolume(volume, grid, { interpolation: 'linear' });
}

export function syntheticLungDataset(options: SyntheticLungOptions = {}): RegistrationDataset {
  const ctPath = options.ctPath ?? join(defaultDataRoot(), 'lung', 'ct-thorax-256.nii.gz');
  const count = integer('count', options.count ?? 20, { min: 1 });
  const seed = integer('seed', options.seed ?? 1, { min: 0, max: 0xffffffff });
  const [lowest, highest] = options.amplitude ?? [15, 25];
  number('amplitude[0]', lowest, { min: 0 });
  number('amplitude[1]', highest, { min: lowest });
  const keypointCount = integer('keypoints', options.keypoints ?? 300, { min: 1 });
  const caseIds = Array.from({ length: count }, (_, n) => `lung-s${seed}-${String(n + 1).padStart(2, '0')}`);
  let prepared: Promise<Prepared> | undefined;
  const prepare = async (): Promise<Prepared> => {
    let ct = await readVolume(ctPath);
    if (options.quick) ct = coarser(ct, 2);
    // crop to the lungs plus 15 mm: the breathing motion stays inside, and the rest is air and table
    const fullMask = lungMask(ct);
    const box = nonzeroBox(fullMask) ?? fail(ctPath, 'no lungs found (no enclosed air below −400 HU)');
    const reach = ct.spacing.map((s) => Math.ceil(15 / s));
    const lo = box.lo.map((v, a) => v - reach[a]) as Vec3;
    const hi = box.hi.map((v, a) => v + reach[a]) as Vec3;
    ct = cropVolume(ct, lo, hi);
    const mask = cropVolume(fullMask, lo, hi);
    const inner = erode(mask, Math.max(1, Math.round(4 / Math.min(...ct.spacing))));
    const { points } = forstnerKeypoints(ct, {
      mask: inner,
      count: keypointCount,
      minDistance: options.quick ? 8 : 6,
    });
    if (points.length === 0) fail(ctPath, 'no keypoints found inside the lungs');
    return {
      ct: ct.data instanceof Float32Array ? ct : ct.withData(Float32Array.from(ct.data)),
      mask,
      points,
    };
  };
  return {
    name: 'lung-synthetic',
    description: `thoracic CT cropped to the lungs + 15 mm (fixed, inhale) → synthetic breathing deformation of ${lowest}–${highest} mm (moving), Förstner keypoints, seed ${seed}`,
    caseIds,
    overlayAxis: 1,
    citation:
      'thoracic CT from InsightSoftwareConsortium/ITKElastix examples (probably POPI, Vandemeulebroucke et al. 2007)',
    async load(id) {
      checkCaseId('synthetic lung', caseIds, id);
      prepared ??= prepare();
      const { ct, mask, points } = await prepared;
      const n = caseIds.indexOf(id);
      const caseSeed = (Math.imul(seed, 0x9e3779b1) + n + 1) >>> 0;
      const random = new Random(caseSeed);
      const amplitude = lowest + (highest - lowest) * random.uniform();
      const apAmplitude = (0.2 + 0.2 * random.uniform()) * amplitude;
      const pair = makeBreathingPair(ct, {
        amplitude,
        apAmplitude,
        mask,
        points,
        labels: mask,
        seed: caseSeed,
      });
      // keep the points whose moving position stays inside the image
      const inside = pair.movingPoints.map((q) => {
        const index = ct.worldToVoxel(q);
        return index.every((v, a) => v >= 0 && v <= ct.dims[a] - 1);
      });
      return {
        id,
        fixed: ct,
        moving: pair.moving,
        fixedLabels: mask,
        movingLabels: pair.movingLabels,
        fixedPoints: pair.fixedPoints.filter((_, i) => inside[i]),
        movingPoints: pair.movingPoints.filter((_, i) => inside[i]),
        labelSet: [1],
        labelNames: { 1: 'lungs' },
        modality: 'ct',
      };
    },
  };
}
