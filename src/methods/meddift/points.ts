/**
 * `medDiftMatch`: MedDIFT's point correspondence between two volumes, end to end. By default
 * ('registered' search) a dense registration on the same features gives the matches (registerAndMatch):
 * a search over the whole image gets the motion wrong wherever the anatomy repeats (ribs, vessels,
 * vertebrae; 49.96 mm mean TRE on the synthetic lung cases against 10.66 without registration).
 * 'local' searches around a given initial estimate, 'global' the whole image (MedDIFT's reference).
 */
import { dispose } from '../../engine/index.ts';
import type { Vec3, Volume } from '../../geometry/volume.ts';
import { warpPoints } from '../../geometry/warp.ts';
import { fail } from '../../util/errors.ts';
import {
  checkMatchOptions,
  DEFAULT_DESCRIPTOR,
  matchFeatures,
  SEARCH_RADIUS_MM,
  voxelsOf,
  type ImageFeatures,
  type MedDiftMatchOptions,
  type MedDiftMatchResult,
  type PointMatch,
} from './correspond.ts';
import {
  concreteDescriptor,
  describePair,
  refuseUnusedDiffusionSettings,
  usesDiffusionModel,
} from './describe.ts';
import type { DiffusionFeatureModel, FeatureOptions } from './features.ts';
import { registerFeatures, type FeatureRegistration, type MedDiftRegisterOptions } from './register.ts';

/** What matching on precomputed features reads. */
type MatchSettings = Pick<
  MedDiftMatchOptions,
  'radiusMm' | 'levelWeights' | 'seed' | 'subvoxel' | 'consistency' | 'slabVoxels' | 'progress'
>;

/**
 * Dense registration on precomputed features (`register`: ConvexAdam's settings); each fixed point's
 * match is its registered position p + u(p), scored by a search of the descriptors within `radiusMm`
 * (default SEARCH_RADIUS_MM.registered) around it: similarity, competing peak and confidence are the
 * search's. The search's own best voxel is not returned: on the synthetic lung validation cases 1–5
 * it moved every point away from the truth at every radius (diffusion features: registration 1.5–2.3
 * mm, search within 2 mm 3.0–3.8, within 6 mm 5.4–6.9; MIND-SSC, cases 1–2: 0.21–0.22 against
 * 0.73–0.84): the regularised field is more precise than any single voxel's best descriptor match.
 */
export function registerAndMatch(
  f: ImageFeatures,
  m: ImageFeatures,
  fixed: Volume,
  moving: Volume,
  fixedPoints: readonly Vec3[],
  options: MatchSettings & {
    register?: Omit<MedDiftRegisterOptions, keyof FeatureOptions | 'modality'>;
  } = {},
): {
  registration: FeatureRegistration;
  matches: PointMatch[];
  seconds: { registration: number; matching: number };
} {
  const t0 = performance.now();
  const registration = registerFeatures(f, m, fixed, {
    seed: options.seed,
    levelWeights: options.levelWeights,
    progress: options.progress,
    ...options.register,
  });
  const t1 = performance.now();
  const searched = matchFeatures(f, m, fixedPoints, moving, {
    ...options,
    search: 'local',
    initial: { kind: 'field', field: registration.field },
    radiusMm: options.radiusMm ?? SEARCH_RADIUS_MM.registered,
  });
  const registered = warpPoints(fixedPoints, registration.field);
  const matches = searched.map((x, i) => ({
    ...x,
    moving: registered[i],
    movingVoxel: moving.worldToVoxel(registered[i]),
  }));
  const seconds = { registration: (t1 - t0) / 1000, matching: (performance.now() - t1) / 1000 };
  return { registration, matches, seconds };
}

/**
 * `model`: the diffusion model, or its loader, called only when the pair's descriptor uses it (the
 * default descriptor on CT does not).
 */
export function medDiftMatch(
  model: DiffusionFeatureModel | (() => DiffusionFeatureModel),
  fixed: Volume,
  moving: Volume,
  fixedPoints: readonly Vec3[],
  options: MedDiftMatchOptions = {},
): MedDiftMatchResult {
  const given = typeof model === 'function' ? undefined : model;
  checkMatchOptions(given, options);
  if (fixedPoints.length === 0) fail('points', 'no query points given');
  voxelsOf(fixed, fixedPoints, 'fixed points');
  const seed = options.seed ?? 0;
  const search = options.search ?? 'registered';
  const t0 = performance.now();
  const descriptor = concreteDescriptor(options.descriptor ?? DEFAULT_DESCRIPTOR, fixed, options.modality);
  refuseUnusedDiffusionSettings(options, descriptor);
  const featureModel = usesDiffusionModel(descriptor)
    ? (given ?? (model as () => DiffusionFeatureModel)())
    : undefined;
  const [f, m] = describePair(descriptor, featureModel, fixed, moving, options, seed);
  try {
    const t1 = performance.now();
    const modality = { fixed: f.modality, moving: m.modality };
    const features = (t1 - t0) / 1000;
    if (search === 'registered') {
      const { matches, seconds } = registerAndMatch(f, m, fixed, moving, fixedPoints, options);
      return { matches, modality, seconds: { features, ...seconds } };
    }
    const matches = matchFeatures(f, m, fixedPoints, moving, { ...options, search });
    return {
      matches,
      modality,
      seconds: { features, registration: 0, matching: (performance.now() - t1) / 1000 },
    };
  } finally {
    dispose([...f.grid.levels, ...m.grid.levels]);
  }
}
