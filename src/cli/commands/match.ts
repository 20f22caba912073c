/** `diffreg match`: MedDIFT point correspondence between two images. */
import { extname } from 'node:path';
import {
  Landmarks,
  readLandmarks,
  writeLandmarks,
  LANDMARK_FORMATS,
  type LandmarkFormat,
} from '../../io/index.ts';
import { medDiftMatch, type MedDiftMatchResult, type PointMatch } from '../../methods/meddift/index.ts';
import { BODY_REGIONS, type BodyRegion } from '../../models/index.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { oneOf } from '../../util/is.ts';
import { levelList, numberList, optionalNumber, required, type Command } from '../args.ts';
import { MODEL_HELP, MODEL_OPTIONS, loadModel } from '../model.ts';
import { terminalProgress } from '../progress.ts';
import { applyThreads, printJson, readImage, readInitialTransform } from './common.ts';

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
  ['--timestep T', 'diffusion timestep of the features, 0–999 (default 20)'],
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

export function featureOptions(values: Record<string, unknown>) {
  const region = (name: string) => oneOf(`--${name}`, values[name] ?? 'chest', BODY_REGIONS) as BodyRegion;
  return {
    timestep: optionalNumber(values, 'timestep'),
    noiseDraws: optionalNumber(values, 'noise-draws'),
    levels: levelList(values, 'levels'),
    levelWeights: numberList(values, 'level-weights'),
    seed: optionalNumber(values, 'seed'),
    modality: oneOf('--modality', values.modality ?? 'auto', ['ct', 'mr', 'auto'] as const),
    region: { top: region('region-top'), bottom: region('region-bottom') },
  };
}

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
    ['--out FILE', 'matches: .csv, .json, or any landmark format (.mrk.json opens in 3D Slicer)'],
    ['--search global|local', 'search the whole image (default) or a window around the initial estimate'],
    ['--radius MM', 'local search radius in mm'],
    ['--initial FILE', 'initial transform: 4x4 LPS matrix (.txt) or displacement field image'],
    ['--no-subvoxel', 'integer voxel matches (no parabolic refinement)'],
    ['--no-consistency', 'skip the backward match (faster; no back_error_mm)'],
    ...FEATURE_HELP,
    ...MODEL_HELP,
  ],
  async run(values) {
    applyThreads(values);
    // Every option is checked before any file is read or any model is loaded.
    const out = required(values, 'out');
    const features = featureOptions(values);
    const search = oneOf('--search', values.search ?? 'global', ['global', 'local'] as const);
    const radiusMm = optionalNumber(values, 'radius');
    const format =
      values['points-format'] === undefined
        ? undefined
        : (oneOf('--points-format', values['points-format'], LANDMARK_FORMATS) as LandmarkFormat);
    const fixed = await readImage(required(values, 'fixed'), 'fixed');
    const moving = await readImage(required(values, 'moving'), 'moving');
    const points = readLandmarks(required(values, 'points'), { format, reference: fixed });
    const initial =
      typeof values.initial === 'string' ? await readInitialTransform(values.initial) : undefined;
    const model = loadModel(values);
    const result = medDiftMatch(
      model,
      fixed,
      moving,
      Array.from({ length: points.count }, (_, i) => points.point(i)),
      {
        ...features,
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
