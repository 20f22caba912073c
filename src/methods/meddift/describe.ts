/**
 * The descriptors matching and dense registration run on, by name: the diffusion model's feature
 * levels (MedDIFT), MIND-SSC, intensity patches, and the fused descriptors — all three, or the two
 * classical ones ('classical', the fused descriptor without the model), on the same RAS grid as one
 * feature set, each a level of its own, so that matching and registration normalise every level per
 * voxel, weight them by group (FUSED_WEIGHTS, a group's weight split evenly over its levels)
 * and, in registration, take one joint PCA of them all.
 */
import { Generator } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import type { Volume } from '../../geometry/volume.ts';
import type { Modality } from '../../data/case.ts';
import { guessModality, toNetworkInput } from '../../models/preprocess.ts';
import { descriptorFeatures } from '../descriptors/index.ts';
import {
  imageFeatures,
  pairFeatures,
  type Descriptor,
  type ImageFeatures,
  type MedDiftMatchOptions,
} from './correspond.ts';
import type { DiffusionFeatureModel } from './features.ts';

/** The fused descriptor's group weights. */
export const FUSED_WEIGHTS = { diffusion: 1, mind: 1, patches: 1 };

/** A descriptor that names one description ('auto' resolved). */
export type ConcreteDescriptor = Exclude<Descriptor, 'auto'>;

/** What each descriptor is, for help texts and reports. */
export const DESCRIPTOR_NAMES: Readonly<Record<ConcreteDescriptor, string>> = {
  diffusion: "MedDIFT diffusion features (t=20, the model's feature levels)",
  mind: 'MIND-SSC descriptors',
  patches: 'intensity patches (NCC)',
  fused: 'diffusion features, MIND-SSC and intensity patches fused',
  classical: 'MIND-SSC and intensity patches fused (no model)',
};

/**
 * What 'auto' stands for, by the fixed image's modality. Chosen on the validation subsets and
 * re-checked there with the final pipeline (bench/ablation/RESULTS.md, 2026-12-07; Dice / TRE): MR —
 * fused has the best mean over LPBA40 S11–S12 and ACDC 002/022/042 (0.700 / 0.832; classical 0.673 /
 * 0.840, diffusion 0.682 / 0.835); CT — MIND-SSC 0.218 mm on synthetic lung cases 1–2 (fused 0.331,
 * diffusion 1.97): the diffusion features of the default model make CT worse.
 */
export const AUTO_DESCRIPTORS: Readonly<Record<Modality, ConcreteDescriptor>> = { mr: 'fused', ct: 'mind' };

/** `descriptor`, or for 'auto' the one of the fixed image's modality (given, or guessed from its intensities). */
export function concreteDescriptor(
  descriptor: Descriptor,
  fixed: Volume,
  modality: Modality | 'auto' = 'auto',
): ConcreteDescriptor {
  if (descriptor !== 'auto') return descriptor;
  return AUTO_DESCRIPTORS[modality === 'auto' ? guessModality(fixed) : modality];
}

/** Whether the descriptor needs (for 'auto': may need) the diffusion model. */
export const usesDiffusionModel = (d: Descriptor): boolean =>
  d !== 'mind' && d !== 'patches' && d !== 'classical';

/** The settings only the diffusion model's features read. */
const DIFFUSION_SETTINGS = ['timestep', 'levels', 'noiseDraws', 'region', 'levelWeights'] as const;

/**
 * Refuses, in one line, a diffusion-feature setting given for a pair whose descriptor uses no
 * diffusion model (it would be silently ignored).
 */
export function refuseUnusedDiffusionSettings(
  settings: Partial<Record<(typeof DIFFUSION_SETTINGS)[number], unknown>>,
  descriptor: ConcreteDescriptor,
): void {
  if (usesDiffusionModel(descriptor)) return;
  const given = DIFFUSION_SETTINGS.find((k) => settings[k] !== undefined);
  if (given)
    fail(given, `only with the diffusion model's features; the descriptor of this pair is ${descriptor}`);
}

/** The named descriptor of one image (`model` only for those that use it). */
export function describeImage(
  descriptor: ConcreteDescriptor,
  model: DiffusionFeatureModel | undefined,
  volume: Volume,
  options: MedDiftMatchOptions & { generator: Generator },
  subject: string,
): ImageFeatures {
  if (descriptor === 'mind' || descriptor === 'patches')
    return descriptorFeatures(volume, descriptor, options, subject);
  if (descriptor === 'diffusion')
    return imageFeatures(requireModel(descriptor, model), volume, options, subject);
  // The fused descriptors: every part from one conversion of the image to the network input.
  const input = toNetworkInput(volume, options.modality ?? 'auto', subject);
  try {
    const diffusion =
      descriptor === 'fused'
        ? imageFeatures(requireModel(descriptor, model), input, options, subject)
        : undefined;
    const [mind, patches] = (['mind', 'patches'] as const).map((kind) =>
      descriptorFeatures(input, kind, options, subject),
    );
    const first = diffusion ?? mind;
    const n = diffusion?.grid.levels.length ?? 0;
    return {
      ...first,
      grid: {
        ...first.grid,
        levels: [...(diffusion?.grid.levels ?? []), ...mind.grid.levels, ...patches.grid.levels],
        weights: [
          ...new Array<number>(n).fill(FUSED_WEIGHTS.diffusion / n),
          FUSED_WEIGHTS.mind,
          FUSED_WEIGHTS.patches,
        ],
      },
    };
  } finally {
    input.image.dispose();
  }
}

/** The model a descriptor needs (an internal error without one: the method entries load it). */
function requireModel(descriptor: ConcreteDescriptor, model?: DiffusionFeatureModel): DiffusionFeatureModel {
  if (!model) throw new Error(`descriptor ${descriptor}: no diffusion model given`);
  return model;
}

/**
 * Both images of a pair under one descriptor (correspond.ts pairFeatures: the moving image on the fixed
 * image's axes), the fixed image's noise drawn from Generator(seed), the moving image's from seed + 1.
 */
export function describePair(
  descriptor: ConcreteDescriptor,
  model: DiffusionFeatureModel | undefined,
  fixed: Volume,
  moving: Volume,
  options: MedDiftMatchOptions,
  seed: number,
): [ImageFeatures, ImageFeatures] {
  return pairFeatures(fixed, moving, (volume, subject, side) =>
    describeImage(descriptor, model, volume, { ...options, generator: new Generator(seed + side) }, subject),
  );
}
