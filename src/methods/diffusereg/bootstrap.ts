/**
 * DiffuseReg's bootstrap: the unsupervised registration network whose displacement fields become the
 * diffusion model's x₀ targets (the authors use a VTN cascade; here VoxelMorph's U-Net, optionally
 * cascaded). Trained on ACDC on the network grid with local NCC + λ·‖∇u‖², validated on the
 * validation patients' ES → ED pairs by loss, Dice of the warped ES labels and % det J ≤ 0.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../engine/checkpoint/index.ts';
import { manualSeed, noGrad, tidy, zerosLike, type Tensor } from '../../engine/index.ts';
import { acdcDataset, acdcSplit, ACDC_LABELS } from '../../data/acdc.ts';
import type { Modality } from '../../data/case.ts';
import {
  Grid,
  jacobianDeterminant,
  tensorToField,
  type DisplacementField,
  type Volume,
} from '../../geometry/index.ts';
import { nccLoss, smoothnessLoss, spatialTransformer, warpLabelMap } from '../../models/losses/index.ts';
import { latestCheckpointStep, rawOf } from '../../models/training/checkpoint.ts';
import {
  adam,
  backpropagate,
  DEFAULT_LOOP,
  runLoop,
  type LoopOptions,
  type LoopResult,
} from '../../models/training/loop.ts';
import { VM2, VoxelMorph, type VoxelMorphConfig } from '../../models/voxelmorph/index.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { fail } from '../../util/errors.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { acdcOnNetworkGrid, trainingPair, type NetworkCase } from './data.ts';
import { fieldOnFixed, imageOnGrid, networkGrid, NETWORK_DIMS } from './grid.ts';

export interface BootstrapLoss {
  /** λ of the smoothness term. */
  smoothness: number;
  /** Local NCC window per axis of the network grid (voxels). */
  nccWindow: number[];
}

export interface BootstrapOptions extends Partial<LoopOptions>, Partial<BootstrapLoss> {
  /** Run folder: checkpoints, logs, data cache, validation.jsonl, network.safetensors. */
  dir: string;
  steps: number;
  network?: VoxelMorphConfig;
  /** ACDC folder (default <data>/cardiac-acdc). */
  root?: string;
}

/**
 * NCC window 9×9×3 voxels (27×27×30 mm: VoxelMorph's 9 in-plane, about as many mm across the 10 mm
 * slices). λ chosen on the validation patients after 1800 steps (vm2, Adam 1e-3): λ = 1 gave mean
 * Dice 0.785 with 0.04 % det J ≤ 0, λ = 0.3 gave 0.801 with 0.16 % (identity 0.622); both are below
 * DiffuseReg's 0.5 %, so the better Dice. A 2-network cascade (λ = 1) reached 0.784 in the same
 * wall time (1000 steps at twice the cost): not worth it at this budget.
 */
export const DEFAULT_BOOTSTRAP_LOSS: BootstrapLoss = { smoothness: 0.3, nccWindow: [9, 9, 3] };

/** Training loss of a pair: NCC(fixed, moving∘u) + λ·‖∇u‖², with its parts. */
function pairLoss(u: Tensor, fixed: Tensor, moving: Tensor, l: BootstrapLoss) {
  const ncc = nccLoss(spatialTransformer(moving, u), fixed, { window: l.nccWindow });
  const smooth = smoothnessLoss(u);
  return { loss: ncc.add(smooth.mul(l.smoothness)), ncc, smooth };
}

/** Dice of two label maps (tensors) per label; NaN for a label in neither. */
function diceScores(fixed: Tensor, warped: Tensor, labels: readonly number[]): number[] {
  return labels.map((l) =>
    tidy(() => {
      const a = fixed.eq(l);
      const b = warped.eq(l);
      const total = a.sum().item() + b.sum().item();
      return total > 0 ? (2 * a.logicalAnd(b).sum().item()) / total : NaN;
    }),
  );
}

/** % of network-grid voxels where det(I + ∇u) ≤ 0 (the determinant does not depend on the voxel size). */
function foldedPercent(u: Tensor): number {
  const grid = new Grid({ dims: NETWORK_DIMS });
  const det = jacobianDeterminant(
    tensorToField(u.squeeze(0), grid, grid.withData(new Float32Array(grid.size))),
  );
  return (100 * det.data.reduce((n, v) => n + (v <= 0 ? 1 : 0), 0)) / det.size;
}

export interface ValidationScores {
  loss: number;
  ncc: number;
  smoothness: number;
  /** Mean Dice per ACDC label name (RV, myocardium, LV) over the pairs, on the network grid. */
  dice: Record<string, number>;
  /** Mean of the three labels' Dice. */
  meanDice: number;
  /** Mean over pairs of % voxels with det J ≤ 0. */
  foldedPercent: number;
}

/** The identity's displacement (all zeros) on the network grid: the "before" row of every score. */
export const identityDisplacement = (moving: Tensor): Tensor =>
  zerosLike(moving).expand([1, 3, ...NETWORK_DIMS]);

/** Scores of `predict` (moving, fixed → u) on the ES → ED pairs of `cases`. */
export function validationScores(
  cases: readonly NetworkCase[],
  predict: (moving: Tensor, fixed: Tensor) => Tensor,
  l: BootstrapLoss,
): ValidationScores {
  const labels = Object.keys(ACDC_LABELS).map(Number);
  const sums = { loss: 0, ncc: 0, smoothness: 0, folded: 0 };
  const dice = labels.map(() => ({ sum: 0, n: 0 }));
  noGrad(() => {
    for (const c of cases) {
      tidy(() => {
        const u = predict(c.es, c.ed);
        const { loss, ncc, smooth } = pairLoss(u, c.ed, c.es, l);
        sums.loss += loss.item();
        sums.ncc += ncc.item();
        sums.smoothness += smooth.item();
        sums.folded += foldedPercent(u);
        const warped = warpLabelMap(c.esLabels, u);
        diceScores(c.edLabels, warped, labels).forEach((d, i) => {
          if (!Number.isNaN(d)) {
            dice[i].sum += d;
            dice[i].n++;
          }
        });
      });
    }
  });
  const perLabel = dice.map((d) => d.sum / d.n);
  return {
    loss: sums.loss / cases.length,
    ncc: sums.ncc / cases.length,
    smoothness: sums.smoothness / cases.length,
    dice: Object.fromEntries(labels.map((label, i) => [ACDC_LABELS[label], perLabel[i]])),
    meanDice: perLabel.reduce((s, d) => s + d, 0) / perLabel.length,
    foldedPercent: sums.folded / cases.length,
  };
}

interface BootstrapRecord {
  network: VoxelMorphConfig;
  loss: BootstrapLoss;
}

/** The network's weights and configuration (float32 safetensors). */
export function saveBootstrap(path: string, network: VoxelMorph, loss: BootstrapLoss): void {
  const record: BootstrapRecord = { network: network.config, loss };
  writeSafetensors(
    path,
    [...network.stateDict()].map(([k, t]) => [k, rawOf(t)] as const),
    { bootstrap: JSON.stringify(record) },
  );
}

/** A network saved by saveBootstrap, in eval mode. */
export function loadBootstrap(path: string): VoxelMorph {
  if (!existsSync(path)) fail(path, 'bootstrap network not found');
  const { tensors, metadata } = readSafetensors(path);
  if (!metadata.bootstrap) fail(path, 'not a bootstrap network (no "bootstrap" metadata)');
  const record = JSON.parse(metadata.bootstrap) as BootstrapRecord;
  const network = new VoxelMorph(record.network);
  network.loadStateDict(tensors);
  network.eval();
  return network;
}

/** Registers `moving` to `fixed` (whole volumes) with the network: a world-mm field on the fixed grid. */
export function bootstrapField(
  network: VoxelMorph,
  fixed: Volume,
  moving: Volume,
  modality: Modality,
): DisplacementField {
  const grid = networkGrid(fixed);
  return noGrad(() =>
    tidy(() => {
      const u = network.forward(
        imageOnGrid(moving, grid, modality, 'moving'),
        imageOnGrid(fixed, grid, modality, 'fixed'),
      );
      return fieldOnFixed(u, grid, fixed);
    }),
  );
}

/**
 * Trains the bootstrap network in `o.dir` (resuming from its newest checkpoint): Adam, batch 1, a
 * random training pair per step (either direction, random flips), validation scores appended to
 * `validation.jsonl` (step 0: the identity), the final network to `network.safetensors`.
 */
export async function trainBootstrap(
  o: BootstrapOptions,
  progress?: ProgressFn,
): Promise<LoopResult & { network: VoxelMorph; validation: ValidationScores }> {
  const loss: BootstrapLoss = {
    smoothness: o.smoothness ?? DEFAULT_BOOTSTRAP_LOSS.smoothness,
    nccWindow: o.nccWindow ?? DEFAULT_BOOTSTRAP_LOSS.nccWindow,
  };
  // Adam at 1e-3 (VoxelMorph's 1e-4 is for ~100× more steps than this budget), as the runs above.
  const opts: LoopOptions = { ...DEFAULT_LOOP, lr: 1e-3, weightDecay: 0, optimizer: adam, ...o };
  const record: BootstrapRecord = { network: o.network ?? VM2, loss };
  const recordPath = join(o.dir, 'bootstrap.json');
  const cases = await acdcOnNetworkGrid(
    acdcDataset({ root: o.root }).caseIds,
    join(o.dir, 'acdc-network-grid.safetensors'),
    { root: o.root },
    progress,
  );
  if (existsSync(recordPath) && readFileSync(recordPath, 'utf8') !== JSON.stringify(record)) {
    fail(recordPath, 'the run folder holds a run with another network or loss; use a new folder');
  }
  writeFileAtomic(recordPath, JSON.stringify(record));
  const train = cases.filter((c) => acdcSplit(c.id) === 'train');
  const validation = cases.filter((c) => acdcSplit(c.id) === 'validation');
  const validationLog = join(o.dir, 'validation.jsonl');
  const logScores = (step: number, scores: ValidationScores) =>
    appendFileSync(validationLog, JSON.stringify({ step, ...scores }) + '\n');
  if (existsSync(validationLog)) {
    // Steps after the newest checkpoint are redone: drop their scores.
    const resumed = latestCheckpointStep(o.dir) ?? 0;
    const kept = readFileSync(validationLog, 'utf8')
      .split('\n')
      .filter((line) => line.trim() && (JSON.parse(line) as { step: number }).step <= resumed);
    writeFileAtomic(validationLog, kept.map((line) => line + '\n').join(''));
  } else {
    logScores(0, validationScores(validation, identityDisplacement, loss));
  }

  manualSeed(opts.seed); // the weight initialisation draws from the global generator
  const network = new VoxelMorph(record.network);
  let step = 0;
  let scores: ValidationScores | undefined;
  const result = runLoop(
    'bootstrap registration network',
    network,
    opts,
    (s, { random }) => {
      step = s;
      const { fixed, moving } = trainingPair(train, random);
      const {
        loss: total,
        ncc,
        smooth,
      } = tidy(() => pairLoss(network.forward(moving, fixed), fixed, moving, loss));
      fixed.dispose();
      moving.dispose();
      return backpropagate(total, { ncc, smoothness: smooth });
    },
    () => {
      scores = validationScores(validation, (m, f) => network.forward(m, f), loss);
      logScores(step, scores);
      return scores.loss;
    },
    progress,
  );
  network.eval();
  if (result.finished) saveBootstrap(join(o.dir, 'network.safetensors'), network, loss);
  return {
    ...result,
    network,
    validation: scores ?? validationScores(validation, (m, f) => network.forward(m, f), loss),
  };
}
