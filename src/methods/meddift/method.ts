/**
 * MedDIFT as the benchmark harness runs it (the RegistrationMethod interface of methods/baselines):
 * point matching of the case's fixed landmarks, and dense registration, from diffusion features or,
 * for the ablation, from classical descriptors through exactly the same matching and optimisation.
 */
import { Generator, dispose } from '../../engine/index.ts';
import {
  measured,
  type RegisterOptions,
  type RegistrationCase,
  type RegistrationMethod,
  type RegistrationResult,
} from '../baselines/method.ts';
import { descriptorFeatures, type DescriptorKind } from '../descriptors/index.ts';
import { imageFeatures, matchFeatures, type ImageFeatures } from './correspond.ts';
import type { DiffusionFeatureModel } from './features.ts';
import { registerFeatures } from './register.ts';

/** Where the features of a case come from: a diffusion model or a classical descriptor. */
export type FeatureSource =
  { kind: 'diffusion'; model: DiffusionFeatureModel } | { kind: 'descriptor'; descriptor: DescriptorKind };

function features(
  source: FeatureSource,
  item: RegistrationCase,
  seed: number,
): [ImageFeatures, ImageFeatures] {
  if (source.kind === 'descriptor') {
    const options = { modality: item.modality };
    return [
      descriptorFeatures(item.fixed, source.descriptor, options, 'fixed image'),
      descriptorFeatures(item.moving, source.descriptor, options, 'moving image'),
    ];
  }
  const f = imageFeatures(
    source.model,
    item.fixed,
    { modality: item.modality, generator: new Generator(seed) },
    'fixed image',
  );
  return [
    f,
    imageFeatures(
      source.model,
      item.moving,
      { modality: item.modality, generator: new Generator(seed + 1) },
      'moving image',
    ),
  ];
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
}

export function featureMethod(o: FeatureMethodOptions): RegistrationMethod {
  return {
    name: o.name,
    description: o.description,
    async register(item: RegistrationCase, options: RegisterOptions = {}): Promise<RegistrationResult> {
      const seed = options.seed ?? 0;
      const { value, seconds, peakRssMb } = await measured(async () => {
        const [f, m] = features(o.source, item, seed);
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
            result.field = registerFeatures(f, m, item.fixed, {
              seed,
              iterations: options.quick ? 10 : undefined,
              maxLatticeVoxels: options.quick ? 24 ** 3 : undefined,
              progress: options.progress,
            }).field;
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

/**
 * The harness's feature methods by name: `<source>-match` (global point matching of the case's
 * landmarks) and `<source>-register` (ConvexAdam) for MedDIFT's diffusion features (`meddift`, the
 * model loaded on first use) and, for the ablation, MIND-SSC (`mind`) and intensity patches (`patches`).
 */
export function featureMethods(model: () => DiffusionFeatureModel): Record<string, () => RegistrationMethod> {
  let loaded: DiffusionFeatureModel | undefined;
  const sources: Record<string, { source: () => FeatureSource; what: string }> = {
    meddift: {
      source: () => ({ kind: 'diffusion', model: (loaded ??= model()) }),
      what: "MedDIFT diffusion features (t=20, the model's feature levels)",
    },
    mind: { source: () => ({ kind: 'descriptor', descriptor: 'mind' }), what: 'MIND-SSC descriptors' },
    patches: {
      source: () => ({ kind: 'descriptor', descriptor: 'patches' }),
      what: 'intensity patches (NCC)',
    },
  };
  const methods: Record<string, () => RegistrationMethod> = {};
  for (const [prefix, { source, what }] of Object.entries(sources)) {
    for (const dense of [false, true]) {
      const name = `${prefix}-${dense ? 'register' : 'match'}`;
      methods[name] = () =>
        featureMethod({
          name,
          description: dense
            ? `ConvexAdam (PCA 24, diffeomorphic) on ${what}`
            : `point matching (global search) on ${what}`,
          source: source(),
          dense,
          match: !dense,
        });
    }
  }
  return methods;
}
