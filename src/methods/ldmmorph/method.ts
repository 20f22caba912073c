/**
 * LDM-Morph (Wu et al., Pattern Recognition 2026) in the method registry. A 2-D method: a pair of
 * slices (dims [nx, ny, 1], PNG or 2-D NIfTI) gives a 2-D field; 3-D stacks are registered slice by
 * slice (fixed slice k with moving slice k, the moving stack first resampled onto the fixed grid when
 * their grids differ) into a 3-D field with zero through-plane displacement. Each slice goes through
 * its own network grid (grid.ts), so whole uncropped images of any size work; no labels are needed.
 * The shipped weights were trained on ACDC cine cardiac MR; other modalities get a warning on stderr.
 */
import { Generator, noGrad, tidy } from '../../engine/index.ts';
import { volumeSlice } from '../../data/slices.ts';
import { resampleVolume, type DisplacementField, type Volume } from '../../geometry/index.ts';
import { fail } from '../../util/errors.ts';
import { measured } from '../../util/measure.ts';
import { stageReporter, type ProgressFn } from '../../util/progress.ts';
import type { MethodEntry, RegistrationCase, RegistrationMethod } from '../method.ts';
import { checkSlice, sliceFieldOnFixed, sliceGrid, sliceImageOnGrid } from './grid.ts';
import { LDM_MORPH_MODEL_DIR, loadLdmMorphModel, type LdmMorphModel } from './model.ts';
import { FEATURE_NOISE_SEED, predictDisplacement } from './predict.ts';
import { warnIfNotCardiacMr } from '../cardiac-mr.ts';

const zeroField = (fixed: Volume) => fixed.withData(new Float32Array(3 * fixed.size), 3) as DisplacementField;

/**
 * Refuses a moving slice whose plane is not the fixed slice's: resampled through world coordinates it
 * would leave the network nothing but padding. The fixed slice's corners must lie within half a
 * moving slice thickness of the moving plane.
 */
function checkSamePlane(fixed: Volume, moving: Volume): void {
  const [nx, ny] = fixed.dims;
  const away = [0, nx - 1].flatMap((i) =>
    [0, ny - 1].map((j) => Math.abs(moving.worldToVoxel(fixed.voxelToWorld([i, j, 0]))[2])),
  );
  const farthest = Math.max(...away);
  if (farthest > 0.5)
    fail(
      'moving image',
      `its slice is not in the fixed slice's plane (up to ${farthest.toFixed(2)} slice thicknesses away); give slices of one plane`,
    );
}

/**
 * The 2-D path: `moving` registered onto `fixed`, both one slice in one plane, as a world-mm field on
 * the fixed slice with no through-plane component. A slice without content gives the zero field.
 */
export function registerSlice(
  model: LdmMorphModel,
  fixed: Volume,
  moving: Volume,
  seed: number,
): DisplacementField {
  checkSlice(fixed, 'fixed image');
  checkSlice(moving, 'moving image');
  checkSamePlane(fixed, moving);
  const grid = sliceGrid(fixed, model.network.config.imageSize);
  return noGrad(() =>
    tidy(() => {
      const f = sliceImageOnGrid(fixed, grid, 'fixed image');
      const m = sliceImageOnGrid(moving, grid, 'moving image');
      if (!f || !m) return zeroField(fixed);
      const u = predictDisplacement(model.network, model.ldm, m, f, new Generator(seed));
      return sliceFieldOnFixed(u, grid, fixed);
    }),
  );
}

/** Slice by slice on a stack: the slices' fields stacked into one field on the fixed grid. */
export function registerStack(
  model: LdmMorphModel,
  fixed: Volume,
  moving: Volume,
  seed: number,
  progress?: ProgressFn,
): DisplacementField {
  const onFixed = moving.sameGrid(fixed) ? moving : resampleVolume(moving, fixed);
  const [nx, ny, nz] = fixed.dims;
  const plane = nx * ny;
  const field = zeroField(fixed);
  const report = stageReporter(progress, 'LDM-Morph, slice by slice', nz);
  for (let k = 0; k < nz; k++) {
    const slice = registerSlice(model, volumeSlice(fixed, k), volumeSlice(onFixed, k), seed);
    for (let c = 0; c < 3; c++)
      field.data.set(slice.data.subarray(c * plane, (c + 1) * plane), c * fixed.size + k * plane);
    report(k + 1);
  }
  return field;
}

/** Both images 2-D or both 3-D (checked before the model is loaded). */
function checkPair(item: RegistrationCase): void {
  const slices = (v: Volume) => (v.dims[2] === 1 ? '2-D' : '3-D');
  if (slices(item.fixed) !== slices(item.moving))
    fail(
      'moving image',
      `a ${slices(item.fixed)} fixed image needs a ${slices(item.fixed)} moving image, got ${item.moving.dims.join('x')} voxels`,
    );
  if (item.fixed.dims[2] === 1) checkSamePlane(item.fixed, item.moving);
}

const models = new Map<string, LdmMorphModel>();
/** The model in `dir`, loaded once per process. */
function modelIn(dir: string): LdmMorphModel {
  if (!models.has(dir)) models.set(dir, loadLdmMorphModel(dir));
  return models.get(dir)!;
}

/** LDM-Morph with the model in `modelDir` (models/ldmmorph by default). */
export function ldmMorphMethod(modelDir: string = LDM_MORPH_MODEL_DIR): RegistrationMethod {
  return {
    name: 'ldmmorph',
    description:
      'LDM-Morph: Swin registration network fused with 2-D latent-diffusion features (LGCA), trained here on ACDC slices; 2-D, slice by slice on stacks',
    async register(item, options = {}) {
      checkPair(item);
      const model = modelIn(modelDir);
      warnIfNotCardiacMr(item, 'ldmmorph');
      const seed = options.seed ?? FEATURE_NOISE_SEED;
      const { value, seconds, peakRssMb } = await measured(async () =>
        item.fixed.dims[2] === 1
          ? registerSlice(model, item.fixed, item.moving, seed)
          : registerStack(model, item.fixed, item.moving, seed, options.progress),
      );
      return {
        field: value,
        seconds,
        peakRssMb,
        details: { slices: item.fixed.dims[2], variant: model.variant },
      };
    },
  };
}

export const ldmMorphEntries: MethodEntry[] = [
  {
    name: 'ldmmorph',
    summary:
      'LDM-Morph: Swin + latent-diffusion features, 2-D images or slice by slice on stacks (cardiac MR)',
    dense: true,
    options: [],
    usesModel: false,
    accepts2d: true,
    create: () => ldmMorphMethod(),
  },
];
