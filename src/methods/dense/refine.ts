/**
 * Intensity instance optimisation: the start u₀ on the images' lattice plus a control-lattice field
 * u_c read trilinearly there (u = u₀ + U(u_c)), u_c moved by Adam down
 *   local NCC(fixed, moving∘u) + λ_smooth·‖∇u_c‖² + λ_fold·Σ max(0, 0.1 − det J(u))²/N
 * (N the images' lattice voxels; det J at every corner of each lattice cell, where the trilinear field
 * the fixed grid reads is evaluated, or at each cell's first corner: `foldingCorners`). It refines a
 * learned method's or ConvexAdam's field on the pair at hand, or registers from the identity. With
 * `keepStart` (the default) u_c is a correction starting at zero, so a ConvexAdam start keeps its
 * detail, and the hinge sees det J on the images' lattice; without, u_c starts as the start resampled
 * onto the control lattice, u₀ = 0 and the hinge is on the control lattice (DiffuseReg, as tuned).
 * With the ConvexAdam start on the control lattice, the folds between its nodes had escaped the hinge
 * (LPBA40 S11–S12: 0.699 Dice with 0.010 % det J ≤ 0 before, 0.703 with none now; ACDC 002/022/042
 * 0.836 before, 0.830 now — bench/harness/RESULTS.md, 2026-12-07 12:13–12:45). The control lattice plays
 * the part of elastix's B-spline grid: the similarity is measured at the images' resolution, the
 * motion kept smooth by the lattice's spacing; on ACDC a control spacing of 12 mm in-plane (16 × 16 ×
 * 16 over DiffuseReg's 192 × 192 × 160 mm box) scored 0.823 mean Dice where 6 mm scored 0.818, 3 mm
 * 0.804 and 24 mm 0.788 (four training patients, models/diffusereg/MODEL_CARD.md).
 *
 * Lattices: every lattice here spans the same field of view, voxel k of n at (k + 0.5)/n of it (the
 * sample positions of interpolation with align_corners = false), so a displacement moves between
 * lattices by trilinear resampling and scaling each component by the ratio of the sizes along its axis.
 */
import { cat, enableGrad, F, noGrad, optim, tidy, zeros, type Tensor } from '../../engine/index.ts';
import {
  FOLDING_MARGIN,
  foldingPenalty,
  nccLoss,
  smoothnessLoss,
  spatialTransformer,
} from '../../models/losses/index.ts';
import {
  fieldToTensor,
  latticeOver,
  tensorToField,
  type Grid,
  type DisplacementField,
  type Vec3,
  type Volume,
} from '../../geometry/index.ts';
import type { Modality } from '../../data/case.ts';
import { imageOnGrid } from '../../models/preprocess.ts';
import { bool, integer, number, vec3 } from '../../util/is.ts';
import { fail } from '../../util/errors.ts';

export interface RefineOptions {
  /** Control lattice size (voxels per axis), over the images' field of view. */
  controlDims?: Vec3;
  /** Adam iterations (0 returns the initial displacement on the images' lattice). */
  iterations?: number;
  /** Adam step size, in control-lattice voxels. */
  learningRate?: number;
  /** Weight of the control displacement's squared gradient (control voxels). */
  smoothness?: number;
  /**
   * Weight of the folding hinge (det J below 0.1, averaged over the images' lattice with a kept
   * start, over the control lattice without).
   */
  folding?: number;
  /**
   * det J of the hinge at each cell's first voxel (1) or at all eight of its corners (8: the trilinear
   * field's Jacobians there, which the fixed image's finer grid sees).
   */
  foldingCorners?: 1 | 8;
  /** Local NCC window on the images' lattice (odd voxels per axis). */
  window?: Vec3;
  /**
   * Keep the start at the images' resolution under a control-lattice correction (true), or refine
   * only its trilinear resampling onto the control lattice (false: a start that folds by itself
   * keeps less of it).
   */
  keepStart?: boolean;
}

/**
 * Chosen with DiffuseReg's start on ACDC training patients 001, 021, 041, 061 (1.5 × 1.5 × 10 mm
 * images, 12 × 12 × 10 mm control voxels): mean Dice 0.824 at learning rate 0.1 (0.823 at 0.05),
 * smoothness 0.3 (0.822 with 0.44 % folding at 0.1, 0.815 at 1), NCC window 9 × 9 × 3 voxels
 * (13.5 × 13.5 × 30 mm); 100 iterations gave 0.002 more than 50 for twice the time. The folding
 * hinge with the feature registration's start: weight 10 at the cells' first corners on LPBA40
 * S11–S12 (weight 1: 0.002 % det J ≤ 0, 10: none) and ACDC 002/022/042 (0.109 % → 0.030 %, Dice
 * 0.833 → 0.830); then weight 100 at all eight corners, on the two LPBA40 cases that still folded
 * at weight 10 (S28, S38: 0.0031 and 0.0016 % → none, Dice 0.6886 → 0.6892), S11–S12 (0.7038 →
 * 0.7031, none either way) and ACDC 002/022/042 (0.025 % → none, 0.8305 → 0.8302) — with 40 Adam
 * iterations, bench/harness/RESULTS.md 2026-12-07 15:50–16:18.
 */
export const REFINE_DEFAULTS: Required<RefineOptions> = {
  controlDims: [16, 16, 16],
  iterations: 50,
  learningRate: 0.1,
  smoothness: 0.3,
  folding: 100,
  foldingCorners: 8,
  window: [9, 9, 3],
  keepStart: true,
};

const cornersOf = (v: unknown): 1 | 8 => {
  if (v !== 1 && v !== 8) fail('foldingCorners', `expected 1 or 8, got ${JSON.stringify(v)}`);
  return v;
};

function checkOptions(o: RefineOptions): Required<RefineOptions> {
  const d = REFINE_DEFAULTS;
  const window = vec3('window', o.window ?? d.window);
  if (!window.every((w) => Number.isInteger(w) && w >= 1 && w % 2 === 1))
    fail('window', `expected odd numbers of voxels, got ${JSON.stringify(window)}`);
  return {
    controlDims: vec3('controlDims', o.controlDims ?? d.controlDims).map((n, a) =>
      integer(`controlDims[${a}]`, n, { min: 2 }),
    ) as Vec3,
    iterations: integer('iterations', o.iterations ?? d.iterations, { min: 0, max: 10000 }),
    learningRate: number('learningRate', o.learningRate ?? d.learningRate, { min: 0, exclusiveMin: true }),
    smoothness: number('smoothness', o.smoothness ?? d.smoothness, { min: 0 }),
    folding: number('folding', o.folding ?? d.folding, { min: 0 }),
    foldingCorners: cornersOf(o.foldingCorners ?? d.foldingCorners),
    window,
    keepStart: bool('keepStart', o.keepStart ?? d.keepStart),
  };
}

/**
 * A displacement (1, 3, w, h, d) in voxels of its lattice, on a lattice of `dims` over the same field
 * of view, in that lattice's voxels.
 */
export function displacementOnLattice(u: Tensor, dims: readonly number[]): Tensor {
  const from = u.shape.slice(2);
  if (from.join() === dims.join()) return u.clone();
  return tidy(() => {
    const resampled = F.interpolate(u, { size: [...dims], mode: 'trilinear', alignCorners: false });
    return cat(
      [0, 1, 2].map((a) => resampled.narrow(1, a, 1).mul(dims[a] / from[a])),
      1,
    );
  });
}

/**
 * The displacement (1, 3, W, H, D) in voxels of the images' lattice that aligns `moving` to `fixed`
 * (both (1, 1, W, H, D)), starting from `initial` (1, 3, …) on any lattice over the same field of
 * view (in its voxels), or from the identity.
 */
export function refineDisplacement(
  fixed: Tensor,
  moving: Tensor,
  initial: Tensor | undefined,
  options: RefineOptions = {},
): Tensor {
  const o = checkOptions(options);
  const imageDims = fixed.shape.slice(2);
  if (fixed.shape.length !== 5 || moving.shape.join() !== fixed.shape.join())
    fail(
      'refine images',
      `expected two (1, 1, W, H, D) tensors of one shape, got [${fixed.shape}] and [${moving.shape}]`,
    );
  // The start at the images' resolution under a smooth correction, or resampled onto the control lattice.
  const start =
    initial && o.keepStart ? noGrad(() => displacementOnLattice(initial, imageDims)).keep() : undefined;
  const control = noGrad(() =>
    initial && !start ? displacementOnLattice(initial, o.controlDims) : zeros([1, 3, ...o.controlDims]),
  )
    .requiresGrad_(true)
    .keep();
  // The hinge where the field's detail lives: the images' lattice for a kept start, else the control lattice.
  const hingeVoxels = (start ? imageDims : o.controlDims).reduce((p, n) => p * n, 1);
  const optimiser = new optim.Adam([control], { lr: o.learningRate });
  const field = () => {
    const correction = displacementOnLattice(control, imageDims);
    return start ? start.add(correction) : correction;
  };
  try {
    for (let i = 0; i < o.iterations; i++) {
      optimiser.zeroGrad();
      enableGrad(() =>
        tidy(() => {
          const u = field();
          nccLoss(fixed, spatialTransformer(moving, u), { window: o.window })
            .add(smoothnessLoss(control).mul(o.smoothness))
            .add(
              foldingPenalty(start ? u : control, FOLDING_MARGIN, o.foldingCorners).mul(
                o.folding / hingeVoxels,
              ),
            )
            .backward();
        }),
      );
      optimiser.step();
    }
    return noGrad(() => field());
  } finally {
    optimiser.dispose();
    control.dispose();
    start?.dispose();
  }
}

/** The lattices of a refinement over a whole image (refineField). */
export interface RefinementLatticeOptions {
  /** Upper bound on the image lattice's voxels. */
  maxVoxels?: number;
  /** Control-lattice spacing in mm (never finer than the image lattice's). */
  controlSpacing?: number;
  /** Local NCC window edge in mm (at least 3 voxels per axis). */
  windowMm?: number;
}

/**
 * The image lattice's budget (1.5 × 1.5 × 10 mm over ACDC's stacks stays under it; at 128 × 128 × 16
 * voxels an iteration took about 0.2 s on one core), and DiffuseReg's tuned control spacing and
 * NCC window (12 mm, 9 × 1.5 = 13.5 mm).
 */
export const REFINE_LATTICE_DEFAULTS: Required<RefinementLatticeOptions> = {
  maxVoxels: 2 ** 19,
  controlSpacing: 12,
  windowMm: 13.5,
};

export interface RefinementLattice {
  /** The image lattice over the fixed image's field of view. */
  grid: Grid;
  controlDims: Vec3;
  window: Vec3;
}

/**
 * The lattices over `fixed`: along each axis the image's own spacing, or a common coarser one where
 * that exceeds the voxel budget (thick slices keep their spacing); the control lattice at
 * `controlSpacing` mm or the image lattice's spacing, whichever is coarser; the NCC window the odd
 * number of voxels nearest `windowMm`, at least 3.
 */
export function refinementLattice(fixed: Grid, options: RefinementLatticeOptions = {}): RefinementLattice {
  const d = REFINE_LATTICE_DEFAULTS;
  const maxVoxels = integer('maxVoxels', options.maxVoxels ?? d.maxVoxels, { min: 64, max: 2 ** 24 });
  const controlSpacing = number('controlSpacing', options.controlSpacing ?? d.controlSpacing, {
    min: 0,
    exclusiveMin: true,
  });
  const windowMm = number('windowMm', options.windowMm ?? d.windowMm, { min: 0, exclusiveMin: true });
  const extent = fixed.dims.map((n, a) => n * fixed.spacing[a]);
  const dimsAt = (step: number) =>
    extent.map((e, a) => Math.max(2, Math.round(e / Math.max(step, fixed.spacing[a])))) as Vec3;
  const count = (step: number) => dimsAt(step).reduce((p, n) => p * n, 1);
  // The smallest common step within the budget, by bisection (the count falls as the step grows).
  let [lo, hi] = [Math.min(...fixed.spacing), Math.max(...extent)];
  if (count(lo) > maxVoxels) {
    for (let i = 0; i < 40; i++) {
      const mid = (lo + hi) / 2;
      if (count(mid) > maxVoxels) lo = mid;
      else hi = mid;
    }
    lo = hi;
  }
  const dims = dimsAt(lo);
  const grid = latticeOver(fixed, dims);
  const odd = (v: number) => Math.max(3, 2 * Math.round((v - 1) / 2) + 1);
  return {
    grid,
    controlDims: extent.map((e, a) =>
      Math.max(2, Math.round(e / Math.max(controlSpacing, grid.spacing[a]))),
    ) as Vec3,
    window: grid.spacing.map((s) => odd(windowMm / s)) as Vec3,
  };
}

/**
 * `start` (a world-mm field on the fixed grid, or the identity) refined on the pair over the fixed
 * image's field of view (refinementLattice), as a world-mm field on the fixed grid.
 */
export function refineField(
  pair: { fixed: Volume; moving: Volume; modality: Modality },
  start: DisplacementField | undefined,
  options: RefineOptions & RefinementLatticeOptions = {},
): DisplacementField {
  const lattice = refinementLattice(pair.fixed, options);
  return noGrad(() =>
    tidy(() => {
      const fixed = imageOnGrid(pair.fixed, lattice.grid, pair.modality, 'fixed image');
      const moving = imageOnGrid(pair.moving, lattice.grid, pair.modality, 'moving image');
      const initial = start && fieldToTensor(start, lattice.grid).unsqueeze(0);
      const u = refineDisplacement(fixed, moving, initial, {
        ...options,
        controlDims: lattice.controlDims,
        window: lattice.window,
      });
      return tensorToField(u.squeeze(0), lattice.grid, pair.fixed);
    }),
  );
}
