/**
 * `diffreg demo`: the whole job on a generated example, with no data beyond the repository. A thorax
 * phantom (body, lungs with branching vessels, ribs, spine, heart) is deformed by a known breathing-like
 * motion; its vessel branch points are the landmarks. Correspondence and dense registration then run,
 * the mean target registration error is printed before and after, and every output is written to a
 * folder, with an overview figure.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { dispose } from '../../engine/index.ts';
import { makeThoraxPhantom } from '../../eval/phantom.ts';
import { jacobianStats, targetRegistrationError } from '../../eval/metrics.ts';
import { overlayPng } from '../../eval/bench/overlay.ts';
import { diffregCommandLine } from '../../eval/bench/report.ts';
import { makeBreathingPair } from '../../geometry/synthetic.ts';
import { warpVolume } from '../../geometry/warp.ts';
import { Landmarks, writeLandmarks, writeVolume } from '../../io/index.ts';
import {
  concreteDescriptor,
  DEFAULT_DESCRIPTOR,
  DESCRIPTOR_NAMES,
  DESCRIPTORS,
  describePair,
  registerAndMatch,
  usesDiffusionModel,
} from '../../methods/meddift/index.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { optionalInteger, optionalNumber, type Command } from '../args.ts';
import { MODEL_HELP, MODEL_INPUTS, MODEL_OPTIONS, modelLoader } from '../model.ts';
import { oneOf } from '../../util/is.ts';
import { DESCRIPTOR_HELP } from './match.ts';
import { checkOutputs } from '../outputs.ts';
import { formatSeconds, terminalProgress } from '../progress.ts';
import { applyThreads, printJson } from './common.ts';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run correspondence and registration on a generated thorax phantom with a known deformation',
  usage: 'diffreg demo [--out DIR] [--seed N] [--amplitude MM] [--descriptor NAME] [--json]',
  options: {
    out: { type: 'string' },
    seed: { type: 'string' },
    amplitude: { type: 'string' },
    descriptor: { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    ...MODEL_OPTIONS,
  },
  help: [
    ['--out DIR', 'output folder (default ./diffreg-demo)'],
    ['--seed N', 'phantom and deformation seed (default 1)'],
    ['--amplitude MM', 'cranio-caudal breathing motion at the lung base (default 15)'],
    ['--descriptor NAME', DESCRIPTOR_HELP],
    ['--threads N', 'CPU threads (default all cores)'],
    ['--json', 'print a JSON summary on stdout'],
    ...MODEL_HELP,
  ],
  async run(values) {
    applyThreads(values);
    const started = performance.now();
    const out = resolve((values.out as string | undefined) ?? 'diffreg-demo');
    const seed = optionalInteger(values, 'seed', { min: 0 }) ?? 1;
    const amplitude = optionalNumber(values, 'amplitude', { min: 0 }) ?? 15;
    const requestedDescriptor = oneOf('--descriptor', values.descriptor ?? DEFAULT_DESCRIPTOR, DESCRIPTORS);
    const loadModel = modelLoader(values);
    checkOutputs([{ option: 'out', path: out }], values, MODEL_INPUTS);
    const progress = terminalProgress();
    const say = (s: string) => {
      if (!values.json) process.stderr.write(`${s}\n`);
    };

    say('1/4 generating the thorax phantom and a breathing deformation');
    const phantom = makeThoraxPhantom({ seed });
    const fixed = phantom.image;
    const pair = makeBreathingPair(fixed, {
      amplitude,
      mask: phantom.lungMask,
      points: phantom.landmarks,
      seed,
    });
    const truth = pair.movingPoints;
    const before = targetRegistrationError(pair.fixedPoints, truth);

    // The default descriptor for the phantom's modality (CT), as `diffreg register` and `match` pick it.
    const descriptor = concreteDescriptor(requestedDescriptor, fixed, 'ct');
    const useModel = usesDiffusionModel(descriptor);
    const given = Boolean(values.unet || values.autoencoder);
    const modelName = !useModel
      ? 'none (the descriptor uses no diffusion model)'
      : given
        ? 'MAISI checkpoints'
        : 'the embedded default model';
    say(`2/4 computing ${DESCRIPTOR_NAMES[descriptor]} (model: ${modelName})`);
    const model = useModel ? loadModel() : undefined;
    const [f, m] = describePair(descriptor, model, fixed, pair.moving, { modality: 'ct' }, 0);

    say(
      '3/4 dense registration (ConvexAdam); each landmark matched at its registered position, scored around it',
    );
    const { registration, matches } = registerAndMatch(f, m, fixed, pair.moving, pair.fixedPoints, {
      progress,
      register: { maxLatticeVoxels: 48 ** 3, searchRadius: 4 },
    });
    dispose([...f.grid.levels, ...m.grid.levels]);
    const predicted = matches.map((x) => x.moving);
    const afterMatching = targetRegistrationError(predicted, truth);
    // The matches are the registered positions p + u(p) (registerAndMatch): the same errors.
    const afterRegistration = afterMatching;
    const jacobian = jacobianStats(registration.field);

    say(`4/4 writing outputs to ${out}`);
    mkdirSync(out, { recursive: true });
    const warped = warpVolume(pair.moving, registration.field, { outside: -1000 });
    await writeVolume(join(out, 'fixed.nii.gz'), fixed);
    await writeVolume(join(out, 'moving.nii.gz'), pair.moving);
    await writeVolume(join(out, 'warped_moving.nii.gz'), warped);
    await writeVolume(join(out, 'field.nii.gz'), registration.field);
    writeLandmarks(join(out, 'fixed_landmarks.mrk.json'), new Landmarks(pair.fixedPoints));
    writeLandmarks(join(out, 'moving_landmarks_truth.mrk.json'), new Landmarks(truth));
    writeLandmarks(join(out, 'moving_landmarks_matched.mrk.json'), new Landmarks(predicted));
    const rows = matches.map((x, i) =>
      [i, ...x.fixed, ...x.moving, ...truth[i], x.similarity, x.confidence, x.backErrorMm]
        .map((v) => (Number.isFinite(v) ? +v.toFixed(3) : ''))
        .join(','),
    );
    writeFileAtomic(
      join(out, 'matches.csv'),
      `index,fixed_x,fixed_y,fixed_z,matched_x,matched_y,matched_z,true_x,true_y,true_z,similarity,confidence,back_error_mm\n${rows.join('\n')}\n`,
    );
    // Coronal slices through the landmarks' centre: fixed | moving | moving warped, with the landmarks
    // within 5 mm of the slice and the residual error of each (red: predicted − true, drawn at the
    // fixed landmark + error) — of the dense registration, and of the point matches.
    const item = {
      id: 'demo',
      fixed,
      moving: pair.moving,
      fixedPoints: pair.fixedPoints,
      movingPoints: truth,
      modality: 'ct' as const,
    };
    const view = { axis: 1 as const, nearMm: 5 };
    writeFileAtomic(join(out, 'overview.png'), overlayPng(item, { field: registration.field }, view));
    writeFileAtomic(join(out, 'matches.png'), overlayPng(item, { movingPointsPredicted: predicted }, view));
    const viewCommand = diffregCommandLine([
      'view',
      ...['fixed', 'moving', 'field'].flatMap((name) => [`--${name}`, join(out, `${name}.nii.gz`)]),
      '--matches',
      join(out, 'matches.csv'),
      ...MODEL_INPUTS.flatMap((o) => (typeof values[o] === 'string' ? [`--${o}`, values[o] as string] : [])),
    ]);
    const summary = {
      output: out,
      view: viewCommand,
      descriptor: DESCRIPTOR_NAMES[descriptor],
      model: modelName,
      landmarks: truth.length,
      treMm: {
        before: round(before.mean),
        afterMatching: round(afterMatching.mean),
        afterRegistration: round(afterRegistration.mean),
      },
      jacobian: { percentNonPositive: round(jacobian.percentNonPositive), sdLogJ: round(jacobian.sdLogJ) },
      seconds: round((performance.now() - started) / 1000),
    };
    if (values.json) printJson(summary);
    else {
      say('');
      say(`descriptor: ${DESCRIPTOR_NAMES[descriptor]}; model: ${modelName}`);
      say(`landmarks (vessel branch points): ${truth.length}`);
      say(`mean TRE before:             ${before.mean.toFixed(2)} mm (sd ${before.sd.toFixed(2)})`);
      say(
        `mean TRE after matching:     ${afterMatching.mean.toFixed(2)} mm (sd ${afterMatching.sd.toFixed(2)})`,
      );
      say(
        `mean TRE after registration: ${afterRegistration.mean.toFixed(2)} mm (sd ${afterRegistration.sd.toFixed(2)})`,
      );
      say(`det J ≤ 0: ${jacobian.percentNonPositive.toFixed(3)} %   SDlogJ: ${jacobian.sdLogJ.toFixed(3)}`);
      say(
        `outputs in ${out} (overview.png: fixed | moving | warped with registration errors in red; matches.png: the same for the point matches); ${formatSeconds(summary.seconds)}`,
      );
      say(`to look at them in the browser and click points: ${viewCommand}`);
    }
    return 0;
  },
};

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
