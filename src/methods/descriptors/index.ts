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
import { F, intensityPatches, mindSsc, tidy } from '../../engine/index.ts';
import type { Volume } from '../../geometry/volume.ts';
import type { Modality } from '../../data/case.ts';
import { asNetworkInput, type NetworkInput } from '../../models/index.ts';
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

/**
 * Neighbour distance per axis, in voxels: `dilation` voxels of the finest axis, as near as whole
 * voxels allow in mm on the others — 0 across the thick slices of a stack (1.4 × 1.4 × 10 mm: 2, 2,
 * 0), so that a descriptor does not mix slices 20 mm apart; those are then 2-D.
 */
export function axisDilation(spacing: readonly number[], dilation: number): [number, number, number] {
  const finest = Math.min(...spacing);
  return spacing.map((s) => Math.round((dilation * finest) / s)) as [number, number, number];
}

/** Descriptor features of an image (a volume, or its network input converted once by the caller). */
export function descriptorFeatures(
  source: Volume | NetworkInput,
  kind: DescriptorKind,
  options: DescriptorOptions = {},
  subject = 'image',
): ImageFeatures {
  oneOf('descriptor', kind, ['mind', 'patches'] as const);
  const factor = integer('downsample', options.downsample ?? 1, { min: 1, max: 16 });
  const dilation = integer('dilation', options.dilation ?? (kind === 'mind' ? 1 : 2), { min: 1, max: 8 });
  const { input, owned } = asNetworkInput(source, options.modality ?? 'auto', subject);
  try {
    const level = tidy(() => {
      const image =
        factor === 1 ? input.image : F.avgPool3d(input.image, factor, { stride: factor, ceilMode: true });
      const perAxis = axisDilation(input.grid.spacing, dilation);
      const level = kind === 'mind' ? mindSsc(image, perAxis) : intensityPatches(image, perAxis);
      // Stored channels last (a (C, W, H, D) view): the kernels that read it at lattice positions or
      // build its corner Gram maps take each voxel's channels as one row, so they copy nothing — four
      // copies of 530 MB per image otherwise (LPBA40's patches), about 0.35 s each.
      return level.permute(1, 2, 3, 0).contiguous().permute(3, 0, 1, 2);
    }).keep();
    return {
      grid: { levels: [level], shape: input.grid.dims, spacing: input.grid.spacing },
      volume: input.grid,
      modality: input.modality,
    };
  } finally {
    if (owned) input.image.dispose();
  }
}
