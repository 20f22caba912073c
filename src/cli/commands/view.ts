/**
 * `diffreg view`: a local web viewer (NiiVue) of a pair, its field and its points, where a click on the
 * fixed image asks MedDIFT for the corresponding point of the moving image (src/viewer/).
 */
import { spawn } from 'node:child_process';
import { readLandmarks, LANDMARK_FORMATS, type LandmarkFormat } from '../../io/index.ts';
import { fail } from '../../util/errors.ts';
import { invalid, oneOf } from '../../util/is.ts';
import { openBenchCase } from '../../viewer/bench-case.ts';
import { Correspondence } from '../../viewer/correspond.ts';
import { readMatches } from '../../viewer/matches.ts';
import { buildScene, landmarkRows, type ViewerInputs } from '../../viewer/scene.ts';
import { startViewer } from '../../viewer/server.ts';
import { optionalInteger, optionalNumber, required, type Command } from '../args.ts';
import { MODEL_HELP, MODEL_INPUTS, MODEL_OPTIONS, modelLoader } from '../model.ts';
import { terminalProgress } from '../progress.ts';
import { applyThreads, printJson, readImage, readInitialTransform } from './common.ts';
import { SEARCH_RADIUS_MM } from '../../methods/meddift/index.ts';

/** The viewer's port when --port is not given (0 = any free port). */
const DEFAULT_PORT = 8470;
/** Loopback only unless told otherwise: the viewer serves patient images without authentication. */
const DEFAULT_HOST = '127.0.0.1';

const PAIR_OPTIONS = [
  'fixed',
  'moving',
  'field',
  'points',
  'moving-points',
  'matches',
  'labels',
  'moving-labels',
];

type Values = Record<string, unknown>;

/** The option combinations, checked before anything is read. */
function checkCombinations(values: Values): void {
  const given = (o: string) => values[o] !== undefined;
  if (given('bench')) {
    const pair = PAIR_OPTIONS.find(given);
    if (pair) fail(`--${pair}`, 'not with --bench (the case brings its images, labels and points)');
    required(values, 'case');
  } else {
    for (const o of ['case', 'method']) if (given(o)) fail(`--${o}`, 'only with --bench');
    required(values, 'fixed');
    required(values, 'moving');
  }
  if (given('points') && given('matches'))
    fail('--points', 'not with --matches (the matches carry their fixed points)');
  if (given('moving-points') && !given('points') && !given('matches'))
    fail('--moving-points', 'needs --points or --matches (the points whose true positions they are)');
  if (given('points-format') && !given('points') && !given('moving-points'))
    fail('--points-format', 'only with --points or --moving-points');
  if (given('radius') && !given('field') && !given('method'))
    fail('--radius', 'only with --field or --method (the search window around p + u(p))');
  if (typeof values.matches === 'string' && !values.matches.toLowerCase().endsWith('.csv'))
    throw invalid('--matches', 'a .csv file written by diffreg match or diffreg demo', values.matches);
}

/** The pair, field, labels and points named on the command line. */
async function readInputs(values: Values, format: LandmarkFormat | undefined): Promise<ViewerInputs> {
  const path = (o: string) => (typeof values[o] === 'string' ? (values[o] as string) : undefined);
  const image = async (o: string, role: string) => (path(o) ? readImage(path(o)!, role) : undefined);
  const fixed = (await image('fixed', 'fixed'))!;
  const moving = (await image('moving', 'moving'))!;
  const fieldPath = path('field');
  let field;
  if (fieldPath) {
    const transform = await readInitialTransform(fieldPath);
    if (transform.kind !== 'field') fail(fieldPath, 'expected a displacement field image, not a matrix');
    const difference = transform.field.gridDifference(fixed);
    if (difference) fail(fieldPath, `the field is not on the fixed image's grid (${difference})`);
    field = transform.field;
  }
  const landmarks = (o: string, reference: typeof fixed) => {
    if (!path(o)) return undefined;
    const read = readLandmarks(path(o)!, { format, reference });
    return Array.from({ length: read.count }, (_, i) => read.point(i));
  };
  const matches = path('matches') ? readMatches(path('matches')!) : undefined;
  const fixedPoints = landmarks('points', fixed);
  const truth = landmarks('moving-points', moving);
  const rows = matches ?? (fixedPoints && landmarkRows(fixedPoints, { field }));
  if (rows && truth) {
    if (truth.length !== rows.length)
      fail(path('moving-points')!, `${truth.length} points for ${rows.length} fixed points`);
    rows.forEach((r, i) => (r.truth = truth[i]));
  }
  return {
    fixed,
    moving,
    field,
    labels: await image('labels', 'label'),
    movingLabels: await image('moving-labels', 'moving label'),
    points: rows,
    pointsSource: matches ? 'MedDIFT match' : field && fixedPoints ? 'p + u(p)' : undefined,
    titles: { fixed: path('fixed')!, moving: path('moving')!, field: fieldPath },
  };
}

/** Opens the page in the desktop's browser; a machine without one only misses the convenience. */
function openBrowser(url: string): void {
  const command =
    process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(command, [url], { stdio: 'ignore', detached: true });
  child.on('error', () => process.stderr.write(`could not start ${command}; open ${url} yourself\n`));
  child.unref();
}

export const viewCommand: Command = {
  name: 'view',
  summary: 'look at a registration in the browser and click a point to get its correspondence',
  usage:
    'diffreg view --fixed IMAGE --moving IMAGE [--field FILE] [--points FILE | --matches FILE.csv] [options]',
  options: {
    fixed: { type: 'string' },
    moving: { type: 'string' },
    field: { type: 'string' },
    points: { type: 'string' },
    'moving-points': { type: 'string' },
    'points-format': { type: 'string' },
    matches: { type: 'string' },
    labels: { type: 'string' },
    'moving-labels': { type: 'string' },
    bench: { type: 'string' },
    case: { type: 'string' },
    method: { type: 'string' },
    radius: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    open: { type: 'boolean' },
    threads: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    ...MODEL_OPTIONS,
  },
  help: [
    ['--fixed IMAGE', 'fixed image (NIfTI, MetaImage, NRRD, DICOM folder)'],
    ['--moving IMAGE', 'moving image'],
    [
      '--field FILE',
      'displacement field on the fixed grid (diffreg register --out-field): warped moving, |u|, det J',
    ],
    [
      '--points FILE',
      `landmarks on the fixed image (${LANDMARK_FORMATS.join(', ')}); with --field, also p + u(p)`,
    ],
    ['--moving-points FILE', 'their true positions on the moving image: lines from the result to the truth'],
    ['--points-format F', 'landmark format when the extension is ambiguous'],
    ['--matches FILE.csv', 'matches written by diffreg match or diffreg demo (with true_* columns: errors)'],
    ['--labels IMAGE', 'label map on the fixed image'],
    ['--moving-labels IMAGE', 'label map on the moving image, shown warped onto the fixed image'],
    [
      '--bench DIR --case ID',
      'instead of the files: a case of the diffreg bench run in DIR (as report.html links)',
    ],
    ['--method NAME', 'with --bench: register the case again with this method of the run, to see its field'],
    [
      '--radius MM',
      `click to correspond with a field: search within MM of p + u(p) (default ${SEARCH_RADIUS_MM.local}); without one, the whole image`,
    ],
    ['--port N', `port (default ${DEFAULT_PORT}; 0: any free port)`],
    ['--host H', `address to listen on (default ${DEFAULT_HOST}: this machine only)`],
    ['--open', "open the page in the desktop's browser"],
    ['--threads N', 'CPU threads (default all cores)'],
    ['--json', 'once listening, print {"url", "port"} as JSON on stdout'],
    ...MODEL_HELP,
  ],
  async run(values) {
    applyThreads(values);
    // Every option is checked before any file is read or any model is loaded.
    checkCombinations(values);
    const radiusMm =
      optionalNumber(values, 'radius', { min: 0, exclusiveMin: true }) ?? SEARCH_RADIUS_MM.local;
    const port = optionalInteger(values, 'port', { min: 0, max: 65535 }) ?? DEFAULT_PORT;
    const host = values.host === undefined ? DEFAULT_HOST : required(values, 'host');
    const format =
      values['points-format'] === undefined
        ? undefined
        : (oneOf('--points-format', values['points-format'], LANDMARK_FORMATS) as LandmarkFormat);
    const model = modelLoader(values);
    const inputs =
      typeof values.bench === 'string'
        ? await openBenchCase({
            dir: values.bench,
            caseId: required(values, 'case'),
            method: values.method as string | undefined,
            model,
            progress: terminalProgress(),
          })
        : await readInputs(values, format);
    const scene = buildScene(inputs, inputs.field ? { kind: 'local', radiusMm } : { kind: 'global' });
    const correspondence = await Correspondence.open({
      fixed: inputs.fixed,
      moving: inputs.moving,
      field: inputs.field,
      radiusMm,
      model: Object.fromEntries(MODEL_INPUTS.map((o) => [o, values[o]])),
    });
    let viewer;
    try {
      viewer = await startViewer(scene, inputs.fixed, correspondence, { host, port });
    } catch (e) {
      await correspondence.close();
      throw e;
    }
    process.stderr.write(`diffreg view: ${viewer.url}  (Ctrl-C to stop)\n`);
    if (values.json) printJson({ url: viewer.url, port: viewer.port });
    if (values.open) openBrowser(viewer.url);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await viewer.close();
    process.stderr.write('diffreg view: stopped\n');
    return 0;
  },
};
