/**
 * LDM-Morph's recipes end to end on a synthetic ACDC folder with tiny networks: the slice cache (blank
 * slices left out, the mid-ventricular slice), each stage a few steps, interrupted and resumed, the
 * LDM exported and the network trained on it, exported beside it, evaluated with the identity row,
 * an ablation variant, the files loaded with their SHA-256 checked, and one-line errors.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { arange, manualSeed, noGrad, tidy, type Tensor } from '../../src/engine/index.ts';
import { Random } from '../../src/geometry/random.ts';
import { readLog } from '../../src/models/training/loop.ts';
import {
  acdcSlicesOnNetworkGrid,
  disposeSlices,
  middleSlices,
  randomSlicePair,
} from '../../src/methods/ldmmorph/data.ts';
import { exportLdm, exportNetwork, loadLdm, loadLdmMorphModel } from '../../src/methods/ldmmorph/model.ts';
import { Ldm2dAutoencoder, Ldm2dUNet } from '../../src/models/ldm2d/index.ts';
import {
  LDM_MORPH_DEFAULT_VARIANT,
  ldm2dRecipe,
  ldmMorphRecipe,
  type LdmMorphRecipeConfig,
} from '../../src/methods/ldmmorph/recipe.ts';
import { LDM_MORPH_VARIANTS } from '../../src/methods/ldmmorph/train.ts';
import { DiffregError } from '../../src/util/errors.ts';
import { TINY_LDM2D, TINY_LDM_MORPH } from '../models/ldm-fixtures.ts';
import { exportTinyModel, syntheticAcdc } from './ldmmorph-fixtures.ts';

/** The variant a run trains when none is given (the authors' code: no latent-loss gradient). */
const DEFAULT = LDM_MORPH_VARIANTS[LDM_MORPH_DEFAULT_VARIANT];
const root = mkdtempSync(join(tmpdir(), 'diffreg-ldmmorph-train-'));
after(() => rmSync(root, { recursive: true, force: true }));

const loop = { checkpointEvery: 2, validateEvery: 2, warmupSteps: 1, lr: 1e-3 };
const TINY: LdmMorphRecipeConfig = {
  ldm: TINY_LDM2D,
  network: TINY_LDM_MORPH,
  autoencoderLoop: { ...loop, batchSize: 2 },
  unetLoop: { ...loop, batchSize: 2 },
  networkLoop: loop,
  steps: { autoencoder: 3, unet: 3, network: 3 },
};
const data = join(root, 'data');
const runDir = join(root, 'run');
const modelDir = join(root, 'model');
const options = (stage: string, settings: Record<string, number | undefined> = {}, stopAfter?: number) => ({
  stage,
  dataDir: data,
  runDir,
  modelDir,
  stopAfter,
  settings,
});

const oneLine = async (run: () => Promise<unknown>, pattern: RegExp) =>
  assert.rejects(run, (e: unknown) => {
    assert.ok(e instanceof DiffregError, String(e));
    assert.ok(!e.message.includes('\n'), e.message);
    assert.match(e.message, pattern);
    return true;
  });

test('ldm2d then ldmmorph: train, resume, export, evaluate, load with SHA-256 checks', async () => {
  await syntheticAcdc(join(data, 'cardiac-acdc'), ['patient001', 'patient017']);
  const ldm2d = ldm2dRecipe(TINY);
  const ldmMorph = ldmMorphRecipe(TINY);
  // The network needs the exported LDM first.
  await oneLine(
    () => ldmMorph.run(options('network')),
    /model\/model\.json: LDM-Morph model not found \(train it: diffreg train ldm2d, then diffreg train ldmmorph\)$/,
  );

  // Interrupted after step 2 of the autoencoder, then resumed to the end of every stage.
  const first = await ldm2d.run(options('all', {}, 2));
  assert.equal(first.finished, false);
  assert.ok(existsSync(join(runDir, 'acdc-slices.safetensors')));
  await oneLine(() => ldm2d.run(options('unet')), /autoencoder: stage not finished \(step 2 of 3\)/);
  const second = await ldm2d.run(options('all'));
  assert.ok(second.finished, second.lines.join('; '));
  assert.deepEqual(
    readLog(join(runDir, 'ldm2d', 'autoencoder', 'log.jsonl')).map((e) => e.step),
    [1, 2, 3],
  );
  assert.equal(readLog(join(runDir, 'ldm2d', 'unet', 'log.jsonl')).length, 3);
  const meta = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8'));
  assert.deepEqual(Object.keys(meta.sha256).sort(), ['autoencoder.safetensors', 'unet.safetensors']);
  assert.deepEqual(meta.ldm.data.train, ['patient001']);
  assert.deepEqual(meta.ldm.data.validation, ['patient017']);
  // Five of six slices per patient have content in both frames: 10 training images (ED and ES).
  assert.equal(meta.ldm.data.trainImages, 10);
  assert.deepEqual(meta.ldm.trainingSteps, { autoencoder: 3, unet: 3 });
  // The latent scale travels in full precision beside the float16 weights.
  assert.ok(meta.ldm.latentScale > 0);
  const ldm = loadLdm(modelDir);
  assert.equal(ldm.ldm.unet.latentScale, Math.fround(meta.ldm.latentScale));
  ldm.dispose();

  // The slice cache: blank slice 5 left out, the mid-ventricular slice is 2 (LV on slices 0–4).
  const slices = await acdcSlicesOnNetworkGrid(
    ['patient001', 'patient017'],
    join(runDir, 'acdc-slices.safetensors'),
    [64, 64],
  );
  assert.deepEqual(
    slices.slices.filter((s) => s.id === 'patient017').map((s) => s.slice),
    [0, 1, 2, 3, 4],
  );
  assert.deepEqual(slices.middle, { patient001: 2, patient017: 2 });
  const [mid] = middleSlices(slices);
  assert.equal(mid.id, 'patient017');
  assert.deepEqual([...mid.ed.shape], [1, 1, 64, 64]);
  noGrad(() =>
    assert.deepEqual([...new Set(mid.edLabels.toTypedArray() as Float32Array)].sort(), [0, 1, 2, 3]),
  );
  disposeSlices(slices);
  // A cache of other grids is not reused.
  const copy = join(root, 'copy.safetensors');
  copyFileSync(join(runDir, 'acdc-slices.safetensors'), copy);
  const coarse = await acdcSlicesOnNetworkGrid(['patient017'], copy, [32, 32], {
    root: join(data, 'cardiac-acdc'),
  });
  assert.deepEqual([...coarse.slices[0].ed.shape], [1, 1, 32, 32]);
  disposeSlices(coarse);

  // The network: interrupted, resumed, exported beside the LDM, evaluated.
  const part = await ldmMorph.run(options('network', {}, 2));
  assert.equal(part.finished, false);
  const whole = await ldmMorph.run(options('all'));
  assert.ok(whole.finished, whole.lines.join('; '));
  const log = readLog(join(runDir, 'ldmmorph', DEFAULT, 'log.jsonl'));
  assert.deepEqual(
    log.map((e) => e.step),
    [1, 2, 3],
  );
  assert.ok(log.every((e) => e.latent !== undefined && e.image !== undefined));
  // The resumed run equals an uninterrupted one (same cached slices, same LDM).
  const straight = join(root, 'straight');
  mkdirSync(straight);
  copyFileSync(join(runDir, 'acdc-slices.safetensors'), join(straight, 'acdc-slices.safetensors'));
  await ldmMorph.run({ ...options('network'), runDir: straight });
  const losses = (l: typeof log) => l.map((e) => [e.step, e.loss, e.latent, e.validation]);
  assert.deepEqual(losses(readLog(join(straight, 'ldmmorph', DEFAULT, 'log.jsonl'))), losses(log));
  const evaluation = JSON.parse(readFileSync(join(modelDir, 'evaluation.json'), 'utf8'));
  assert.deepEqual(
    evaluation.rows.map((r: { name: string }) => r.name),
    ['identity', `${DEFAULT} (step 3)`],
  );
  const identity = evaluation.rows[0];
  assert.equal(identity.pairs, 1);
  assert.equal(identity.foldedPercent, 0);
  // The ES heart is 0.8× the ED heart: the unregistered LV overlaps 0.8² of the ED LV, Dice ≈ 2·0.64/1.64.
  assert.ok(Math.abs(identity.dice.LV - (2 * 0.64) / 1.64) < 0.08, `LV Dice ${identity.dice.LV}`);
  for (const f of ['network.safetensors', 'network-loss.svg', 'autoencoder-loss.svg', 'unet-loss.svg'])
    assert.ok(existsSync(join(modelDir, f)), f);

  // The folder of a network of another configuration is not resumed into.
  await oneLine(
    () => ldmMorphRecipe({ ...TINY, network: { ...TINY_LDM_MORPH, embedDim: 16 } }).run(options('network')),
    /ldmmorph\/no-latent-loss-gradient\/network\.json: holds a network of another variant, configuration or LDM; remove .* or use a new run folder$/,
  );
  // An ablation variant (1 = swin-only) trains in its own folder and joins the evaluation.
  const swin = await ldmMorph.run(options('network', { variant: 1 }));
  assert.ok(swin.finished);
  const again = await ldmMorph.run(options('evaluate'));
  assert.deepEqual(
    (again.summary.evaluation as { rows: { name: string }[] }).rows.map((r) => r.name),
    ['identity', 'swin-only (step 3)', `${DEFAULT} (step 3)`],
  );
  await oneLine(
    () => ldmMorph.run(options('export', { variant: 9 })),
    /^--variant: expected an integer in \[0, 5\], got 9$/,
  );

  // The whole model loads; re-exporting the same LDM keeps the network, whose files are checked.
  const model = loadLdmMorphModel(modelDir);
  assert.equal(model.variant, DEFAULT);
  assert.deepEqual([...model.network.config.ldmChannels], [32, 48, 64, 64]);
  model.dispose();
  await ldm2d.run(options('export'));
  const weights = join(modelDir, 'network.safetensors');
  const bytes = readFileSync(weights);
  bytes[bytes.length - 1] ^= 1;
  writeFileSync(weights, bytes);
  assert.throws(
    () => loadLdmMorphModel(modelDir),
    /network\.safetensors: SHA-256 \w+ does not match model\.json \(\w+\): the file is corrupt or was changed$/,
  );
  rmSync(weights);
  assert.throws(() => loadLdmMorphModel(modelDir), /network\.safetensors: model weights not found$/);
});

test("ldm2d --codebook-size N: a VQ LDM, fixed by the run's first stage, exported and loaded as VQ", async () => {
  const vqRun = join(root, 'run-vq');
  const vqModel = join(root, 'model-vq');
  const ldm2d = ldm2dRecipe(TINY);
  const vq = (stage: string, settings: Record<string, number | undefined> = {}) => ({
    ...options(stage, settings),
    runDir: vqRun,
    modelDir: vqModel,
  });
  await oneLine(
    () => ldm2d.run(vq('autoencoder', { 'codebook-size': 1 })),
    /--codebook-size: expected 0 \(KL\) or at least 2 codes, got 1/,
  );
  assert.ok((await ldm2d.run(vq('autoencoder', { 'codebook-size': 8 }))).finished);
  // Later stages read the run's LDM; a setting that disagrees fails.
  await oneLine(
    () => ldm2d.run(vq('unet', { 'codebook-size': 0 })),
    /--codebook-size: 0 disagrees with the LDM this run folder trains/,
  );
  assert.ok((await ldm2d.run(vq('all'))).finished);
  const meta = JSON.parse(readFileSync(join(vqModel, 'model.json'), 'utf8'));
  assert.equal(meta.ldm.config.autoencoder.quantizer, 'vq');
  assert.equal(meta.ldm.config.autoencoder.latentChannels, 1);
  const loaded = loadLdm(vqModel);
  assert.deepEqual([...(loaded.ldm.autoencoder.codebook as Tensor).shape], [8, 1]);
  assert.equal(loaded.ldm.unet.featureChannels.length, 4);
  loaded.dispose();
});

test('a model folder without a network, or with another grid, gives one line', () => {
  const dir = mkdtempSync(join(root, 'partial-'));
  assert.throws(
    () => loadLdmMorphModel(dir),
    /model\.json: LDM-Morph model not found \(train it: diffreg train ldm2d/,
  );
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ contentFraction: 0.875, ldm: {}, sha256: {} }));
  assert.throws(
    () => loadLdmMorphModel(dir),
    /model\.json: holds no LDM-Morph network yet \(train it: diffreg train ldmmorph\)$/,
  );
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ contentFraction: 1, ldm: {}, sha256: {} }));
  assert.throws(
    () => loadLdm(dir),
    /model\.json: network grid content fraction 1 differs from this version's$/,
  );
});

test('another LDM drops the network from model.json, and the network is never exported beside it', () => {
  const dir = join(root, 'tiny');
  exportTinyModel(dir);
  const model = loadLdmMorphModel(dir);
  const record = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')).network;
  manualSeed(9);
  exportLdm(dir, new Ldm2dAutoencoder(TINY_LDM2D), new Ldm2dUNet(TINY_LDM2D), {});
  assert.throws(() => loadLdmMorphModel(dir), /model\.json: holds no LDM-Morph network yet/);
  assert.throws(
    () => exportNetwork(dir, model.network, record, {}),
    /model\.json: its LDM is not the one the network was trained with; train the network again \(diffreg train ldmmorph --stage network\)$/,
  );
  model.dispose();
});

test('randomSlicePair: either frame fixed, both images flipped alike, only along the axes given', () => {
  const slice = tidy(() => {
    const ed = arange(0, 64, 1).float().reshape(1, 1, 8, 8);
    return { id: 'patient001', slice: 0, ed, es: ed.add(100), edLabels: ed, esLabels: ed };
  });
  const random = new Random(4);
  const seen = new Set<string>();
  for (let i = 0; i < 24; i++)
    tidy(() => {
      const { fixed, moving } = randomSlicePair([slice], random, [3]);
      const difference = moving.sub(fixed);
      const d = difference.select(2, 0).select(2, 0).item();
      assert.equal(Math.abs(d), 100);
      assert.equal(difference.sub(d).abs().max().item(), 0, 'the same flips on both images');
      const edFixed = d > 0;
      const ed = edFixed ? fixed : moving;
      const same = (a: typeof ed, b: typeof ed) => a.sub(b).abs().max().item() === 0;
      const flipped = same(ed, slice.ed.flip([3]));
      assert.ok(flipped || same(ed, slice.ed), 'no flip along axis 2');
      seen.add(`${edFixed} ${flipped}`);
    });
  assert.equal(seen.size, 4, [...seen].join('; '));
});
