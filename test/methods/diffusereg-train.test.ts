/**
 * DiffuseReg's denoiser stage on a tiny synthetic pair (a blob shifted by a known amount): training
 * lowers the held-out noise-prediction error, targets and normalisation are written, and the shipped
 * files round-trip with their SHA-256 checked.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { arange, manualSeed, noGrad, tidy, type Tensor } from '../../src/engine/index.ts';
import { VoxelMorph } from '../../src/models/voxelmorph/index.ts';
import { exportDiffuseRegModel, loadDiffuseRegModel } from '../../src/methods/diffusereg/model.ts';
import { flowStatistics, trainDenoiser } from '../../src/methods/diffusereg/train-denoiser.ts';
import type { NetworkCase } from '../../src/methods/diffusereg/data.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-diffusereg-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const GRID = [64, 16, 8] as const;
const TINY = { gridSize: [...GRID] as [number, number, number], featureSize: 6 };
const TINY_VM = { spatialDims: 3 as const, encoder: [4, 4], decoder: [4, 4, 4], cascades: 1 };

/** A Gaussian blob centred at (cx, 8, 4) on the tiny grid, (1, 1, 64, 16, 8). */
function blob(cx: number): Tensor {
  return tidy(() => {
    const axis = (n: number, c: number, s: number, shape: number[]) =>
      arange(0, n, 1).float().sub(c).div(s).square().reshape(shape);
    return axis(64, cx, 6, [1, 1, 64, 1, 1])
      .add(axis(16, 8, 3, [1, 1, 1, 16, 1]))
      .add(axis(8, 4, 2, [1, 1, 1, 1, 8]))
      .neg()
      .exp();
  });
}

function cases(): NetworkCase[] {
  // patient001 trains, patient017 validates (acdcSplit); labels are unused by this stage.
  return ['patient001', 'patient017'].map((id) => {
    const ed = blob(30).keep();
    const es = blob(34).keep();
    return { id, ed, es, edLabels: ed, esLabels: es };
  });
}

test('flowStatistics: per-axis mean and sample standard deviation', () => {
  const flow = tidy(() => arange(0, 12, 1).float().reshape(1, 3, 2, 2, 1));
  const { mean, std } = flowStatistics([flow]);
  // Component c holds 4c … 4c + 3: mean 4c + 1.5, sd √(5/3).
  assert.deepEqual(mean, [1.5, 5.5, 9.5]);
  for (const s of std) assert.ok(Math.abs(s - Math.sqrt(5 / 3)) < 1e-6);
});

test('denoiser stage: the held-out denoising error falls; targets and normalisation are written', () => {
  manualSeed(0);
  const bootstrap = new VoxelMorph(TINY_VM).eval();
  const run = join(dir, 'denoiser');
  const r = trainDenoiser(
    {
      dir: run,
      steps: 40,
      lr: 2e-3,
      warmupSteps: 0,
      validateEvery: 20,
      checkpointEvery: 20,
      config: TINY,
    },
    cases(),
    bootstrap,
  );
  const validations = r.log.filter((e) => e.validation !== undefined).map((e) => e.validation as number);
  assert.equal(validations.length, 2);
  assert.ok(validations[1] < validations[0], `validation ${validations.join(' → ')}`);
  for (const f of ['targets-train.safetensors', 'targets-validation.safetensors', 'denoiser.json'])
    assert.ok(existsSync(join(run, f)), f);
  const record = JSON.parse(readFileSync(join(run, 'denoiser.json'), 'utf8'));
  assert.equal(record.prediction, 'sample');
  assert.equal(record.normalisation.std.length, 3);
  assert.equal(record.config.imagesInFlowInput, true);
  assert.deepEqual(record.config.gridSize, TINY.gridSize);
  // A bad option is refused before the targets are computed or any file is written.
  const refused = join(dir, 'refused');
  assert.throws(
    () => trainDenoiser({ dir: refused, steps: 1, config: TINY, highNoiseShare: 1.5 }, cases(), bootstrap),
    /: highNoiseShare: expected a finite number >= 0 and <= 1, got 1\.5$/,
  );
  assert.ok(!existsSync(refused));

  // Export and load: float16 weights within their rounding, SHA-256 checked.
  const out = join(dir, 'model');
  const { normalisation, prediction } = r;
  exportDiffuseRegModel(out, { bootstrap, denoiser: { network: r.denoiser, normalisation, prediction } }, {});
  const loaded = loadDiffuseRegModel(out);
  const [k, w] = [...r.denoiser.stateDict()][3];
  const back = loaded.denoiser!.network.stateDict().get(k) as Tensor;
  noGrad(() => assert.ok(back.sub(w).abs().max().item() <= 1e-3 * w.abs().max().item() + 1e-6, k));
  assert.deepEqual(loaded.denoiser!.normalisation, r.normalisation);
  assert.equal(loaded.denoiser!.prediction, 'sample');
  loaded.dispose();
  // A description from another network grid is refused before any weights are read.
  const json = join(out, 'model.json');
  const meta = JSON.parse(readFileSync(json, 'utf8'));
  writeFileSync(json, JSON.stringify({ ...meta, grid: { dims: [32, 32, 16], spacing: [3, 3, 10] } }));
  assert.throws(() => loadDiffuseRegModel(out), /model\.json: network grid .* differs from this version's$/);
  writeFileSync(json, JSON.stringify(meta));
  const weights = join(out, 'denoiser.safetensors');
  const bytes = readFileSync(weights);
  bytes[bytes.length - 1] ^= 1;
  writeFileSync(weights, bytes);
  assert.throws(
    () => loadDiffuseRegModel(out),
    /denoiser\.safetensors: SHA-256 \w+ does not match model\.json/,
  );
  r.denoiser.dispose();
  bootstrap.dispose();
});

test('a missing model gives one line naming how to train it', () => {
  assert.throws(
    () => loadDiffuseRegModel(join(dir, 'none')),
    /none\/model\.json: DiffuseReg model not found \(train it: diffreg train diffusereg\)$/,
  );
});
