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

function boxFilter(x: Tensor): Tensor {
  return F.avgPool3d(F.pad(x, [1, 1, 1, 1, 1, 1], { mode: 'replicate' }), 3, { stride: 1 });
}

/**
 * Neighbour distance per axis, in voxels: `dilation` voxels of the finest axis, as near as whole
 * voxels allow in mm on the others — 0 across the thick slices of a stack (1.4 × 1.4 × 10 mm: 2, 2,
 * 0), so that a descriptor does not mix slices 20 mm apart; those are then 2-D.
 */
export function axisDilation(spacing: readonly number[], dilation: number): [number, number, number] {
  const finest = Math.min(...spacing);
  return spacing.map((s) => Math.round((dilation * finest) / s)) as [number, number, number];
}

/** The unit offsets along the axes with a non-zero dilation, scaled by it. */
function neighbourOffsets(dilation: readonly number[]): number[][] {
  const six: number[][] = [];
  for (let a = 0; a < 3; a++)
    if (dilation[a] > 0)
      for (const sign of [1, -1]) six.push([0, 1, 2].map((b) => (b === a ? sign * dilation[a] : 0)));
  return six;
}

/** The image padded by `pad` voxels per axis (replicate borders), (1, C, W + 2p₀, …). */
const paddedBy = (image: Tensor, pad: readonly number[]) =>
  F.pad(image, [pad[2], pad[2], pad[1], pad[1], pad[0], pad[0]], { mode: 'replicate' });

/** x shifted by `offset` voxels from a copy padded by `pad`: out(p) = x(p + offset). */
function shiftedBy(
  padded: Tensor,
  offset: number[],
  pad: readonly number[],
  shape: readonly number[],
): Tensor {
  return padded
    .narrow(2, pad[0] + offset[0], shape[0])
    .narrow(3, pad[1] + offset[1], shape[1])
    .narrow(4, pad[2] + offset[2], shape[2]);
}

/**
 * MIND-SSC of an image (1, 1, W, H, D) → (12, W, H, D), or (4, …) when one axis has no neighbours
 * (dilation 0 on it): the edges between the six (four) neighbours in orthogonal directions.
 */
export function mindSsc(image: Tensor, dilation: number | readonly number[] = 1): Tensor {
  return tidy(() => {
    const d = typeof dilation === 'number' ? [dilation, dilation, dilation] : dilation;
    const shape = image.shape.slice(2);
    const padded = paddedBy(image, d);
    const six = neighbourOffsets(d);
    // Pairs of neighbours along different axes (distance √2·dilation): the SSC edges.
    const axis = (o: number[]) => o.findIndex((v) => v !== 0);
    const pairs: [number, number][] = [];
    for (let i = 0; i < six.length; i++)
      for (let j = i + 1; j < six.length; j++) if (axis(six[i]) !== axis(six[j])) pairs.push([i, j]);
    const neighbours = six.map((o) => shiftedBy(padded, o, d, shape));
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

/**
 * Centred intensities of the dilated 3×3×3 neighbourhood: (1, 1, W, H, D) → (27, W, H, D), or the
 * 3×3 one (9, …) when one axis has dilation 0.
 */
export function intensityPatches(image: Tensor, dilation: number | readonly number[] = 2): Tensor {
  return tidy(() => {
    const d = typeof dilation === 'number' ? [dilation, dilation, dilation] : dilation;
    const shape = image.shape.slice(2);
    const padded = paddedBy(image, d);
    const steps = d.map((v) => (v > 0 ? [-1, 0, 1] : [0]));
    const offsets: number[][] = [];
    for (const a of steps[0])
      for (const b of steps[1]) for (const c of steps[2]) offsets.push([a * d[0], b * d[1], c * d[2]]);
    const patches = stack(
      offsets.map((o) => shiftedBy(padded, o, d, shape).squeeze(0).squeeze(0)),
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
      const perAxis = axisDilation(input.grid.spacing, dilation);
      return kind === 'mind' ? mindSsc(image, perAxis) : intensityPatches(image, perAxis);
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
