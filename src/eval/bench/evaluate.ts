/**
 * Scores one registration result against its case's ground truth: TRE at the landmarks (through the
 * field, or the method's own predicted points), Dice and HD95 per label of the moving labels warped
 * with nearest neighbour onto the fixed grid, Dice of the case's label unions, and Jacobian
 * statistics of the field.
 */
import { warpVolume, type Vec3, type Volume } from '../../geometry/index.ts';
import type { RegistrationCase, RegistrationResult } from '../../methods/method.ts';
import {
  dice,
  hausdorff95,
  jacobianStats,
  targetRegistrationError,
  unionDice,
  type LabelScores,
} from '../metrics.ts';
import { meanStd, summarize } from '../../util/stats.ts';

export interface TreScores {
  count: number;
  mean: number;
  sd: number;
  p25: number;
  p50: number;
  p75: number;
  max: number;
  /** Mean landmark distance before registration. */
  initialMean: number;
  /** Per-landmark errors (mm). */
  errors: number[];
}

export interface LabelTable {
  /** Label value → score. */
  perLabel: Record<string, number>;
  mean: number;
}

export interface CaseScores {
  caseId: string;
  method: string;
  tre?: TreScores;
  /** Mean TRE of the more confident half of the matches (for methods that give a confidence). */
  treConfidentMean?: number;
  dice?: LabelTable;
  hd95?: LabelTable;
  /** Dice of each label union of the case (name → Dice); unions absent from both maps left out. */
  diceGroups?: Record<string, number>;
  /** Mean of the per-label and the union Dice values (ACDC: DiffuseReg's 5-structure "overall"). */
  diceStructuresMean?: number;
  /** %NJD: percentage of voxels with det J ≤ 0. */
  percentNonPositiveJacobian?: number;
  sdLogJ?: number;
  /** Population standard deviation of det J (DiffuseReg's "JSD"). */
  stdJacobian?: number;
  minJacobian?: number;
  seconds: number;
  peakRssMb: number;
  /** Pictures the method made of its work on this case (files relative to the results folder). */
  figures?: { caption: string; file: string }[];
  /** Set when the method failed on this case (then no metrics). */
  error?: string;
}

/** The scalar metrics tabulated per case and aggregated (key → label, unit, better direction). */
export const METRICS = [
  { key: 'treMean', label: 'TRE mean', unit: 'mm', better: 'lower' },
  { key: 'treConfidentMean', label: 'TRE top-50 % confident', unit: 'mm', better: 'lower' },
  { key: 'diceMean', label: 'Dice mean', unit: '', better: 'higher' },
  { key: 'diceStructuresMean', label: 'Dice labels+unions', unit: '', better: 'higher' },
  { key: 'hd95Mean', label: 'HD95 mean', unit: 'mm', better: 'lower' },
  { key: 'percentNonPositiveJacobian', label: '%NJD', unit: '%', better: 'lower' },
  { key: 'sdLogJ', label: 'SDlogJ', unit: '', better: 'lower' },
  { key: 'stdJacobian', label: 'std det J', unit: '', better: 'lower' },
  { key: 'seconds', label: 'time', unit: 's', better: 'lower' },
  { key: 'peakRssMb', label: 'peak RSS', unit: 'MB', better: 'lower' },
] as const;

export type MetricKey = (typeof METRICS)[number]['key'];

/** The value of a scalar metric for one case, or undefined when not measured. */
export function metricValue(scores: CaseScores, key: MetricKey): number | undefined {
  switch (key) {
    case 'treMean':
      return scores.tre?.mean;
    case 'diceMean':
      return scores.dice?.mean;
    case 'hd95Mean':
      return scores.hd95?.mean;
    default:
      return scores[key];
  }
}

function table(scores: LabelScores): LabelTable {
  const perLabel: Record<string, number> = {};
  for (const { label, value } of scores.perLabel) perLabel[String(label)] = value;
  return { perLabel, mean: scores.mean };
}

function treScores(errors: number[], initialMean: number): TreScores {
  const s = summarize(errors);
  return {
    count: s.count,
    mean: s.mean,
    sd: s.sd,
    p25: s.p25,
    p50: s.median,
    p75: s.p75,
    max: s.max,
    initialMean,
    errors,
  };
}

/** Dice of each label union present in either map, keyed by the union's name. */
function groupDice(fixed: Volume, warped: Volume, groups: Record<string, number[]>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, members] of Object.entries(groups)) {
    const value = unionDice(fixed, warped, members);
    if (!Number.isNaN(value)) out[name] = value;
  }
  return out;
}

/** Labels moved onto the fixed grid by the result's field (nearest neighbour). */
export function warpedLabels(item: RegistrationCase, result: RegistrationResult): Volume | undefined {
  if (!item.movingLabels || !result.field) return undefined;
  return warpVolume(item.movingLabels, result.field, { interpolation: 'nearest', outside: 0 });
}

/** Mean error of the ⌈n/2⌉ matches of highest confidence (ties keep the points' order). */
function confidentHalfMean(errors: readonly number[], confidence: readonly number[]): number {
  const order = errors.map((_, i) => i).sort((a, b) => confidence[b] - confidence[a]);
  const kept = order.slice(0, Math.ceil(errors.length / 2));
  return kept.reduce((s, i) => s + errors[i], 0) / kept.length;
}

/** All metrics the case's ground truth allows for this result. */
export function evaluateCase(item: RegistrationCase, method: string, result: RegistrationResult): CaseScores {
  const scores: CaseScores = {
    caseId: item.id,
    method,
    seconds: result.seconds,
    peakRssMb: result.peakRssMb,
  };
  const { fixedPoints, movingPoints, field } = { ...item, field: result.field };
  if (fixedPoints && movingPoints && fixedPoints.length > 0) {
    const initial = targetRegistrationError(fixedPoints, movingPoints).mean;
    if (result.movingPointsPredicted) {
      const predicted: Vec3[] = result.movingPointsPredicted;
      const errors = predicted.map((p, n) =>
        Math.hypot(p[0] - movingPoints[n][0], p[1] - movingPoints[n][1], p[2] - movingPoints[n][2]),
      );
      scores.tre = treScores(errors, initial);
      if (result.pointConfidence) scores.treConfidentMean = confidentHalfMean(errors, result.pointConfidence);
    } else if (field) {
      scores.tre = treScores(targetRegistrationError(fixedPoints, movingPoints, { field }).errors, initial);
    }
  }
  const warped = warpedLabels(item, result);
  if (warped && item.fixedLabels) {
    const labels = item.labelSet ? { labels: item.labelSet } : {};
    scores.dice = table(dice(item.fixedLabels, warped, labels));
    scores.hd95 = table(hausdorff95(item.fixedLabels, warped, labels));
    if (item.labelGroups) {
      scores.diceGroups = groupDice(item.fixedLabels, warped, item.labelGroups);
      const values = [...Object.values(scores.dice.perLabel), ...Object.values(scores.diceGroups)];
      scores.diceStructuresMean = meanStd(Float64Array.from(values)).mean;
    }
  }
  if (field) {
    const jacobian = jacobianStats(field);
    scores.percentNonPositiveJacobian = jacobian.percentNonPositive;
    scores.sdLogJ = jacobian.sdLogJ;
    scores.stdJacobian = jacobian.std;
    scores.minJacobian = jacobian.min;
  }
  return scores;
}
