import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { F, Generator, randn, tensor, tidy, type nn, type Tensor } from '../../src/engine/index.ts';
import { Volume } from '../../src/geometry/volume.ts';
import { MAISI_V1_AUTOENCODER, MAISI_V1_UNET } from '../../src/models/index.ts';
import { cutPatch, type LoadedCase } from '../../src/models/default/data.ts';
import { networkGridSize, normaliseIntensities, volumeToNetworkInput } from '../../src/models/preprocess.ts';
import { psnr, ssim3d } from '../../src/models/default/evaluate.ts';
import { DEFAULT_LOOP, readLog } from '../../src/models/training/loop.ts';
import { trainAutoencoder, trainDiffusion } from '../../src/models/default/train.ts';

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('CT intensities: the [-1000, 1000] HU window maps to [0, 1], clipped', () => {
  const out = normaliseIntensities([-3000, -1000, -500, 0, 250, 1000, 2976], 'ct');
  [0, 0, 0.25, 0.5, 0.625, 1, 1].forEach((v, i) => close(out[i], v, 1e-7, `value ${i}`));
});

test('MR intensities: the 0.5th and 99.5th percentiles (numpy linear) map to 0 and 1', () => {
  // 0..999 shuffled: numpy.percentile gives 4.995 and 994.005.
  const values = Array.from({ length: 1000 }, (_, i) => (i * 617) % 1000);
  const out = normaliseIntensities(values, 'mr');
  const [lo, hi] = [4.995, 994.005];
  values.forEach((v, i) => close(out[i], Math.min(1, Math.max(0, (v - lo) / (hi - lo))), 1e-6, `value ${v}`));
  assert.equal(out[values.indexOf(2)], 0);
  assert.equal(out[values.indexOf(998)], 1);
  assert.throws(() => normaliseIntensities([3, 3, 3], 'mr'), /constant/);
});

test('volumeToNetworkInput: tensor axes are the array axes i, j, k', () => {
  const dims: [number, number, number] = [2, 3, 4];
  const data = new Float32Array(24);
  for (let k = 0; k < 4; k++)
    for (let j = 0; j < 3; j++) for (let i = 0; i < 2; i++) data[i + 2 * (j + 3 * k)] = i + 10 * j + 100 * k;
  const x = volumeToNetworkInput(new Volume({ data, dims }), 'ct');
  assert.deepEqual(x.shape, [1, 1, 2, 3, 4]);
  const v = x.toTypedArray() as Float32Array;
  // C order of (i, j, k): offset = (i·3 + j)·4 + k.
  for (const [i, j, k] of [
    [1, 0, 0],
    [0, 2, 1],
    [1, 2, 3],
  ])
    close(v[(i * 3 + j) * 4 + k], (i + 10 * j + 100 * k + 1000) / 2000, 1e-7, `${i},${j},${k}`);
  x.dispose();
});

test('network grid sizes follow MedDIFT (nearest multiple of 128, half to even)', () => {
  assert.deepEqual(
    [10, 141, 160, 192, 256, 320, 428].map(networkGridSize),
    [128, 128, 128, 256, 256, 256, 384],
  );
});

function syntheticCase(
  id: string,
  split: 'train' | 'validation',
  seed: number,
  grid: [number, number, number],
): LoadedCase {
  const image = tidy(() => {
    const r = randn([1, 1, 6, 7, 5], { generator: new Generator(seed) });
    return F.interpolate(r, { size: [20, 24, 10], mode: 'trilinear', alignCorners: false }).sigmoid();
  }).keep();
  return {
    id,
    path: '',
    group: 'brain',
    modality: 'mr',
    region: { top: 'head', bottom: 'head' },
    split,
    kRange: [0, 1],
    image,
    spacing: [1, 1.5, 3],
    grid,
  };
}

test('an identity patch equals the crop of the network-grid resize', () => {
  const c = syntheticCase('a', 'train', 1, [32, 64, 32]);
  const [patch, crop] = tidy(() => [
    cutPatch(
      c,
      32,
      [0, 32, 0],
      [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ],
    ),
    F.interpolate(c.image, { size: c.grid, mode: 'trilinear', alignCorners: false }).narrow(3, 32, 32),
  ]);
  const diff = tidy(() => patch.sub(crop).abs().max() as Tensor).item();
  assert.ok(diff < 1e-5, `largest difference ${diff}`);
  for (const t of [patch, crop, c.image]) t.dispose();
});

test('PSNR and 3D SSIM on images with known values', () => {
  const [a, b] = [
    tensor(0.5).expand(1, 1, 12, 12, 12).contiguous(),
    tensor(0.25).expand(1, 1, 12, 12, 12).contiguous(),
  ];
  close(psnr(a, b), 10 * Math.log10(1 / 0.0625), 1e-4, 'psnr');
  // Constant images: only the luminance term remains, (2ab + C1) / (a² + b² + C1).
  close(ssim3d(a, b), (2 * 0.5 * 0.25 + 1e-4) / (0.25 + 0.0625 + 1e-4), 1e-5, 'ssim');
  const r = randn([1, 1, 16, 16, 16], { generator: new Generator(3) });
  close(ssim3d(r, r), 1, 1e-5, 'ssim of identical images');
  for (const t of [a, b, r]) t.dispose();
});

test('an interrupted and resumed run equals an uninterrupted one (autoencoder and U-Net stages)', () => {
  const root = mkdtempSync(join(tmpdir(), 'diffreg-train-'));
  try {
    const train = [
      syntheticCase('t1', 'train', 11, [64, 64, 32]),
      syntheticCase('t2', 'train', 12, [32, 64, 32]),
    ];
    const validation = [syntheticCase('v1', 'validation', 13, [32, 32, 32])];
    const ae = (dir: string, stopAfter?: number) =>
      trainAutoencoder(
        {
          ...DEFAULT_LOOP,
          dir,
          stopAfter,
          steps: 5,
          warmupSteps: 1,
          lr: 1e-3,
          checkpointEvery: 2,
          validateEvery: 2,
          config: {
            ...MAISI_V1_AUTOENCODER,
            numChannels: [8, 8, 8],
            numResBlocks: [1, 1, 1],
            normNumGroups: 4,
          },
          patchSize: 32,
          batchSize: 1,
          klWeight: 1e-6,
          validationPatches: 1,
        },
        train,
        validation,
      );
    const whole = ae(join(root, 'whole-ae'));
    const part = ae(join(root, 'resumed-ae'), 3);
    assert.equal(part.step, 3);
    assert.equal(part.finished, false);
    const resumed = ae(join(root, 'resumed-ae'));
    assert.equal(resumed.step, 5);
    const losses = (l: typeof whole.log) => l.map((e) => [e.step, e.loss, e.validation]);
    assert.deepEqual(losses(resumed.log), losses(whole.log));
    assert.deepEqual(losses(readLog(join(root, 'resumed-ae', 'log.jsonl'))), losses(whole.log));
    // Only the newest two checkpoints are kept.
    assert.deepEqual(
      readdirSync(join(root, 'resumed-ae')).filter((f) => f.startsWith('step-')),
      ['step-00000004.safetensors', 'step-00000005.safetensors'],
    );
    const weights = (m: nn.Module) => [...m.stateDict()].map(([k, t]) => [k, [...t.toTypedArray()]]);
    assert.deepEqual(weights(resumed.autoencoder), weights(whole.autoencoder));

    const unet = (dir: string, stopAfter?: number) =>
      trainDiffusion(
        {
          ...DEFAULT_LOOP,
          dir,
          stopAfter,
          steps: 4,
          warmupSteps: 1,
          checkpointEvery: 1,
          validateEvery: 2,
          config: {
            ...MAISI_V1_UNET,
            numChannels: [8, 8, 8, 8],
            numResBlocks: [1, 1, 1, 1],
            normNumGroups: 4,
            numHeadChannels: [0, 0, 8, 8],
          },
          batchSize: 2,
          imagePatchSize: 32,
          poolSize: 3,
          validationPoolSize: 2,
        },
        whole.autoencoder,
        train,
        validation,
      );
    const u1 = unet(join(root, 'whole-unet'));
    unet(join(root, 'resumed-unet'), 2);
    const u2 = unet(join(root, 'resumed-unet'));
    assert.ok(u1.scaleFactor > 0 && Number.isFinite(u1.scaleFactor));
    assert.equal(u2.scaleFactor, u1.scaleFactor);
    assert.deepEqual(losses(u2.log), losses(u1.log));
    assert.ok(u1.log.every((e) => Number.isFinite(e.loss) && e.loss > 0));
    assert.deepEqual(weights(u2.unet), weights(u1.unet));
    for (const m of [whole.autoencoder, part.autoencoder, resumed.autoencoder, u1.unet, u2.unet]) m.dispose();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
