/**
 * The descriptors matching and dense registration run on, by name: the diffusion model's feature
 * levels (MedDIFT), MIND-SSC, intensity patches, and the fused descriptor — all three on the same RAS
 * grid as one feature set, each a level of its own, so that matching and registration normalise every
 * level per voxel, weight them by group (FUSED_WEIGHTS, a group's weight split evenly over its levels)
 * and, in registration, take one joint PCA of them all.
 */
import type { Generator } from '../../engine/index.ts';
import type { Volume } from '../../geometry/volume.ts';
import { descriptorFeatures } from '../descriptors/index.ts';
import {
  imageFeatures,
  type Descriptor,
  type ImageFeatures,
  type MedDiftMatchOptions,
} from './correspond.ts';
import type { DiffusionFeatureModel } from './features.ts';

/** The fused descriptor's group weights. */
export const FUSED_WEIGHTS = { diffusion: 1, mind: 1, patches: 1 };

/** Whether the descriptor needs the diffusion model. */
export const usesDiffusionModel = (d: Descriptor): boolean => d === 'diffusion' || d === 'fused';

/** The named descriptor of one image (`model` only for those that use it). */
export function describeImage(
  descriptor: Descriptor,
  model: DiffusionFeatureModel | undefined,
  volume: Volume,
  options: MedDiftMatchOptions & { generator: Generator },
  subject: string,
): ImageFeatures {
  if (descriptor === 'mind' || descriptor === 'patches')
    return descriptorFeatures(volume, descriptor, options, subject);
  if (!model) throw new Error(`descriptor ${descriptor}: no diffusion model given`);
  const diffusion = imageFeatures(model, volume, options, subject);
  if (descriptor === 'diffusion') return diffusion;
  // The volume passed the same checks in imageFeatures: the classical descriptors cannot fail on it.
  const classical = (['mind', 'patches'] as const).map((kind) =>
    descriptorFeatures(volume, kind, options, subject),
  );
  const n = diffusion.grid.levels.length;
  return {
    ...diffusion,
    grid: {
      ...diffusion.grid,
      levels: [...diffusion.grid.levels, ...classical.flatMap((c) => c.grid.levels)],
      weights: [
        ...new Array<number>(n).fill(FUSED_WEIGHTS.diffusion / n),
        FUSED_WEIGHTS.mind,
        FUSED_WEIGHTS.patches,
      ],
    },
  };
}
