/**
 * One bench/meddift measurement in its own process (so peak memory is its own): a pair, a model and a
 * task; prints one JSON line. Run by bench/meddift/run.ts. The task `cli` is what a user runs: the pair
 * written to NIfTI, then `diffreg register` with its defaults (and the shipped model) in a child
 * process, timed with its peak memory by GNU time; the writing is not counted.
 * Usage: node --import tsx bench/meddift/case.ts <brain|ct> <maisi-random|default> <match|register|cli>
 */
import { makeSyntheticPair } from '../../src/geometry/synthetic.ts';
import { resampleVolume } from '../../src/geometry/warp.ts';
import { Volume, type Vec3 } from '../../src/geometry/volume.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readVolume, writeVolume } from '../../src/io/index.ts';
import { medDiftMatch, medDiftRegister } from '../../src/methods/meddift/index.ts';
import {
  AutoencoderKlMaisi,
  DiffusionModelUNetMaisi,
  MaisiLatentDiffusion,
  MAISI_V1_AUTOENCODER,
  MAISI_V1_UNET,
  loadDefaultModel,
  networkGridSize,
} from '../../src/models/index.ts';
import { sharedPath } from '../../test/helpers/shared.ts';
import { encoderGflop, unetGflop } from '../maisi/flops.ts';
import { peakRssBytes } from '../../src/util/memory.ts';

const [pairName, modelName, task] = process.argv.slice(2);

/** Peak resident memory of this process so far (VmHWM), in GiB. */
const peakRssGiB = (): number => (peakRssBytes() ?? NaN) / 2 ** 30;

async function loadPair(): Promise<{ fixed: Volume; moving: Volume; points: Vec3[] }> {
  if (pairName === 'brain') {
    const fixed = await readVolume(sharedPath('data', 'brain-lpba40', 'S01.nii.gz'));
    const moving = await readVolume(sharedPath('data', 'brain-lpba40', 'S11.nii.gz'));
    const pair = makeSyntheticPair(fixed, {
      seed: 1,
      amplitude: 1,
      pointCount: 300,
      pointMask: fixed.withData(Uint8Array.from(fixed.data, (v) => (v > 0.1 ? 1 : 0))),
    });
    return { fixed, moving, points: pair.fixedPoints };
  }
  // The thoracic CT resampled back to its clinical 512×512×141 grid, and a synthetic deformation of it.
  const ct = await readVolume(sharedPath('data', 'lung', 'ct-thorax-256.nii.gz'));
  const grid = new Volume({
    data: new Float32Array(512 * 512 * 141),
    dims: [512, 512, 141],
    spacing: [0.9765625, 0.9765625, 2],
    origin: [-250, -164, -164.5],
  });
  const clinical = resampleVolume(ct, grid, { outside: -1024 });
  const mask = clinical.withData(Uint8Array.from(clinical.data, (v) => (v < -400 && v > -990 ? 1 : 0)));
  const pair = makeSyntheticPair(clinical, {
    seed: 2,
    amplitude: 10,
    lengthScale: 60,
    pointCount: 300,
    pointMask: mask,
  });
  return { fixed: clinical, moving: pair.moving, points: pair.fixedPoints };
}

function loadModel(): MaisiLatentDiffusion {
  if (modelName === 'default') return loadDefaultModel();
  const unet = new DiffusionModelUNetMaisi(MAISI_V1_UNET).eval();
  const autoencoder = new AutoencoderKlMaisi(MAISI_V1_AUTOENCODER).eval();
  return new MaisiLatentDiffusion({ name: 'maisi-random', unet, autoencoder, scaleFactor: 1 });
}

const { fixed, moving, points } = await loadPair();
if (task === 'cli') {
  process.stdout.write(`${JSON.stringify(await cliRegister(fixed, moving))}\n`);
  process.exit(0);
}
const model = loadModel();
// What the bench's own set-up (volumes, synthetic deformation, weights) already holds.
const setupGiB = peakRssGiB();
const started = performance.now();
let featureSeconds: number;
if (task === 'match') {
  const r = medDiftMatch(model, fixed, moving, points, { consistency: true });
  featureSeconds = r.seconds.features;
} else {
  const r = medDiftRegister(model, fixed, moving);
  featureSeconds = r.seconds.features;
}
const total = (performance.now() - started) / 1000;
// Network work of the two feature passes: the encoder on the resized image, the U-Net on its latent.
const resized = fixed.dims.map(networkGridSize);
const voxels = resized[0] * resized[1] * resized[2];
const gflop =
  2 * (encoderGflop(voxels, model.autoencoder.config) + unetGflop(voxels / 64, model.unet.config));
process.stdout.write(
  `${JSON.stringify({ pair: pairName, model: modelName, task, dims: fixed.dims, points: points.length, seconds: total, featureSeconds, gflop, peakRssGiB: peakRssGiB(), setupGiB })}\n`,
);

/** `diffreg register` with defaults on the pair, in a child process under GNU time. */
async function cliRegister(fixed: Volume, moving: Volume) {
  const dir = mkdtempSync(join(tmpdir(), 'diffreg-bench-'));
  try {
    const [f, m, out] = ['fixed.nii.gz', 'moving.nii.gz', 'field.nii.gz'].map((n) => join(dir, n));
    await writeVolume(f, fixed);
    await writeVolume(m, moving);
    const cli = fileURLToPath(new URL('../../bin/diffreg.js', import.meta.url));
    const args = ['-f', '%e %M', process.execPath, cli, 'register', '--fixed', f, '--moving', m];
    const r = spawnSync('/usr/bin/time', [...args, '--out-field', out, '--json'], { encoding: 'utf8' });
    const timing = r.stderr.trim().split('\n').pop() ?? '';
    if (r.status !== 0 || !/^[\d.]+ \d+$/.test(timing))
      throw new Error(`diffreg register failed: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
    const [seconds, kib] = timing.split(' ').map(Number);
    const summary = JSON.parse(r.stdout);
    return {
      pair: pairName,
      model: modelName,
      task,
      dims: fixed.dims,
      points: 0,
      seconds,
      featureSeconds: summary.stageSeconds?.features ?? 0,
      gflop: 0,
      peakRssGiB: kib / 2 ** 20,
      setupGiB: 0,
      descriptor: summary.descriptor,
      diffusionModelLoaded: summary.diffusionModelLoaded,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
