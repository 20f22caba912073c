/**
 * MedDIFT in the method registry (src/methods/method.ts): point matching of a case's fixed landmarks,
 * and dense registration (ConvexAdam), from diffusion features or, for the ablation, from classical
 * descriptors through exactly the same matching and optimisation.
 */
import { dispose } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { measured } from '../../util/measure.ts';
import type {
  MethodEntry,
  RegisterOptions,
  RegistrationCase,
  RegistrationMethod,
  RegistrationResult,
} from '../method.ts';
import { matchFeatures, type Descriptor, type ImageFeatures } from './correspond.ts';
import {
  AUTO_DESCRIPTORS,
  concreteDescriptor,
  type ConcreteDescriptor,
  DESCRIPTOR_NAMES,
  describePair,
  refuseUnusedDiffusionSettings,
  usesDiffusionModel,
} from './describe.ts';
import type { DiffusionFeatureModel } from './features.ts';
import { registerAndMatch } from './points.ts';
import {
  FEATURE_REGISTRATION_DEFAULTS,
  registerFeatures,
  type FeatureRegistration,
  type MedDiftRegisterOptions,
} from './register.ts';
import { refineField } from '../dense/refine.ts';

/**
 * Where the features of a case come from: a descriptor, and the diffusion model (loaded on first use)
 * for those that use it.
 */
export interface FeatureSource {
  descriptor: Descriptor;
  model?: () => DiffusionFeatureModel;
}

function features(
  source: FeatureSource,
  item: RegistrationCase,
  seed: number,
  settings: MedDiftRegisterOptions,
): { descriptor: ConcreteDescriptor; pair: [ImageFeatures, ImageFeatures] } {
  const options = { ...settings, modality: settings.modality ?? item.modality };
  // One descriptor for both images: 'auto' follows the fixed image's modality.
  const descriptor = concreteDescriptor(source.descriptor, item.fixed, options.modality);
  refuseUnusedDiffusionSettings(settings, descriptor);
  const model = usesDiffusionModel(descriptor) ? source.model?.() : undefined;
  return { descriptor, pair: describePair(descriptor, model, item.fixed, item.moving, options, seed) };
}

export interface FeatureMethodOptions {
  name: string;
  description: string;
  source: FeatureSource;
  /** Dense registration (a field) and/or point matching of the case's landmarks. */
  dense: boolean;
  match: boolean;
  /** How matching searches: after a registration on the same features (default), or the whole image. */
  search?: 'registered' | 'global';
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
        const {
          descriptor,
          pair: [f, m],
        } = features(o.source, item, seed, settings);
        const t1 = performance.now();
        try {
          const result: Omit<RegistrationResult, 'seconds' | 'peakRssMb'> = {};
          const registerOptions = {
            iterations: options.quick ? 10 : undefined,
            maxLatticeVoxels: options.quick ? 24 ** 3 : undefined,
            refine: options.quick ? 0 : undefined,
            ...settings,
            seed,
            progress: options.progress,
          };
          const points = o.match && item.fixedPoints && item.fixedPoints.length > 0 ? item.fixedPoints : null;
          let registration: FeatureRegistration | undefined;
          if (points && (o.search ?? 'registered') === 'registered') {
            const r = registerAndMatch(f, m, item.fixed, item.moving, points, {
              seed,
              consistency: false,
              progress: options.progress,
              register: registerOptions,
            });
            registration = r.registration;
            result.movingPointsPredicted = r.matches.map((x) => x.moving);
            result.pointConfidence = r.matches.map((x) => x.confidence);
          } else if (points) {
            const matches = matchFeatures(f, m, points, item.moving, {
              search: 'global',
              consistency: false,
              progress: options.progress,
            });
            result.movingPointsPredicted = matches.map((x) => x.moving);
            result.pointConfidence = matches.map((x) => x.confidence);
          }
          if (o.dense) {
            registration ??= registerFeatures(f, m, item.fixed, registerOptions);
            const t2 = performance.now();
            const iterations = registerOptions.refine ?? FEATURE_REGISTRATION_DEFAULTS.refine[item.modality];
            result.field =
              iterations > 0
                ? refineField(item, registration.field, { ...registerOptions.refinement, iterations })
                : registration.field;
            const stages = {
              features: (t1 - t0) / 1000,
              registration: (t2 - t1) / 1000,
              refinement: (performance.now() - t2) / 1000,
            };
            result.details = { descriptor, lattice: registration.lattice, stageSeconds: stages };
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
  'search-lattice-voxels',
  'channels',
  'no-diffeomorphic',
  'no-affine',
  'refine',
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

/** What a feature method does with the case: register, or match its landmarks one of two ways. */
const FEATURE_TASKS = [
  { suffix: 'register', dense: true, does: 'affine, then ConvexAdam (PCA 24, diffeomorphic)' },
  {
    suffix: 'match',
    dense: false,
    search: 'registered',
    does: 'point matching around a ConvexAdam registration',
  },
  {
    suffix: 'match-global',
    dense: false,
    search: 'global',
    does: "point matching over the whole image (MedDIFT's)",
  },
] as const;

/** Each descriptor's method-name prefix and description. */
const FEATURE_SOURCES = [
  [
    'default',
    'auto',
    `the default descriptors (${AUTO_DESCRIPTORS.mr} on MR, ${AUTO_DESCRIPTORS.ct} on CT, by the fixed image's modality)`,
  ],
  ['meddift', 'diffusion', DESCRIPTOR_NAMES.diffusion],
  ['mind', 'mind', DESCRIPTOR_NAMES.mind],
  ['patches', 'patches', DESCRIPTOR_NAMES.patches],
  ['fused', 'fused', DESCRIPTOR_NAMES.fused],
  ['classical', 'classical', DESCRIPTOR_NAMES.classical],
] as const satisfies readonly (readonly [string, Descriptor, string])[];

/** What a feature method does (its FEATURE_TASKS suffix), or undefined for other methods. */
function featureTask(method: string): string | undefined {
  const source = FEATURE_SOURCES.find(([prefix]) => method.startsWith(`${prefix}-`));
  return FEATURE_TASKS.find((t) => source && method === `${source[0]}-${t.suffix}`)?.suffix;
}

/** Whether `method` is a feature method (one that takes a descriptor). */
export const isFeatureMethod = (method: string): boolean => featureTask(method) !== undefined;

/**
 * The feature method doing what `method` does (register, match, match-global) on `descriptor`
 * (`--descriptor`): mind + meddift-register → mind-register. A one-line error for other methods.
 */
export function withDescriptor(method: string, descriptor: Descriptor): string {
  const task = featureTask(method);
  if (!task) fail(`method ${method}`, 'takes no --descriptor (only the feature methods do)');
  return `${FEATURE_SOURCES.find(([, d]) => d === descriptor)![0]}-${task}`;
}

/**
 * The feature methods by name: `<source>-register` (ConvexAdam), `<source>-match` (the case's
 * landmarks searched around their registered positions, `diffreg match`'s default) and
 * `<source>-match-global` (searched over the whole image, the reference behaviour) for MedDIFT's
 * diffusion features (`meddift`, the model loaded on first use), MIND-SSC (`mind`), intensity
 * patches (`patches`), the three fused (`fused`; describe.ts) and the two classical ones fused
 * (`classical`). Settings (MedDiftRegisterOptions) apply to the registering ones.
 */
export const featureMethodEntries: MethodEntry[] = FEATURE_SOURCES.flatMap(([prefix, descriptor, what]) =>
  FEATURE_TASKS.map((task): MethodEntry => {
    const name = `${prefix}-${task.suffix}`;
    const description = `${task.does} on ${what}`;
    const dense = task.dense;
    const usesModel = usesDiffusionModel(descriptor);
    return {
      name,
      summary: description,
      dense,
      options: dense ? [...REGISTER_OPTIONS, ...(usesModel ? DIFFUSION_OPTIONS : [])] : [],
      usesModel,
      descriptor,
      create({ model, settings }) {
        if (usesModel && !model) throw new Error(`${name}: the method context has no model`);
        return featureMethod({
          name,
          description,
          source: { descriptor, model: usesModel ? model : undefined },
          dense,
          match: !dense,
          search: dense ? undefined : task.search,
          settings: dense ? (settings as MedDiftRegisterOptions | undefined) : undefined,
        });
      },
    };
  }),
);
