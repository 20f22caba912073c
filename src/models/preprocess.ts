/**
 * From a Volume to the networks' input, as MAISI and MedDIFT prepare images (and as the default model
 * was trained): the array reoriented to RAS axis order (MONAI Orientationd), intensities scaled to
 * [0, 1] and clipped (CT: window [−1000, 1000] HU; MR: 0.5th–99.5th percentiles), and a
 * (1, 1, W, H, D) float32 tensor whose axes are the array axes.
 */
import { Tensor, tidy } from '../engine/index.ts';
import { reorient } from '../geometry/orient.ts';
import { resampleVolume } from '../geometry/warp.ts';
import { volumeToTensor } from '../geometry/field-tensor.ts';
import { Volume, type Grid } from '../geometry/volume.ts';
import { fail } from '../util/errors.ts';
import { percentilesOf, samplePercentiles } from '../util/stats.ts';
import type { Modality } from '../data/case.ts';

/** The CT window mapped to [0, 1] (HU). */
export const CT_WINDOW: readonly [number, number] = [-1000, 1000];
/** The MR percentiles mapped to [0, 1]. */
export const MR_PERCENTILES: readonly [number, number] = [0.5, 99.5];

/** Intensities mapped to [0, 1], clipped: CT by the HU window, MR by its 0.5th–99.5th percentiles. */
export function normaliseIntensities(values: ArrayLike<number>, modality: Modality): Float32Array {
  let [lo, hi] = CT_WINDOW;
  if (modality === 'mr') {
    [lo, hi] = percentilesOf(values, MR_PERCENTILES);
    if (!(hi > lo))
      fail('MR volume', `intensities are constant between the percentiles (${lo}), cannot normalise`);
  } else if (modality !== 'ct') {
    fail('modality', `expected ct or mr, got ${JSON.stringify(modality)}`);
  }
  const out = new Float32Array(values.length);
  const scale = 1 / (hi - lo);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, (values[i] - lo) * scale));
  return out;
}

/** CT when there is air in Hounsfield units (1st percentile of a subsample below −500), MR otherwise. */
export function guessModality(volume: Volume): Modality {
  return samplePercentiles(volume.data, [1], 1_000_000)[0] < -500 ? 'ct' : 'mr';
}

/**
 * A volume (already in RAS order) as the networks take it: intensities normalised for its modality,
 * shape (1, 1, nx, ny, nz) with the tensor axes in the volume's array order (i, j, k).
 */
export function volumeToNetworkInput(volume: Volume, modality: Modality): Tensor {
  if (volume.components !== 1) fail('volume', `expected a scalar image, got ${volume.components} components`);
  const [nx, ny, nz] = volume.dims;
  const data = normaliseIntensities(volume.data, modality);
  // Volume data is i-fastest: C-order [k, j, i], hence the permutation.
  return tidy(() =>
    Tensor.fromArray(data, [nz, ny, nx]).permute(2, 1, 0).contiguous().reshape(1, 1, nx, ny, nz),
  );
}

/** Python's round(): half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** MedDIFT's network grid size for an axis of n voxels: 128·max(round(n/128), 1), half to even. */
export function networkGridSize(n: number): number {
  return 128 * Math.max(roundHalfEven(n / 128), 1);
}

export interface NetworkInput {
  /** (1, 1, W, H, D), intensities in [0, 1]. */
  image: Tensor;
  /** The RAS-ordered volume the tensor holds (its geometry maps tensor indices to world). */
  grid: Volume;
  modality: Modality;
}

/** Any volume → reoriented to RAS, normalised, as a tensor (modality guessed unless given). */
export function toNetworkInput(
  volume: Volume,
  modality: Modality | 'auto' = 'auto',
  subject = 'image',
): NetworkInput {
  if (volume.components !== 1) fail(subject, `expected a scalar image, got ${volume.components} components`);
  const m = modality === 'auto' ? guessModality(volume) : modality;
  const ras = reorient(volume, 'RAS').volume;
  return { image: volumeToNetworkInput(ras, m), grid: ras, modality: m };
}

/**
 * `source` as the networks and descriptors take it: a volume, converted here (toNetworkInput), or an
 * input converted once by the caller for several descriptors of one image (the fused ones). `owned`:
 * this call converted it, so the caller of this function disposes of its image.
 */
export function asNetworkInput(
  source: Volume | NetworkInput,
  modality: Modality | 'auto',
  subject: string,
): { input: NetworkInput; owned: boolean } {
  return source instanceof Volume
    ? { input: toNetworkInput(source, modality, subject), owned: true }
    : { input: source, owned: false };
}

/**
 * An image as a network or an optimiser on a working grid takes it: intensities normalised on the
 * whole volume (MR percentiles or CT window, [0, 1]), then resampled linearly onto `grid` (0 beyond
 * the image), as (1, 1, w, h, d).
 */
export function imageOnGrid(image: Volume, grid: Grid, modality: Modality, subject = 'image'): Tensor {
  if (image.components !== 1) fail(subject, `expected a scalar image, got ${image.components} components`);
  const normalised = image.withData(normaliseIntensities(image.data, modality));
  return tidy(() => volumeToTensor(resampleVolume(normalised, grid)).unsqueeze(0));
}
