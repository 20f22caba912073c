/**
 * LDM-Morph's 2-D scores, as the paper reports them: on the network grid (slices resized to 112 and
 * padded to 128), ES moving → ED fixed, the ES labels warped nearest-neighbour: Dice of the myocardium
 * and the LV and their mean (the paper's number), also the RV; % of network-grid pixels with
 * det J ≤ 0; seconds per pair (features and network, on the network grid).
 */
import { noGrad, tensor, tidy, type Tensor } from '../../engine/index.ts';
import { ACDC_LABELS } from '../../data/acdc.ts';
import { Grid, jacobianDeterminant } from '../../geometry/index.ts';
import { warpLabelMap } from '../../models/losses/spatial.ts';
import type { AcdcSlice } from './data.ts';
import { sliceFieldOnFixed } from './grid.ts';

export interface SliceScores {
  pairs: number;
  /** Mean Dice over the pairs per ACDC label name (pairs where a label is in neither map left out). */
  dice: Record<string, number>;
  /** Mean of the myocardium's and the LV's Dice: the paper's ACDC number. */
  myocardiumLvMean: number;
  /** Mean over pairs of % network-grid pixels with det J ≤ 0. */
  foldedPercent: number;
  secondsPerPair: number;
}

const LABELS = Object.keys(ACDC_LABELS).map(Number);

/** Dice of every ACDC label between two label maps (1, 1, H, W); NaN for a label in neither. */
function labelDice(fixed: Tensor, warped: Tensor): number[] {
  return tidy(() => {
    const ids = tensor(LABELS).reshape(-1, 1, 1, 1);
    const [a, b] = [fixed, warped].map((m) => m.squeeze(0).eq(ids));
    const overlap = a.logicalAnd(b).sum([1, 2, 3]).toTypedArray();
    const sizes = a
      .sum([1, 2, 3])
      .add(b.sum([1, 2, 3]))
      .toTypedArray();
    return LABELS.map((_, i) => (2 * Number(overlap[i])) / Number(sizes[i]));
  });
}

/** % of pixels where det(I + ∇u) ≤ 0 for a displacement (1, 2, H, W) in pixels. */
export function foldedPercent(u: Tensor): number {
  const grid = new Grid({ dims: [u.shape[2], u.shape[3], 1] });
  const det = jacobianDeterminant(sliceFieldOnFixed(u, grid, grid.withData(new Float32Array(grid.size))));
  return (100 * det.data.reduce((n, v) => n + (v <= 0 ? 1 : 0), 0)) / det.size;
}

/** Scores of `predict` (moving, fixed → displacement) on the ES → ED pairs of `pairs`. */
export function sliceScores(
  pairs: readonly AcdcSlice[],
  predict: (moving: Tensor, fixed: Tensor) => Tensor,
): SliceScores {
  const dice = LABELS.map(() => ({ sum: 0, n: 0 }));
  let folded = 0;
  let seconds = 0;
  noGrad(() => {
    // One untimed pass first: libtorch's first call of each kernel sets it up (≈ 0.3 s here), a cost
    // a user pays once per process, not per pair.
    if (pairs.length > 0) tidy(() => void predict(pairs[0].es, pairs[0].ed));
    for (const p of pairs) {
      tidy(() => {
        const start = performance.now();
        const u = predict(p.es, p.ed);
        seconds += (performance.now() - start) / 1000;
        folded += foldedPercent(u);
        labelDice(p.edLabels, warpLabelMap(p.esLabels, u)).forEach((d, i) => {
          if (!Number.isNaN(d)) {
            dice[i].sum += d;
            dice[i].n++;
          }
        });
      });
    }
  });
  const byName = Object.fromEntries(LABELS.map((l, i) => [ACDC_LABELS[l], dice[i].sum / dice[i].n]));
  return {
    pairs: pairs.length,
    dice: byName,
    myocardiumLvMean: (byName.myocardium + byName.LV) / 2,
    foldedPercent: folded / pairs.length,
    secondsPerPair: seconds / pairs.length,
  };
}
