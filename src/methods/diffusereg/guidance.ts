/**
 * Penalties that steer DiffuseReg's sampling, on a displacement u (1, 3, w, h, d) in network voxels:
 * folding, smoothness and image dissimilarity. Each is summed over voxels (the losses' voxel means
 * × the voxel count), so that the gradient at a voxel — hence what a strength does — does not depend
 * on the grid size.
 */
import { tidy, type Tensor } from '../../engine/index.ts';
import {
  foldingPenalty,
  nccLoss,
  smoothnessLoss,
  spatialTransformer,
  ssimLoss,
} from '../../models/losses/index.ts';
import type { ImagePair } from './data.ts';

export type SimilarityMeasure = 'ncc' | 'ssim';

export interface Guidance {
  /** Strength of the folding penalty (0 = off). */
  folding: number;
  /** Strength of the smoothness penalty (0 = off). */
  smoothness: number;
  /** Strength of the image-dissimilarity penalty (0 = off). */
  similarity: number;
  measure: SimilarityMeasure;
  /** det J below this margin is penalised, so that guidance keeps voxels away from 0, not just above it. */
  foldingMargin: number;
}

/**
 * 9 voxels in-plane (27 mm) and 3 across the 10 mm slices of the 64×64×16 network grid, as the
 * bootstrap network's NCC: a cube of 9 voxels would span 9 of the 16 slices.
 */
const SIMILARITY_WINDOW = [9, 9, 3];

/**
 * λ_fold·Σ max(0, margin − det J)² (a squared hinge: its gradient grows from 0 as det J falls below
 * the margin) + λ_smooth·N·mean ‖∇u‖² + λ_sim·N·(1 − similarity(fixed, moving∘u)), with N voxels and
 * similarity local NCC² (VoxelMorph's) or SSIM. Terms of strength 0 are not computed.
 */
export function guidancePenalty(u: Tensor, images: ImagePair, g: Guidance): Tensor {
  const voxels = u.shape.slice(2).reduce((p, n) => p * n, 1);
  return tidy(() => {
    const terms: Tensor[] = [];
    if (g.folding > 0) {
      terms.push(foldingPenalty(u, g.foldingMargin).mul(g.folding));
    }
    if (g.smoothness > 0) terms.push(smoothnessLoss(u).mul(g.smoothness * voxels));
    if (g.similarity > 0) {
      const warped = spatialTransformer(images.moving, u);
      const options = { window: SIMILARITY_WINDOW };
      const dissimilarity =
        g.measure === 'ncc'
          ? nccLoss(images.fixed, warped, options).add(1)
          : ssimLoss(images.fixed, warped, options);
      terms.push(dissimilarity.mul(g.similarity * voxels));
    }
    return terms.reduce((s, t) => s.add(t));
  });
}
