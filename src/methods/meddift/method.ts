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
