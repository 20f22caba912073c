/**
 * DiffuseReg (Zhuo & Shen, MICCAI 2024) and its bootstrap network in the method registry. Both run on
 * whole, uncropped volumes of any size and spacing: the pair is resampled onto the network grid over
 * the fixed image (grid.ts) and the field comes back on the fixed grid in world mm. The shipped
 * weights were trained on ACDC cine cardiac MR; other modalities get a warning on stderr.
 */
import { noGrad, tidy } from '../../engine/index.ts';
import { measured } from '../../util/measure.ts';
import { fail } from '../../util/errors.ts';
import type { Volume } from '../../geometry/index.ts';
import type { MethodEntry, RegisterOptions, RegistrationCase, RegistrationMethod } from '../method.ts';
import { fieldOnFixed, imageOnGrid, networkGrid } from './grid.ts';
import { loadDiffuseRegModel, type DiffuseRegModel } from './model.ts';
import { sampleWithNetwork, type SampleOptions } from './sample.ts';
import { watchSampling } from './watch.ts';
import { warnIfNotCardiacMr } from '../cardiac-mr.ts';

/** What `diffreg register --method diffusereg` passes (SampleOptions less what the method fills in). */
export interface DiffuseRegSettings extends Omit<SampleOptions, 'normalisation' | 'prediction' | 'onStep'> {
  /** Write intermediate fields and the strip here (see watch.ts). */
  watch?: string;
  /** Record every this many steps (default 10). */
  every?: number;
}

/**
 * The length of each voxel's vector: for the per-component spread of the samples mapped to world mm,
 * √Σ(s_a·std_a)², the spread in mm whatever the grid's direction.
 */
function vectorLengths(field: Volume): Volume<Float32Array> {
  const n = field.size;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.hypot(field.data[i], field.data[n + i], field.data[2 * n + i]);
  return field.withData(out);
}

let shipped: DiffuseRegModel | undefined;
/** The shipped model, loaded once per process. */
const model = () => (shipped ??= loadDiffuseRegModel());

/** The pair on the network grid over the fixed image. */
function onGrid(item: RegistrationCase) {
  const grid = networkGrid(item.fixed);
  return {
    grid,
    images: {
      fixed: imageOnGrid(item.fixed, grid, item.modality, 'fixed image'),
      moving: imageOnGrid(item.moving, grid, item.modality, 'moving image'),
    },
  };
}

export const voxelMorphMethod: RegistrationMethod = {
  name: 'voxelmorph',
  description:
    "VoxelMorph-style U-Net (local NCC + diffusion smoothness) trained here on ACDC ES↔ED pairs; DiffuseReg's bootstrap network",
  async register(item: RegistrationCase) {
    warnIfNotCardiacMr(item, 'voxelmorph');
    const { value, seconds, peakRssMb } = await measured(async () =>
      noGrad(() =>
        tidy(() => {
          const { grid, images } = onGrid(item);
          return fieldOnFixed(model().bootstrap.forward(images.moving, images.fixed), grid, item.fixed);
        }),
      ),
    );
    return { field: value, seconds, peakRssMb };
  },
};

/**
 * The method's guidance when none is given: similarity (local NCC) at strength 4, chosen with DDIM-10
 * on ten training patients (001, 005, 021, 025, 041, 045, 061, 065, 081, 085; network grid): mean Dice
 * 0.724 unguided, 0.730 at 1, 0.735 at 2, 0.742 at 4 (det J ≤ 0 0.19 %), 0.743 at 8 (0.61 %: above the
 * 0.5 % DiffuseReg is held to), 0.734 at 16.
 */
export const DIFFUSEREG_GUIDANCE = { similarity: 4 } as const;

/** The default guidance with the strengths the user gave (undefined ones keep the default). */
function guidanceOf(given: DiffuseRegSettings['guidance'] = {}): NonNullable<DiffuseRegSettings['guidance']> {
  const set = Object.entries(given).filter(([, v]) => v !== undefined);
  return { ...DIFFUSEREG_GUIDANCE, ...Object.fromEntries(set) };
}

export function diffuseRegMethod(settings: DiffuseRegSettings = {}): RegistrationMethod {
  const sampler = settings.sampler ?? 'ddim';
  const steps = settings.steps ?? (sampler === 'ddpm' ? 2000 : 10);
  const guidance = guidanceOf(settings.guidance);
  return {
    name: 'diffusereg',
    description: `DiffuseReg: conditional Swin-UNETR denoising of the displacement field, ${sampler.toUpperCase()} ${steps} steps, ${settings.samples ?? 1} sample(s), similarity guidance ${guidance.similarity ?? 0}`,
    async register(item: RegistrationCase, options: RegisterOptions = {}) {
      warnIfNotCardiacMr(item, 'diffusereg');
      const denoiser = model().denoiser;
      if (!denoiser)
        fail('diffusereg', 'the shipped model has no trained denoiser yet (diffreg train diffusereg)');
      const { value, seconds, peakRssMb } = await measured(async () => {
        const { grid, images } = onGrid(item);
        // The strip is always recorded (five pictures by default: cheap at the network grid's size);
        // files only with --watch.
        const watch = watchSampling({
          dir: settings.watch,
          every: settings.every ?? (settings.watch ? 10 : Math.max(1, Math.round(steps / 5))),
          grid,
          images,
        });
        try {
          const result = sampleWithNetwork(denoiser.network, images, {
            ...settings,
            guidance,
            sampler,
            steps,
            seed: settings.seed ?? options.seed,
            normalisation: denoiser.normalisation,
            prediction: denoiser.prediction,
            onStep: watch.onStep,
          });
          const field = fieldOnFixed(result.field, grid, item.fixed);
          const uncertainty = result.std && vectorLengths(fieldOnFixed(result.std, grid, item.fixed));
          for (const t of [result.field, result.std]) t?.dispose();
          const caption = `fixed | moving warped by φ̂₀ after steps ${watch.steps.join(', ')} of the first sample | moving (middle axial slice of the network grid)`;
          return { field, uncertainty, stepsRun: result.stepsRun, figure: { caption, png: watch.strip() } };
        } finally {
          images.fixed.dispose();
          images.moving.dispose();
        }
      });
      return {
        field: value.field,
        uncertainty: value.uncertainty,
        seconds,
        peakRssMb,
        details: { sampler, steps, stepsRun: value.stepsRun },
        figures: [{ name: 'sampling', ...value.figure }],
      };
    },
  };
}

const SAMPLING_OPTIONS = [
  'sampler',
  'steps',
  'samples',
  'seed',
  'out-uncertainty',
  'watch',
  'every',
  'guide-folding',
  'guide-smoothness',
  'guide-similarity',
  'tolerance',
];

export const diffuseRegEntries: MethodEntry[] = [
  {
    name: 'voxelmorph',
    summary: voxelMorphMethod.description,
    dense: true,
    options: [],
    usesModel: false,
    create: () => voxelMorphMethod,
  },
  {
    name: 'diffusereg',
    summary: 'DiffuseReg: DDPM/DDIM denoising of the displacement field conditioned on the pair (cardiac MR)',
    dense: true,
    options: SAMPLING_OPTIONS,
    usesModel: false,
    create: ({ settings }) => diffuseRegMethod(settings as DiffuseRegSettings | undefined),
  },
  // The paper's sampler and a middle DDIM setting, by name for the benchmark harness.
  ...(
    [
      ['diffusereg-ddim50', { sampler: 'ddim', steps: 50 }],
      ['diffusereg-ddpm', { sampler: 'ddpm', steps: 2000 }],
    ] as const
  ).map(([name, settings]): MethodEntry => ({
    name,
    summary: `DiffuseReg with ${settings.sampler.toUpperCase()} ${settings.steps} steps`,
    dense: true,
    options: [],
    usesModel: false,
    create: () => ({ ...diffuseRegMethod(settings), name }),
  })),
];
