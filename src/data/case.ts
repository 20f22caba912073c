/**
 * A registration case: one fixed/moving pair with its ground truth, as datasets load it and methods
 * and the benchmark harness consume it. Points are LPS world mm.
 */
import type { Vec3, Volume } from '../geometry/index.ts';

/** Imaging modality: decides intensity normalisation (CT window or MR percentiles). */
export type Modality = 'ct' | 'mr';

export interface RegistrationCase {
  id: string;
  fixed: Volume;
  moving: Volume;
  /** Label maps on the fixed and moving grids (0 = background). */
  fixedLabels?: Volume;
  movingLabels?: Volume;
  /** Corresponding landmarks: fixedPoints[n] in the fixed image is movingPoints[n] in the moving one. */
  fixedPoints?: Vec3[];
  movingPoints?: Vec3[];
  /** Labels scored by Dice and HD95 (default: every nonzero label present). */
  labelSet?: number[];
  /**
   * Unions of labels scored by Dice as one structure besides the labels themselves (name → member
   * labels), e.g. ACDC's whole heart = RV ∪ myocardium ∪ LV.
   */
  labelGroups?: Record<string, number[]>;
  /** Display names of the labels. */
  labelNames?: Record<number, string>;
  modality: Modality;
}
