/**
 * From a Volume to the network's input, as MAISI and MedDIFT prepare images: the array reoriented to
 * RAS axis order (MONAI Orientationd), intensities scaled to [0, 1] (CT: window [−1000, 1000] HU;
 * MR: 0.5th–99.5th percentile), and a (1, 1, W, H, D) float32 tensor whose axes are the array axes.
 */
import { Tensor, tidy } from '../engine/index.ts';
import { reorient } from '../geometry/orient.ts';
import type { Volume } from '../geometry/volume.ts';
import { fail } from '../util/errors.ts';

export type Modality = 'ct' | 'mr';

/** Sorted-sample percentile (linear between order statistics), on a stride sample for speed. */
function percentiles(data: ArrayLike<number>, ps: number[]): number[] {
  const stride = Math.max(1, Math.floor(data.length / 2_000_000));
  const sample = new Float32Array(Math.ceil(data.length / stride));
  for (let i = 0, j = 0; i < data.length; i += stride, j++) sample[j] = data[i];
  sample.sort();
  return ps.map((p) => {
    const x = (p / 100) * (sample.length - 1);
    const lo = Math.floor(x);
    const hi = Math.min(lo + 1, sample.length - 1);
    return sample[lo] + (sample[hi] - sample[lo]) * (x - lo);
  });
}

/** CT when there is air in Hounsfield units (1st percentile below −500), MR otherwise. */
export function guessModality(volume: Volume): Modality {
  return percentiles(volume.data, [1])[0] < -500 ? 'ct' : 'mr';
}

/** Intensities mapped to [0, 1]: CT window [−1000, 1000] HU, MR 0.5th–99.5th percentiles. */
export function normaliseIntensities(volume: Volume, modality: Modality): Float32Array {
  const [lo, hi] = modality === 'ct' ? [-1000, 1000] : percentiles(volume.data, [0.5, 99.5]);
  const out = new Float32Array(volume.size);
  const src = volume.data;
  const scale = hi > lo ? 1 / (hi - lo) : 0;
  for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, (src[i] - lo) * scale));
  return out;
}

export interface NetworkInput {
  /** (1, 1, W, H, D), intensities in [0, 1]. */
  image: Tensor;
  /** The RAS-ordered volume the tensor holds (its geometry maps tensor indices to world). */
  grid: Volume;
  modality: Modality;
}

export function toNetworkInput(
  volume: Volume,
  modality: Modality | 'auto' = 'auto',
  subject = 'image',
): NetworkInput {
  if (volume.components !== 1) fail(subject, `expected a scalar image, got ${volume.components} components`);
  const m = modality === 'auto' ? guessModality(volume) : modality;
  const ras = reorient(volume, 'RAS').volume;
  const values = normaliseIntensities(ras, m);
  const [nx, ny, nz] = ras.dims;
  // Volume data is i-fastest: a C-order [k, j, i] array, permuted to (i, j, k).
  const image = tidy(() =>
    Tensor.fromArray(values, [nz, ny, nx]).permute(2, 1, 0).contiguous().reshape(1, 1, nx, ny, nz),
  );
  return { image, grid: ras.withData(values), modality: m };
}
