/**
 * MedDIFT in the method registry (src/methods/method.ts): point matching of a case's fixed landmarks,
 * and dense registration (ConvexAdam), from diffusion features or, for the ablation, from classical
 * descriptors through exactly the same matching and optimisation.
 */
import { Generator, dispose } from '../../engine/index.ts';
import { measured } from '../../util/measure.ts';
import type {
  MethodEntry,
  RegisterOptions,
  RegistrationCase,
  RegistrationMethod,
  RegistrationResult,
} from '../method.ts';
import { descriptorFeatures, type DescriptorKind } from '../descriptors/index.ts';
import { imageFeatures, matchFeatures, pairFeatures, type ImageFeatures } from './correspond.ts';
import type { DiffusionFeatureModel } from './features.ts';
import { registerFeatures, type MedDiftRegisterOptions } from './register.ts';

/** Where the features of a case come from: a diffusion model or a classical descriptor. */
export type FeatureSource =
  { kind: 'diffusion'; model: DiffusionFeatureModel } | { kind: 'descriptor'; descriptor: DescriptorKind };

function features(
  source: FeatureSource,
  item: RegistrationCase,
  seed: number,
  settings: MedDiftRegisterOptions,
): [ImageFeatures, ImageFeatures] {
  const options = { ...settings, modality: settings.modality ?? item.modality };
  return pairFeatures(item.fixed, item.moving, (volume, subject, side) =>
    source.kind === 'descriptor'
      ? descriptorFeatures(volume, source.descriptor, options, subject)
      : imageFeatures(source.model, volume, { ...options, generator: new Generator(seed + side) }, subject),
  );
}

export interface FeatureMethodOptions {
  name: string;
  description: string;
  source: FeatureSource;
  /** Dense registration (a field) and/or point matching of the case's landmarks. */
  dense: boolean;
  match: boolean;
  /** Local search radius in mm for matching (global search when absent). */
  radiusMm?: number;
  /** Feature and ConvexAdam settings (`diffreg register`'s options); the defaults otherwise. */
  settings?: MedDiftRegisterOptions;
}

export function featureMethod(o: FeatureMethodOptions): RegistrationMethod {
  const settings = o.settings ?? {};
  return {
    name: o.name,
    description: o.description,
    async register(item: RegistrationCase, options: RegisterOptions = {}): Promise<RegistrationResult> {
      const seed = settings.seed ?? options.seed ?? 0;
      const { value, seconds, peakRssMb } = await measured(async () => {
        const t0 = performance.now();
        const [f, m] = features(o.source, item, seed, settings);
        const t1 = performance.now();
        try {
          const result: Omit<RegistrationResult, 'seconds' | 'peakRssMb'> = {};
          if (o.match && item.fixedPoints && item.fixedPoints.length > 0) {
            const matches = matchFeatures(f, m, item.fixedPoints, item.moving, {
              search: o.radiusMm ? 'local' : 'global',
              radiusMm: o.radiusMm,
              consistency: false,
              progress: options.progress,
            });
            result.movingPointsPredicted = matches.map((x) => x.moving);
          }
          if (o.dense) {
            const registration = registerFeatures(f, m, item.fixed, {
              iterations: options.quick ? 10 : undefined,
              maxLatticeVoxels: options.quick ? 24 ** 3 : undefined,
              ...settings,
              seed,
              progress: options.progress,
            });
            result.field = registration.field;
            const stages = { features: (t1 - t0) / 1000, registration: (performance.now() - t1) / 1000 };
            result.details = { lattice: registration.lattice, stageSeconds: stages };
          }
          return result;
        } finally {
          dispose([...f.grid.levels, ...m.grid.levels]);
        }
      });
      return { ...value, seconds, peakRssMb };
    },
  };
}

/** The options of `diffreg register` that MedDIFT's dense registration reads (MedDiftRegisterOptions). */
const REGISTER_OPTIONS = [
  'search-radius',
  'smoothness',
  'iterations',
  'lattice-voxels',
  'channels',
  'no-diffeomorphic',
  'modality',
  'seed',
];
const DIFFUSION_OPTIONS = [
  'timestep',
  'noise-draws',
  'levels',
  'level-weights',
  'region-top',
  'region-bottom',
];

/**
 * The feature methods by name: `<source>-match` (global point matching of the case's landmarks) and
 * `<source>-register` (ConvexAdam) for MedDIFT's diffusion features (`meddift`, the model loaded on
 * first use) and, for the ablation, MIND-SSC (`mind`) and intensity patches (`patches`). Settings
 * (MedDiftRegisterOptions) apply to the registering ones.
 */
export const featureMethodEntries: MethodEntry[] = (
  [
    ['meddift', "MedDIFT diffusion features (t=20, the model's feature levels)"],
    ['mind', 'MIND-SSC descriptors'],
    ['patches', 'intensity patches (NCC)'],
  ] as const
).flatMap(([prefix, what]) =>
  [false, true].map((dense): MethodEntry => {
    const name = `${prefix}-${dense ? 'register' : 'match'}`;
    const description = dense
      ? `ConvexAdam (PCA 24, diffeomorphic) on ${what}`
      : `point matching (global search) on ${what}`;
    return {
      name,
      summary: description,
      dense,
      options: dense ? [...REGISTER_OPTIONS, ...(prefix === 'meddift' ? DIFFUSION_OPTIONS : [])] : [],
      usesModel: prefix === 'meddift',
      create({ model, settings }) {
        let source: FeatureSource = { kind: 'descriptor', descriptor: prefix as DescriptorKind };
        if (prefix === 'meddift') {
          if (!model) throw new Error(`${name}: the method context has no model`);
          source = { kind: 'diffusion', model: model() };
        }
        return featureMethod({
          name,
          description,
          source,
          dense,
          match: !dense,
          settings: dense ? (settings as MedDiftRegisterOptions | undefined) : undefined,
        });
      },
    };
  }),
);
