/**
 * `diffreg register`: dense deformable registration by any method of the registry (src/methods/method.ts);
 * MedDIFT's diffusion descriptors + ConvexAdam by default.
 */
import { pngUnwritable, writeVolume } from '../../io/index.ts';
import { fieldToVoxelUnits } from '../../geometry/field.ts';
import { warpVolume } from '../../geometry/warp.ts';
import type { Volume } from '../../geometry/volume.ts';
import { jacobianStats } from '../../eval/metrics.ts';
import { DIFFUSEREG_GUIDANCE, type DiffuseRegSettings } from '../../methods/diffusereg/method.ts';
import { CONVEX_ADAM_DEFAULTS as CONVEX } from '../../methods/dense/convex-adam.ts';
import { REFINE_DEFAULTS } from '../../methods/dense/refine.ts';
import {
  concreteDescriptor,
  DEFAULT_DESCRIPTOR,
  DESCRIPTORS,
  FEATURE_REGISTRATION_DEFAULTS as LATTICE,
  withDescriptor,
} from '../../methods/meddift/index.ts';
import { METHODS, methodEntry } from '../../methods/method.ts';
import { oneOf } from '../../util/is.ts';
import { guessModality, type LatentDiffusionModel } from '../../models/index.ts';
import { DiffregError, fail } from '../../util/errors.ts';
import { optionalInteger, optionalNumber, required, type Command } from '../args.ts';
import { MODEL_HELP, MODEL_INPUTS, MODEL_OPTIONS, modelLoader, refuseUnusedModel } from '../model.ts';
import { VOLUME_EXTENSIONS, checkOutputs } from '../outputs.ts';
import { terminalProgress } from '../progress.ts';
import { applyThreads, printJson, readImage } from './common.ts';
import {
  DESCRIPTOR_HELP,
  FEATURE_HELP,
  FEATURE_OPTIONS,
  checkFeatureOptions,
  featureOptions,
} from './match.ts';

const OUTPUTS = ['out-field', 'out-learn2reg', 'out-warped', 'out-labels', 'out-uncertainty'];

/** The method when --method is not given: the feature registration on the default descriptor. */
const DEFAULT_METHOD = withDescriptor('meddift-register', DEFAULT_DESCRIPTOR);
/** The registry's methods that give a displacement field. */
const DENSE_METHODS = METHODS.filter((m) => m.dense);
/** Flags that belong to some method; each method accepts only its own. */
const METHOD_FLAGS = [...new Set(METHODS.flatMap((m) => m.options))];
/** The methods that register 2-D images (and stacks slice by slice). */
const METHODS_2D = METHODS.filter((m) => m.accepts2d).map((m) => m.name);
/** Outputs of images on the fixed grid, which a 2-D registration may also write as PNG. */
const IMAGE_OUTPUTS = ['out-warped', 'out-labels'];

/**
 * A PNG output of a 2-D registration, checked once the inputs are read and before any model is loaded:
 * one 2-D fixed slice, and values (those of `values`, the image warped) that fit 8 bits.
 */
function checkPngOutput(option: string, fixed: Volume, values: Volume): void {
  const problem = pngUnwritable(fixed.dims[2] === 1 ? values : fixed);
  if (problem) fail(`--${option}`, problem);
}

/** DiffuseReg's sampling options (DiffuseRegSettings), checked as the sampler checks them. */
function diffuseRegSettings(values: Record<string, unknown>): DiffuseRegSettings {
  const strength = (name: string) => optionalNumber(values, name, { min: 0 });
  return {
    sampler:
      values.sampler === undefined
        ? undefined
        : oneOf('--sampler', values.sampler, ['ddpm', 'ddim'] as const),
    steps: optionalInteger(values, 'steps', { min: 1, max: 2000 }),
    samples: optionalInteger(values, 'samples', { min: 1, max: 64 }),
    seed: optionalInteger(values, 'seed', { min: 0 }),
    guidance: {
      folding: strength('guide-folding'),
      smoothness: strength('guide-smoothness'),
      similarity: strength('guide-similarity'),
    },
    tolerance: optionalNumber(values, 'tolerance', { min: 0 }),
    refine: optionalInteger(values, 'refine', { min: 0, max: 10000 }),
    watch: typeof values.watch === 'string' ? values.watch : undefined,
    every: optionalInteger(values, 'every', { min: 1 }),
  };
}

export const registerCommand: Command = {
  name: 'register',
  summary: 'dense deformable registration of the moving image onto the fixed image',
  usage: 'diffreg register --fixed IMAGE --moving IMAGE --out-field FILE [--out-warped FILE] [options]',
  options: {
    method: { type: 'string' },
    descriptor: { type: 'string' },
    fixed: { type: 'string' },
    moving: { type: 'string' },
    'moving-labels': { type: 'string' },
    'out-field': { type: 'string' },
    'out-learn2reg': { type: 'string' },
    'out-warped': { type: 'string' },
    'out-labels': { type: 'string' },
    'out-uncertainty': { type: 'string' },
    sampler: { type: 'string' },
    steps: { type: 'string' },
    samples: { type: 'string' },
    watch: { type: 'string' },
    every: { type: 'string' },
    'guide-folding': { type: 'string' },
    'guide-smoothness': { type: 'string' },
    'guide-similarity': { type: 'string' },
    tolerance: { type: 'string' },
    refine: { type: 'string' },
    'search-radius': { type: 'string' },
    smoothness: { type: 'string' },
    iterations: { type: 'string' },
    'lattice-voxels': { type: 'string' },
    'search-lattice-voxels': { type: 'string' },
    channels: { type: 'string' },
    'no-diffeomorphic': { type: 'boolean' },
    'no-affine': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    ...FEATURE_OPTIONS,
    ...MODEL_OPTIONS,
  },
  help: [
    ['--method NAME', `registration method (default ${DEFAULT_METHOD}):`],
    ...DENSE_METHODS.map((m): [string, string] => [`  ${m.name}`, m.summary]),
    ['--descriptor NAME', `with a feature method: ${DESCRIPTOR_HELP}`],
    ['--fixed IMAGE', `fixed image (3-D; for ${METHODS_2D.join(', ')} also 2-D: PNG or one-slice NIfTI)`],
    ['--moving IMAGE', 'moving image'],
    ['--moving-labels IMAGE', 'label map on the moving image, warped with nearest neighbour'],
    ['--out-field FILE', 'displacement field, ITK vector NIfTI (LPS mm, warped(p) = moving(p + u(p)))'],
    ['--out-learn2reg FILE', 'the same field in Learn2Reg voxel units'],
    ['--out-warped FILE', 'moving image warped onto the fixed grid (a 2-D pair: .png too)'],
    ['--out-labels FILE', 'moving labels warped onto the fixed grid'],
    ['--search-radius N', `correlation search half-width in lattice voxels (default ${CONVEX.searchRadius})`],
    ['--smoothness L', `diffusion regularisation weight (default ${CONVEX.smoothness})`],
    [
      '--iterations N',
      `Adam instance-optimisation iterations (default ${LATTICE.iterations.mr} on MR, ${LATTICE.iterations.ct} on CT)`,
    ],
    [
      '--lattice-voxels N',
      `upper bound on working-lattice voxels (default ${LATTICE.maxLatticeVoxels.mr} on MR, ${LATTICE.maxLatticeVoxels.ct} on CT)`,
    ],
    [
      '--search-lattice-voxels N',
      `upper bound on the correlation search's lattice voxels (default ${LATTICE.maxSearchLatticeVoxels})`,
    ],
    ['--channels N', `descriptor channels kept by PCA (default ${LATTICE.channels})`],
    ['--no-diffeomorphic', 'optimise displacements directly instead of a velocity field'],
    ['--no-affine', 'no affine pre-alignment before the deformable stages'],
    [
      '--refine N',
      `Adam iterations of a local-NCC refinement of the field on the images (feature methods: default ${LATTICE.refine.mr} on MR, ${LATTICE.refine.ct} on CT; diffusereg: ${REFINE_DEFAULTS.iterations}; 0: off)`,
    ],
    ['diffusereg:', ''],
    ['--sampler ddpm|ddim', 'ancestral DDPM over all 2000 steps (the paper) or DDIM (default)'],
    ['--steps N', 'DDIM steps (default 10; DDPM always 2000)'],
    ['--samples N', 'fields drawn and averaged (default 1); with 2+, --out-uncertainty'],
    ['--out-uncertainty FILE', 'spread of the samples per voxel (mm)'],
    ['--watch DIR --every K', 'every K steps: the predicted field, the warped image and strip.png'],
    ['--guide-folding S', 'guidance against det J ≤ 0 during sampling (strength, default 0)'],
    ['--guide-smoothness S', 'guidance toward a smooth field (default 0)'],
    [
      '--guide-similarity S',
      `guidance toward a warped moving image like the fixed one (default ${DIFFUSEREG_GUIDANCE.similarity})`,
    ],
    ['--tolerance V', 'stop when the predicted field changes less than V network voxels (default 0: off)'],
    ...FEATURE_HELP,
    ...MODEL_HELP,
  ],
  async run(values) {
    applyThreads(values);
    // Every option and output is checked before any file is read or any model is loaded; the bounds
    // are ConvexAdam's and the lattice's (methods/dense/convex-adam.ts, methods/meddift/register.ts).
    const outField = required(values, 'out-field');
    if (values['out-labels'] && !values['moving-labels'])
      throw new DiffregError('--out-labels: needs --moving-labels');
    if (values['moving-labels'] && !values['out-labels'])
      throw new DiffregError('--moving-labels: needs --out-labels (where to write them warped)');
    const named = typeof values.method === 'string' ? values.method : DEFAULT_METHOD;
    const entry = methodEntry(
      values.descriptor === undefined
        ? named
        : withDescriptor(named, oneOf('--descriptor', values.descriptor, DESCRIPTORS)),
    );
    if (!entry.dense) throw new DiffregError(`--method: ${entry.name} matches points; use diffreg match`);
    const foreign = METHOD_FLAGS.find((f) => values[f] !== undefined && !entry.options.includes(f));
    if (foreign) throw new DiffregError(`--${foreign}: not an option of method ${entry.name}`);
    const modelGiven = MODEL_INPUTS.find((o) => values[o] !== undefined);
    if (modelGiven && !entry.usesModel)
      throw new DiffregError(`--${modelGiven}: method ${entry.name} uses no diffusion model`);
    const features = featureOptions(values);
    if (values['out-uncertainty'] && !(Number(values.samples) >= 2))
      throw new DiffregError('--out-uncertainty: needs --samples 2 or more');
    if (values.every !== undefined && !values.watch) throw new DiffregError('--every: only with --watch');
    const settings =
      entry.name === 'diffusereg'
        ? diffuseRegSettings(values)
        : {
            ...features,
            searchRadius: optionalInteger(values, 'search-radius', { min: 1, max: 12 }),
            smoothness: optionalNumber(values, 'smoothness', { min: 0 }),
            iterations: optionalInteger(values, 'iterations', { min: 0, max: 10000 }),
            maxLatticeVoxels: optionalInteger(values, 'lattice-voxels', { min: 512, max: 256 ** 3 }),
            maxSearchLatticeVoxels: optionalInteger(values, 'search-lattice-voxels', {
              min: 512,
              max: Number(values['lattice-voxels'] ?? Math.max(...Object.values(LATTICE.maxLatticeVoxels))),
            }),
            channels: optionalInteger(values, 'channels', { min: 1, max: 1024 }),
            diffeomorphic: values['no-diffeomorphic'] ? false : undefined,
            affine: values['no-affine'] ? false : undefined,
            refine: optionalInteger(values, 'refine', { min: 0, max: 10000 }),
          };
    const [fixedPath, movingPath] = ['fixed', 'moving'].map((o) => required(values, o));
    const loadModel = entry.usesModel ? modelLoader(values) : undefined;
    const outputs = OUTPUTS.filter((o) => typeof values[o] === 'string').map((option) => ({
      option,
      path: values[option] as string,
      extensions: (entry.accepts2d && IMAGE_OUTPUTS.includes(option)
        ? [...VOLUME_EXTENSIONS, '.png']
        : VOLUME_EXTENSIONS) as readonly string[] | undefined,
    }));
    if (typeof values.watch === 'string')
      outputs.push({ option: 'watch', path: values.watch, extensions: undefined });
    checkOutputs(outputs, values, ['fixed', 'moving', 'moving-labels', ...MODEL_INPUTS]);
    const fixed = await readImage(fixedPath, 'fixed', entry.accepts2d);
    const moving = await readImage(movingPath, 'moving', entry.accepts2d);
    const labels =
      typeof values['moving-labels'] === 'string'
        ? await readImage(values['moving-labels'], 'moving label', entry.accepts2d)
        : undefined;
    for (const [option, image] of [
      ['out-warped', moving],
      ['out-labels', labels],
    ] as const)
      if (image && String(values[option]).toLowerCase().endsWith('.png'))
        checkPngOutput(option, fixed, image);
    // Loaded when the method first asks (the default descriptor on CT uses none), its options checked then.
    let model: LatentDiffusionModel | undefined;
    const method = entry.create({
      model:
        loadModel &&
        (() => {
          if (!model) {
            model = loadModel();
            checkFeatureOptions(model, features);
          }
          return model;
        }),
      settings,
    });
    const item = {
      id: 'register',
      fixed,
      moving,
      modality: features.modality === 'auto' ? guessModality(fixed) : features.modality,
    };
    if (entry.descriptor)
      refuseUnusedModel(values, concreteDescriptor(entry.descriptor, fixed, item.modality));
    const result = await method.register(item, { seed: features.seed, progress: terminalProgress() });
    if (!result.field) throw new Error(`method ${entry.name} returned no field`);
    await writeVolume(outField, result.field);
    if (typeof values['out-learn2reg'] === 'string')
      await writeVolume(values['out-learn2reg'], fieldToVoxelUnits(result.field));
    if (typeof values['out-warped'] === 'string')
      await writeVolume(values['out-warped'], warpVolume(moving, result.field));
    if (result.uncertainty && typeof values['out-uncertainty'] === 'string')
      await writeVolume(values['out-uncertainty'], result.uncertainty);
    if (labels && typeof values['out-labels'] === 'string') {
      await writeVolume(values['out-labels'], warpVolume(labels, result.field, { interpolation: 'nearest' }));
    }
    const jac = jacobianStats(result.field);
    const summary = {
      field: outField,
      method: entry.name,
      diffusionModelLoaded: model !== undefined,
      ...result.details,
      jacobian: {
        percentNonPositive: jac.percentNonPositive,
        sdLogJ: jac.sdLogJ,
        min: jac.min,
        max: jac.max,
      },
      seconds: result.seconds,
    };
    if (values.json) printJson(summary);
    else {
      process.stderr.write(
        `field → ${outField}; det J ≤ 0 at ${jac.percentNonPositive.toFixed(3)} % of voxels, SDlogJ ${jac.sdLogJ.toFixed(3)}\n`,
      );
    }
    return 0;
  },
};
