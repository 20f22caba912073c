/**
 * Classical voxel descriptors in the same form as MedDIFT's diffusion features, so that matching and
 * dense registration run unchanged on them (the baselines of the ablation):
 * - MIND-SSC (Heinrich et al. 2012/2013): 12 channels of exp(−patch distance / local variance) over the
 *   pairs of a six-neighbourhood, a modality-independent structure descriptor;
 * - intensity patches: the normalised intensities of a dilated 3×3×3 neighbourhood, centred, so their
 *   cosine similarity is the patches' normalised cross-correlation.
 * Both are computed on the RAS network input (intensities in [0, 1]), optionally on a grid downsampled
 * by an integer factor to bound memory.
 */
import { F, cat, stack, tidy, type Tensor } from '../../engine/index.ts';
import type { Volume } from '../../geometry/volume.ts';
import type { Modality } from '../../data/case.ts';
import { toNetworkInput } from '../../models/index.ts';
import { integer, oneOf } from '../../util/is.ts';
import type { ImageFeatures } from '../meddift/correspond.ts';

export type DescriptorKind = 'mind' | 'patches';

export interface DescriptorOptions {
  modality?: Modality | 'auto';
  /** Compute on a grid coarser by this integer factor per axis (default 1). */
  downsample?: number;
  /** Neighbour distance in voxels (default 2 for patches, 1 for MIND). */
  dilation?: number;
}

/** x shifted by `offset` voxels (replicate borders): out(p) = x(p + offset). x is (1, C, W, H, D). */
function shifted(padded: Tensor, offset: number[], pad: number, shape: readonly number[]): Tensor {
  return padded
    .narrow(2, pad + offset[0], shape[0])
    .narrow(3, pad + offset[1], shape[1])
    .narrow(4, pad + offset[2], shape[2]);
}

function boxFilter(x: Tensor): Tensor {
  return F.avgPool3d(F.pad(x, [1, 1, 1, 1, 1, 1], { mode: 'replicate' }), 3, { stride: 1 });
}

/** MIND-SSC of an image (1, 1, W, H, D) → (12, W, H, D). */
export function mindSsc(image: Tensor, dilation = 1): Tensor {
  return tidy(() => {
    const shape = image.shape.slice(2);
    const pad = dilation;
    const padded = F.pad(image, [pad, pad, pad, pad, pad, pad], { mode: 'replicate' });
    const six = [
      [1, 0, 0],
      [-1, 0, 0],
      [0, 1, 0],
      [0, -1, 0],
      [0, 0, 1],
      [0, 0, -1],
    ].map((o) => o.map((v) => v * dilation));
    // Pairs of neighbours at distance √2·dilation (orthogonal directions): the 12 SSC edges.
    const pairs: [number, number][] = [];
    for (let i = 0; i < 6; i++)
      for (let j = i + 1; j < 6; j++) if (Math.floor(i / 2) !== Math.floor(j / 2)) pairs.push([i, j]);
    const neighbours = six.map((o) => shifted(padded, o, pad, shape));
    const distances = cat(
      pairs.map(([i, j]) => boxFilter(neighbours[i].sub(neighbours[j]).square())),
      1,
    );
    const variance = distances.mean(1, true);
    const meanVariance = variance.mean().item();
    const v = variance.clamp(meanVariance * 0.001, meanVariance * 1000);
    const mind = distances.div(v).neg().exp();
    return mind.div(mind.amax(1, true).clamp(1e-12)).squeeze(0);
  });
}

/** Centred intensities of the dilated 3×3×3 neighbourhood: (1, 1, W, H, D) → (27, W, H, D). */
export function intensityPatches(image: Tensor, dilation = 2): Tensor {
  return tidy(() => {
    const shape = image.shape.slice(2);
    const padded = F.pad(image, [dilation, dilation, dilation, dilation, dilation, dilation], {
      mode: 'replicate',
    });
    const offsets: number[][] = [];
    for (const a of [-1, 0, 1])
      for (const b of [-1, 0, 1])
        for (const c of [-1, 0, 1]) offsets.push([a, b, c].map((v) => v * dilation));
    const patches = stack(
      offsets.map((o) => shifted(padded, o, dilation, shape).squeeze(0).squeeze(0)),
      0,
    );
    return patches.sub(patches.mean(0, true));
  });
}

/** Descriptor features of a volume, in the form matching and dense registration take. */
export function descriptorFeatures(
  volume: Volume,
  kind: DescriptorKind,
  options: DescriptorOptions = {},
  subject = 'image',
): ImageFeatures {
  oneOf('descriptor', kind, ['mind', 'patches'] as const);
  const factor = integer('downsample', options.downsample ?? 1, { min: 1, max: 16 });
  const dilation = integer('dilation', options.dilation ?? (kind === 'mind' ? 1 : 2), { min: 1, max: 8 });
  const input = toNetworkInput(volume, options.modality ?? 'auto', subject);
  try {
    const level = tidy(() => {
      const image =
        factor === 1 ? input.image : F.avgPool3d(input.image, factor, { stride: factor, ceilMode: true });
      return kind === 'mind' ? mindSsc(image, dilation) : intensityPatches(image, dilation);
    }).keep();
    return {
      grid: { levels: [level], shape: input.grid.dims, spacing: input.grid.spacing },
      volume: input.grid,
      modality: input.modality,
    };
  } finally {
    input.image.dispose();
  }
}
