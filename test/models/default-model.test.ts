import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { tidy } from '../../src/engine/index.ts';
import { checkLevels } from '../../src/methods/meddift/features.ts';
import { DEFAULT_MODEL_DIR, loadDefaultModel } from '../../src/models/default/model.ts';
import { MaisiLatentDiffusion } from '../../src/models/maisi/latent-diffusion.ts';
import { defaultCases, loadCases } from '../../src/models/default/data.ts';
import { networkGridImage, psnr, reconstruct } from '../../src/models/default/evaluate.ts';
import { DiffregError } from '../../src/util/errors.ts';
import { requireShared, sharedPath } from '../helpers/shared.ts';

// Measured: 21.85 dB with the shipped autoencoder (v1: 16.06), 3.3 dB with randomly initialised weights.
const PSNR_THRESHOLD = 19;

function requireModel(t: TestContext): boolean {
  if (existsSync(join(DEFAULT_MODEL_DIR, 'model.json'))) return true;
  const message = `SKIPPED: ${DEFAULT_MODEL_DIR} has no model.json yet (the default model is not trained)`;
  console.log(`# ${message}`);
  t.skip(message);
  return false;
}

test('loadDefaultModel loads the shipped networks with the recorded configuration', (t) => {
  if (!requireModel(t)) return;
  const meta = JSON.parse(readFileSync(join(DEFAULT_MODEL_DIR, 'model.json'), 'utf8'));
  const model = loadDefaultModel();
  assert.equal(model.name, meta.name);
  assert.equal(model.scaleFactor, meta.scaleFactor);
  assert.deepEqual(model.unet.config.numChannels, meta.unet.numChannels);
  assert.deepEqual(model.autoencoder.config.numChannels, meta.autoencoder.numChannels);
  assert.equal(model.scheduler.numTrainTimesteps, 1000);
  // float16 on disk, float32 in memory.
  assert.ok([...model.unet.stateDict().values()].every((p) => p.dtype === 'float32'));
  // MedDIFT takes the model card's levels unless levels are given; a model without them uses all four.
  assert.deepEqual(model.recommendedLevels, [2]);
  assert.equal(model.decoderLevels, 4);
  assert.deepEqual(checkLevels(model, undefined), [2]);
  assert.deepEqual(checkLevels(model, [0, 3]), [0, 3]);
  const withoutCard = new MaisiLatentDiffusion({ ...model, recommendedLevels: undefined });
  assert.deepEqual(checkLevels(withoutCard, undefined), [0, 1, 2, 3]);
  model.dispose();
});

test('invalid featureLevels in model.json give a one-line error', (t) => {
  if (!requireModel(t)) return;
  withModelCopy((dir) => {
    const path = join(dir, 'model.json');
    const meta = JSON.parse(readFileSync(path, 'utf8'));
    writeFileSync(path, JSON.stringify({ ...meta, featureLevels: [4] }));
    assert.throws(() => loadDefaultModel(dir), {
      message: `${path}: featureLevels must list decoder levels 0-3, got [4]`,
    });
  });
});

/** Runs `body` on a temporary copy of the shipped model folder. */
function withModelCopy(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'diffreg-default-'));
  try {
    cpSync(DEFAULT_MODEL_DIR, dir, { recursive: true });
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a corrupted weights file gives the one-line hash error', (t) => {
  if (!requireModel(t)) return;
  withModelCopy((dir) => {
    const path = join(dir, 'unet.safetensors');
    const bytes = readFileSync(path);
    bytes[bytes.length - 1] ^= 0x01;
    writeFileSync(path, bytes);
    assert.throws(
      () => loadDefaultModel(dir),
      (e: unknown) =>
        e instanceof DiffregError &&
        e.message.startsWith(`${path}: SHA-256 `) &&
        e.message.includes('does not match model.json') &&
        !e.message.includes('\n'),
    );
  });
});

test('the default autoencoder reconstructs a held-out brain (LPBA40 S40) above the measured PSNR', async (t) => {
  if (!requireModel(t) || !requireShared(t, 'data', 'brain-lpba40', 'S40.nii.gz')) return;
  const [c] = await loadCases(defaultCases(sharedPath('data')).filter((x) => x.id === 'brain-lpba40/S40'));
  const model = loadDefaultModel();
  // A central 64³ block of the network grid (128 x 256 x 128) keeps the test fast.
  const x = tidy(() =>
    networkGridImage(c).narrow(2, 32, 64).narrow(3, 96, 64).narrow(4, 32, 64).contiguous(),
  );
  const r = reconstruct(model, x);
  const value = psnr(x, r);
  assert.ok(value > PSNR_THRESHOLD, `PSNR ${value.toFixed(2)} dB`);
  for (const tensor of [x, r, c.image]) tensor.dispose();
});
