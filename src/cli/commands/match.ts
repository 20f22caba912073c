/** `diffreg match`: MedDIFT point correspondence between two images. */
import { extname } from 'node:path';
import {
  Landmarks,
  readLandmarks,
  writeLandmarks,
  LANDMARK_FORMATS,
  type LandmarkFormat,
} from '../../io/index.ts';
import {
  checkLevels,
  AUTO_DESCRIPTORS,
  DEFAULT_DESCRIPTOR,
  DESCRIPTORS,
  concreteDescriptor,
  medDiftMatch,
  SEARCH_MODES,
  SEARCH_RADIUS_MM,
  MEDDIFT_TIMESTEP,
  type DiffusionFeatureModel,
  type MedDiftMatchResult,
  type PointMatch,
} from '../../methods/meddift/index.ts';
import { BODY_REGIONS, type BodyRegion } from '../../models/index.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { DiffregError, fail } from '../../util/errors.ts';
import { integer, invalid, oneOf } from '../../util/is.ts';
import { levelList, numberList, optionalInteger, optionalNumber, required, type Command } from '../args.ts';
import { MODEL_HELP, MODEL_INPUTS, MODEL_OPTIONS, modelLoader, refuseUnusedModel } from '../model.ts';
import { checkOutputs } from '../outputs.ts';
import { terminalProgress } from '../progress.ts';
import { applyThreads, printJson, readImage, readInitialTransform } from './common.ts';

/** --descriptor's help line (match, register, bench). */
export const DESCRIPTOR_HELP = `auto (${AUTO_DESCRIPTORS.mr} on MR, ${AUTO_DESCRIPTORS.ct} on CT), diffusion (the model's features), mind (MIND-SSC), patches (intensities), fused (all three) or classical (MIND-SSC and patches fused, no model); default ${DEFAULT_DESCRIPTOR}`;

export const FEATURE_OPTIONS = {
  timestep: { type: 'string' },
  'noise-draws': { type: 'string' },
  levels: { type: 'string' },
  'level-weights': { type: 'string' },
  seed: { type: 'string' },
  threads: { type: 'string' },
  modality: { type: 'string' },
  'region-top': { type: 'string' },
  'region-bottom': { type: 'string' },
  json: { type: 'boolean' },
} as const;

export const FEATURE_HELP: [string, string][] = [
  ['--timestep T', `diffusion timestep of the features, 0–999 (default ${MEDDIFT_TIMESTEP})`],
  ['--noise-draws N', 'average features over N noise draws (default 1)'],
  [
    '--levels 0123',
    "decoder levels used, coarse (0) to fine (3) (default: the model's setting, 2 for the default model; all for MAISI)",
  ],
  ['--level-weights W,…', 'weight per level (default equal)'],
  ['--seed N', 'random seed of the latent sampling and noise (default 0)'],
  ['--modality ct|mr|auto', 'intensity normalisation (default auto: CT if the image holds air in HU)'],
  [
    '--region-top R, --region-bottom R',
    `body region conditioning: ${BODY_REGIONS.join(', ')} (default chest)`,
  ],
  ['--threads N', 'CPU threads (default all cores)'],
  ['--json', 'print a JSON summary on stdout'],
];

/** The feature options, checked as far as they do not depend on the model (see checkFeatureOptions). */
export function featureOptions(values: Record<string, unknown>) {
  const region = (name: string) => oneOf(`--${name}`, values[name] ?? 'chest', BODY_REGIONS) as BodyRegion;
  const levelWeights = numberList(values, 'level-weights');
  if (levelWeights && (levelWeights.some((w) => w < 0) || levelWeights.every((w) => w === 0)))
    throw invalid('--level-weights', 'weights >= 0, at least one positive', values['level-weights']);
  return {
    timestep: optionalInteger(values, 'timestep', { min: 0 }),
    noiseDraws: optionalInteger(values, 'noise-draws', { min: 1, max: 64 }),
    levels: levelList(values, 'levels'),
    levelWeights,
    seed: optionalInteger(values, 'seed', { min: 0 }),
    modality: oneOf('--modality', values.modality ?? 'auto', ['ct', 'mr', 'auto'] as const),
    // Absent unless given, so that a pair whose descriptor uses no diffusion model accepts the defaults.
    region:
      values['region-top'] === undefined && values['region-bottom'] === undefined
        ? undefined
        : { top: region('region-top'), bottom: region('region-bottom') },
  };
}

/**
 * The feature options whose bounds depend on the model (its number of timesteps and of decoder
 * levels), checked once it is loaded and before any computation, in the CLI's option names.
 */
export function checkFeatureOptions(
  model: DiffusionFeatureModel,
  options: ReturnType<typeof featureOptions>,
): void {
  if (options.timestep !== undefined)
    integer('--timestep', options.timestep, { min: 0, max: model.scheduler.numTrainTimesteps - 1 });
  const n = model.decoderLevels;
  if (options.levels?.some((l) => l >= n))
    throw invalid('--levels', `levels 0 to ${n - 1} (the model has ${n})`, options.levels.join(','));
  const levels = checkLevels(model, options.levels);
  if (options.levelWeights && options.levelWeights.length !== levels.length) {
    fail(
      '--level-weights',
      `expected ${levels.length} weights, one per level (${levels.join(',')}), got ${options.levelWeights.length}`,
    );
  }
}

/** What --out can be: the matches as CSV or JSON, or the matched points as a landmark file. */
const MATCH_EXTENSIONS = ['.csv', '.json', '.pts', '.txt'];

function csv(matches: PointMatch[]): string {
  const header =
    'index,fixed_x,fixed_y,fixed_z,moving_x,moving_y,moving_z,moving_i,moving_j,moving_k,similarity,second_peak,back_error_mm,confidence';
  const fmt = (v: number) => (Number.isFinite(v) ? String(Math.round(v * 1e4) / 1e4) : '');
  const rows = matches.map((m, i) =>
    [i, ...m.fixed, ...m.moving, ...m.movingVoxel, m.similarity, m.secondPeak, m.backErrorMm, m.confidence]
      .map(fmt)
      .join(','),
  );
  return `# world coordinates in LPS mm; moving_i/j/k are 0-based voxel indices of the moving image\n${header}\n${rows.join('\n')}\n`;
}

function writeMatches(
  path: string,
  result: MedDiftMatchResult,
  reference: Parameters<typeof writeLandmarks>[2],
): void {
  const lower = path.toLowerCase();
  if (lower.endsWith('.csv')) return writeFileAtomic(path, csv(result.matches));
  if (lower.endsWith('.json') && !lower.endsWith('.mrk.json'))
    return writeFileAtomic(path, `${JSON.stringify({ coordinateSystem: 'LPS', ...result }, null, 2)}\n`);
  const points = new Landmarks(
    result.matches.map((m) => m.moving),
    result.matches.map((_, i) => `match-${i}`),
  );
  writeLandmarks(path, points, reference);
}

export const matchCommand: Command = {
  name: 'match',
  summary: 'find the points of the moving image that correspond to given points of the fixed image (MedDIFT)',
  usage: 'diffreg match --fixed IMAGE --moving IMAGE --points FILE --out FILE [options]',
  options: {
    fixed: { type: 'string' },
    moving: { type: 'string' },
    points: { type: 'string' },
    'points-format': { type: 'string' },
    out: { type: 'string' },
    descriptor: { type: 'string' },
    search: { type: 'string' },
    radius: { type: 'string' },
    initial: { type: 'string' },
    'no-subvoxel': { type: 'boolean' },
    'no-consistency': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    ...FEATURE_OPTIONS,
    ...MODEL_OPTIONS,
  },
  help: [
    ['--fixed IMAGE', 'fixed image (NIfTI, MetaImage, NRRD, DICOM folder)'],
    ['--moving IMAGE', 'moving image'],
    ['--points FILE', `query points on the fixed image (${LANDMARK_FORMATS.join(', ')})`],
    ['--points-format F', 'landmark format when the extension is ambiguous'],
    [
      '--out FILE',
      'matches: .csv or .json; or the matched points: .mrk.json (3D Slicer), .pts (POPI), .txt (elastix)',
    ],
    ['--descriptor NAME', DESCRIPTOR_HELP],
    [
      '--search MODE',
      'registered (default): the positions of a dense registration on the same features, scored by a search around them; local: the best match around --initial; global: over the whole image',
    ],
    [
      '--radius MM',
      `search radius in mm (default ${SEARCH_RADIUS_MM.registered} registered, ${SEARCH_RADIUS_MM.local} local)`,
    ],
    [
      '--initial FILE',
      'with --search local: 4x4 LPS matrix (.txt) or displacement field image (default identity)',
    ],
    ['--no-subvoxel', 'integer voxel matches (no parabolic refinement)'],
    ['--no-consistency', 'skip the backward match (faster; no back_error_mm)'],
    ...FEATURE_HELP,
    ...MODEL_HELP,
  ],
  async run(values) {
    applyThreads(values);
    // Every option and output is checked before any file is read or any model is loaded.
    const out = required(values, 'out');
    const features = featureOptions(values);
    const descriptor = oneOf('--descriptor', values.descriptor ?? DEFAULT_DESCRIPTOR, DESCRIPTORS);
    if (features.levelWeights && descriptor !== 'diffusion')
      throw new DiffregError('--level-weights: only with --descriptor diffusion');
    const search = oneOf('--search', values.search ?? 'registered', SEARCH_MODES);
    const radiusMm = optionalNumber(values, 'radius', { min: 0, exclusiveMin: true });
    if (radiusMm !== undefined && search === 'global')
      throw new DiffregError('--radius: only with --search registered or local');
    if (values.initial !== undefined && search !== 'local')
      throw new DiffregError('--initial: only with --search local');
    const format =
      values['points-format'] === undefined
        ? undefined
        : (oneOf('--points-format', values['points-format'], LANDMARK_FORMATS) as LandmarkFormat);
    const [fixedPath, movingPath, pointsPath] = ['fixed', 'moving', 'points'].map((o) => required(values, o));
    const loadModel = modelLoader(values);
    checkOutputs([{ option: 'out', path: out, extensions: MATCH_EXTENSIONS }], values, [
      'fixed',
      'moving',
      'points',
      'initial',
      ...MODEL_INPUTS,
    ]);
    const fixed = await readImage(fixedPath, 'fixed');
    refuseUnusedModel(values, concreteDescriptor(descriptor, fixed, features.modality));
    const moving = await readImage(movingPath, 'moving');
    const points = readLandmarks(pointsPath, { format, reference: fixed });
    const initial =
      typeof values.initial === 'string' ? await readInitialTransform(values.initial) : undefined;
    // Loaded only if the pair's descriptor uses it (the default on CT does not), its options checked then.
    let loaded = false;
    const model = () => {
      const m = loadModel();
      checkFeatureOptions(m, features);
      loaded = true;
      return m;
    };
    const result = medDiftMatch(
      model,
      fixed,
      moving,
      Array.from({ length: points.count }, (_, i) => points.point(i)),
      {
        ...features,
        descriptor,
        search,
        radiusMm,
        initial,
        subvoxel: !values['no-subvoxel'],
        consistency: !values['no-consistency'],
        progress: terminalProgress(),
      },
    );
    writeMatches(out, result, { reference: moving, format: extname(out) === '.txt' ? 'elastix' : undefined });
    const confident = result.matches.filter((m) => m.confidence >= 0.5).length;
    const summary = {
      out,
      points: result.matches.length,
      confident,
      modality: result.modality,
      diffusionModelLoaded: loaded,
      seconds: result.seconds,
    };
    if (values.json) printJson(summary);
    else
      process.stderr.write(
        `matched ${result.matches.length} points (${confident} with confidence ≥ 0.5) → ${out}\n`,
      );
    return 0;
  },
};
