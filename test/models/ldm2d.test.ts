/**
 * LDM-Morph's 2-D latent diffusion model: shapes of the autoencoder (128² → 32² latents), the U-Net
 * and its four encoder feature maps; gradients through encodeLatent; the loss terms and the schedule
 * against values computed by hand; both training stages lowering their validation loss on synthetic
 * blob images and resuming bit-identically; one-line configuration errors.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  F,
  arange,
  cat,
  Generator,
  manualSeed,
  noGrad,
  randn,
  tensor,
  tidy,
  zeros,
  type nn,
  type Tensor,
} from '../../src/engine/index.ts';
import { DDIMScheduler } from '../../src/models/schedulers/ddim.ts';
import { readLog } from '../../src/models/training/loop.ts';
import {
  diffusionFeatures,
  gradientDifference,
  klDivergence,
  LDM2D_SCHEDULE,
  ldm2dConfig,
  latentScaleFactor,
  Ldm2dAutoencoder,
  Ldm2dUNet,
  trainAutoencoder,
  trainLdm2dUNet,
} from '../../src/models/ldm2d/index.ts';
import { DiffregError } from '../../src/util/errors.ts';
import { assertClose } from '../helpers/tensors.ts';
import { TINY_LDM2D as TINY } from './ldm-fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-ldm2d-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const shape = (t: Tensor) => [...t.shape];
const t1 = (v: number) => tensor([v], { dtype: 'int64' });

/** A 64² image (1, 1, 64, 64) in [0, 1]: three Gaussian blobs at seeded positions. */
function blobs(seed: number): Tensor {
  const g = new Generator(seed);
  return tidy(() => {
    const centres = randn([3, 2], { generator: g }).mul(12).add(32).toTypedArray() as Float32Array;
    const y = arange(0, 64, 1).float().reshape(64, 1);
    const x = arange(0, 64, 1).float().reshape(1, 64);
    let image = zeros([64, 64]);
    for (let b = 0; b < 3; b++) {
      const d2 = y
        .sub(centres[2 * b])
        .square()
        .add(x.sub(centres[2 * b + 1]).square());
      image = image.add(d2.div(-2 * 6 ** 2).exp());
    }
    return image.div(image.max()).reshape(1, 1, 64, 64);
  }).keep();
}

const train = [1, 2, 3, 4, 5, 6].map(blobs);
const validation = [7, 8].map(blobs);

test('default networks: 128² images ↔ 4 × 32² latents; U-Net output and the four feature scales', () => {
  manualSeed(0);
  const ae = new Ldm2dAutoencoder();
  const unet = new Ldm2dUNet();
  const x = randn([2, 1, 128, 128]).sigmoid();
  const g = new Generator(1);
  const { latent: mean, reconstruction } = noGrad(() => ae.forward(x, g));
  assert.deepEqual(shape(mean), [2, 4, 32, 32]);
  assert.deepEqual(shape(noGrad(() => ae.encode(x).logvar)), [2, 4, 32, 32]);
  assert.deepEqual(shape(reconstruction), [2, 1, 128, 128]);
  const eps = noGrad(() => unet.forward(mean, tensor([1, 500], { dtype: 'int64' })));
  assert.deepEqual(shape(eps), [2, 4, 32, 32]);
  const features = noGrad(() => unet.encoderFeatures(mean, t1(1)));
  // Level input + output widths of base 32 × [1, 2, 3, 4]: 32+32, 32+64, 64+96, 96+128.
  assert.deepEqual(features.map(shape), [
    [2, 64, 32, 32],
    [2, 96, 16, 16],
    [2, 160, 8, 8],
    [2, 224, 4, 4],
  ]);
  assert.deepEqual(unet.featureChannels, [64, 96, 160, 224]);
  for (const m of [ae, unet]) m.dispose();
});

test('encodeLatent is the Gaussian mean and passes a non-zero gradient to its input', () => {
  manualSeed(0);
  const ae = new Ldm2dAutoencoder(TINY);
  const x = randn([1, 1, 32, 32]).sigmoid().requiresGrad_();
  const z = ae.encodeLatent(x);
  assert.deepEqual(shape(z), [1, 2, 8, 8]);
  assertClose(
    z,
    noGrad(() => ae.encode(x).mean),
    'encodeLatent vs encode().mean',
    0,
  );
  z.square().sum().backward();
  const grad = x.grad as Tensor;
  assert.ok(grad.abs().sum().item() > 0, 'gradient is zero');
  assert.ok(grad.isfinite().all().item(), 'gradient is not finite');
  ae.dispose();
});

test('VQ autoencoder: nearest codebook entries, straight-through gradient, codebook and commitment terms', () => {
  manualSeed(0);
  const ae = new Ldm2dAutoencoder({
    ...TINY,
    autoencoder: { ...TINY.autoencoder, quantizer: 'vq', latentChannels: 1, codebookSize: 4 },
  });
  assert.deepEqual(shape(ae.codebook as Tensor), [4, 1]);
  noGrad(() => (ae.codebook as Tensor).copy_(tensor([[-1], [0], [0.5], [2]])));
  // By hand: each value to its nearest entry (0.24 → 0, 0.26 → 0.5, 1.3 → 2, −7 → −1).
  const h = tensor([0.24, 0.26, 1.3, -7]).reshape(1, 1, 2, 2);
  assertClose(ae.quantize(h), tensor([0, 0.5, 2, -1]).reshape(1, 1, 2, 2), 'nearest entries', 0);
  // Two channels: the nearest entry by the squared distance over both.
  const ae2 = new Ldm2dAutoencoder({
    ...TINY,
    autoencoder: { ...TINY.autoencoder, quantizer: 'vq', codebookSize: 3 },
  });
  noGrad(() =>
    (ae2.codebook as Tensor).copy_(
      tensor([
        [0, 0],
        [1, 1],
        [3, -1],
      ]),
    ),
  );
  const h2 = tensor([0.4, 2.5, 0.9, -0.4]).reshape(1, 2, 1, 2); // vectors (0.4, 0.9) and (2.5, −0.4)
  assertClose(ae2.quantize(h2), tensor([1, 3, 1, -1]).reshape(1, 2, 1, 2), 'nearest by both channels', 0);
  assert.throws(
    () => ae.encode(randn([1, 1, 32, 32])),
    /autoencoder: a VQ autoencoder has no latent Gaussian/,
  );
  // The training pass: regularization = mean (h − e)² · (1 + β); the gradient reaches the encoder through e.
  const x = randn([1, 1, 32, 32]).sigmoid();
  const pass = ae.forward(x);
  const latent = noGrad(() => ae.encodeLatent(x));
  const expected = noGrad(() => latent.sub(ae.quantize(latent)).square().mean().item() * 1.25);
  assert.ok(
    Math.abs(pass.regularization.item() - expected) < 1e-6 * Math.max(1, expected),
    'codebook + β·commitment',
  );
  assertClose(pass.latent, latent, 'latent before quantisation', 1e-6);
  F.l1Loss(pass.reconstruction, x).add(pass.regularization).backward();
  const first = ae.encoder.parameters()[0];
  assert.ok((first.grad as Tensor).abs().sum().item() > 0, 'no gradient reaches the encoder');
  assert.ok(
    ((ae.codebook as Tensor).grad as Tensor).abs().sum().item() > 0,
    'no gradient reaches the codebook',
  );
  // initCodebook: every entry is one of the images' latent vectors.
  const images = randn([2, 1, 32, 32]).sigmoid();
  ae.initCodebook(images, new Generator(3));
  const vectors = noGrad(() => ae.encodeLatent(images)).toTypedArray() as Float32Array;
  for (const v of (ae.codebook as Tensor).toTypedArray() as Float32Array)
    assert.ok(vectors.includes(v), `codebook entry ${v} is no latent vector`);
  for (const m of [ae, ae2]) m.dispose();
});

test('sample: mean + exp(logvar / 2)·ε with ε from the generator', () => {
  const ae = new Ldm2dAutoencoder(TINY);
  const mean = randn([2, 2, 4, 4], { generator: new Generator(3) });
  const logvar = zeros([2, 2, 4, 4]).add(Math.log(4)); // σ = 2
  const z = ae.sample(mean, logvar, new Generator(9));
  const eps = randn([2, 2, 4, 4], { generator: new Generator(9) });
  assertClose(z, mean.add(eps.mul(2)), 'sample', 1e-6);
  ae.dispose();
});

test('KL divergence and gradient difference against values by hand', () => {
  const z = zeros([2, 1, 2, 2]);
  assert.equal(klDivergence(z, z).item(), 0);
  // μ = 1, log σ² = 0: ½·Σ μ² = ½·4 per sample.
  assert.ok(Math.abs(klDivergence(z.add(1), z).item() - 2) < 1e-6);
  // μ = 0, σ² = 2: ½·4·(2 − 1 − ln 2).
  const kl = klDivergence(z, z.add(Math.log(2))).item();
  assert.ok(Math.abs(kl - 2 * (1 - Math.log(2))) < 1e-6, `KL ${kl}`);
  // A ramp along W against zero: differences 1 along W, 0 along H.
  const ramp = arange(0, 5, 1).float().reshape(1, 1, 1, 5).expand(1, 1, 4, 5).contiguous();
  assert.ok(Math.abs(gradientDifference(ramp, zeros([1, 1, 4, 5])).item() - 1) < 1e-6);
  assert.equal(gradientDifference(ramp, ramp.add(3)).item(), 0);
});

test('latent scale factor: 1 / the sample standard deviation of all latent elements', () => {
  const s = latentScaleFactor([tensor([1, 3]), tensor([5, 7])]);
  assert.ok(Math.abs(s - 1 / Math.sqrt(20 / 3)) < 1e-6, `scale ${s}`);
});

test('encoder features: per image, independent of the decoder, dependent on t', () => {
  manualSeed(0);
  const unet = new Ldm2dUNet(TINY);
  const z = randn([2, 2, 16, 16], { generator: new Generator(4) });
  const t = t1(1);
  const both = noGrad(() => unet.encoderFeatures(z, t));
  assert.deepEqual(both.map(shape), [
    [2, 16, 16, 16],
    [2, 24, 8, 8],
    [2, 32, 4, 4],
    [2, 32, 2, 2],
  ]);
  const second = noGrad(() => unet.encoderFeatures(z.narrow(0, 1, 1), t));
  both.forEach((f, l) => assertClose(second[l], f.narrow(0, 1, 1), `level ${l}, image 2 alone`, 1e-5));
  const output = noGrad(() => unet.forward(z, tensor([1, 1], { dtype: 'int64' })));
  noGrad(() => {
    for (const p of [...unet.decoder.parameters(), ...unet.out.parameters()]) p.add_(0.1);
  });
  const after = noGrad(() => unet.encoderFeatures(z, t));
  both.forEach((f, l) => assertClose(after[l], f, `level ${l} after changing the decoder`, 0));
  const changed = noGrad(() => unet.forward(z, tensor([1, 1], { dtype: 'int64' })));
  assert.ok(changed.sub(output).abs().max().item() > 1e-3, 'the decoder does not reach the output');
  const late = noGrad(() => unet.encoderFeatures(z, t1(900)));
  assert.ok(late[0].sub(both[0]).abs().max().item() > 1e-4, 'the timestep does not reach the encoder');
  unet.dispose();
});

/** A tiny LDM with seed-0 weights. */
function tinyLdm() {
  manualSeed(0);
  return {
    autoencoder: new Ldm2dAutoencoder(TINY),
    unet: new Ldm2dUNet(TINY),
    scheduler: new DDIMScheduler(LDM2D_SCHEDULE),
  };
}

test('diffusionFeatures: q_sample of the scaled latent mean at t = 1 (scaled-linear β), then the encoder', () => {
  const model = tinyLdm();
  model.unet.latentScale = 2;
  const image = validation[0];
  const noise = randn([1, 2, 16, 16], { generator: new Generator(5) });
  const features = noGrad(() => diffusionFeatures(model, image, noise));
  // β_i = (√0.0015 + i/999·(√0.0195 − √0.0015))², ᾱ_1 = (1 − β_0)(1 − β_1).
  const beta = (i: number) => (Math.sqrt(0.0015) + (i / 999) * (Math.sqrt(0.0195) - Math.sqrt(0.0015))) ** 2;
  const a1 = (1 - beta(0)) * (1 - beta(1));
  const zt = noGrad(() =>
    model.autoencoder
      .encodeLatent(image)
      .mul(2 * Math.sqrt(a1))
      .add(noise.mul(Math.sqrt(1 - a1))),
  );
  const expected = noGrad(() => model.unet.encoderFeatures(zt, t1(1)));
  features.forEach((f, l) => assertClose(f, expected[l], `level ${l}`, 1e-5));
  model.autoencoder.dispose();
  model.unet.dispose();
});

test("diffusionFeatures with DDIM inversion: the U-Net's noise estimate moves the latent, stride by stride", () => {
  const model = tinyLdm();
  const image = validation[0];
  const unused = randn([1, 2, 16, 16], { generator: new Generator(5) });
  const features = noGrad(() => diffusionFeatures(model, image, unused, { timestep: 20, inversionSteps: 2 }));
  // By hand: ᾱ from the scaled-linear β; per stride x0 = (z − √(1−ᾱ_t)·ε)/√ᾱ_t, z ← √ᾱ_s·x0 + √(1−ᾱ_s)·ε.
  const beta = (i: number) => (Math.sqrt(0.0015) + (i / 999) * (Math.sqrt(0.0195) - Math.sqrt(0.0015))) ** 2;
  const abar = (t: number) => Array.from({ length: t + 1 }, (_, i) => 1 - beta(i)).reduce((p, v) => p * v, 1);
  const expected = noGrad(() => {
    let z = model.autoencoder.encodeLatent(image).mul(model.unet.latentScale);
    for (const [t, s] of [
      [0, 10],
      [10, 20],
    ]) {
      const eps = model.unet.forward(z, t1(t));
      const x0 = z.sub(eps.mul(Math.sqrt(1 - abar(t)))).div(Math.sqrt(abar(t)));
      z = x0.mul(Math.sqrt(abar(s))).add(eps.mul(Math.sqrt(1 - abar(s))));
    }
    return model.unet.encoderFeatures(z, t1(20));
  });
  features.forEach((f, l) => assertClose(f, expected[l], `level ${l}`, 1e-4));
  // Not the q_sample features at the same timestep, and the strides must divide the timestep.
  const noised = noGrad(() => diffusionFeatures(model, image, unused, { timestep: 20, inversionSteps: 0 }));
  assert.ok(noised[0].sub(features[0]).abs().max().item() > 1e-3, 'inversion equals q_sample');
  assert.throws(
    () => diffusionFeatures(model, image, unused, { timestep: 20, inversionSteps: 3 }),
    /DDIM inversion steps: must divide the feature timestep 20, got 3/,
  );
  model.autoencoder.dispose();
  model.unet.dispose();
});

const weights = (m: nn.Module) => [...m.stateDict()].map(([k, t]) => [k, [...t.toTypedArray()]]);
/** The autoencoder the first training test produces, for the U-Net stage's test. */
let trained: Ldm2dAutoencoder | undefined;
const losses = (log: { step: number; loss: number; validation?: number }[]) =>
  log.map((e) => [e.step, e.loss, e.validation]);
/** A short training stage in its own folder, validated at its last step only. */
const shortStage = (name: string, steps: number, stopAfter?: number) => ({
  dir: join(dir, name),
  steps,
  stopAfter,
  lr: 3e-3,
  warmupSteps: 0,
  validateEvery: steps,
});

test('autoencoder stage: validation L1 falls; a resumed run equals an uninterrupted one', () => {
  const options = (name: string, steps: number, stopAfter?: number) => ({
    ...shortStage(name, steps, stopAfter),
    batchSize: 2,
    checkpointEvery: 2,
    config: TINY,
  });
  manualSeed(0); // the trainer's initialisation for seed 0
  const fresh = new Ldm2dAutoencoder(TINY);
  const before =
    noGrad(() =>
      validation.reduce(
        (s, x) => s + tidy(() => fresh.decode(fresh.encodeLatent(x)).sub(x).abs().mean().item()),
        0,
      ),
    ) / validation.length;
  const long = trainAutoencoder(options('ae-long', 40), train, validation);
  const final = long.log[long.log.length - 1].validation as number;
  assert.ok(final < 0.6 * before, `validation L1 ${before} → ${final}`);

  const whole = trainAutoencoder(options('ae-whole', 5), train, validation);
  const part = trainAutoencoder(options('ae-resumed', 5, 3), train, validation);
  assert.equal(part.step, 3);
  assert.equal(part.finished, false);
  const resumed = trainAutoencoder(options('ae-resumed', 5), train, validation);
  assert.equal(resumed.step, 5);
  assert.deepEqual(losses(resumed.log), losses(whole.log));
  assert.deepEqual(losses(readLog(join(dir, 'ae-resumed', 'log.jsonl'))), losses(whole.log));
  assert.deepEqual(weights(resumed.autoencoder), weights(whole.autoencoder));
  for (const m of [fresh, whole.autoencoder, part.autoencoder, resumed.autoencoder]) m.dispose();
  trained = long.autoencoder;
});

test('U-Net stage (on the trained autoencoder): validation MSE falls; scale factor; resume', () => {
  assert.ok(trained, 'the autoencoder stage did not finish');
  const ae = trained;
  const options = (name: string, steps: number, stopAfter?: number) => ({
    ...shortStage(name, steps, stopAfter),
    batchSize: 4,
    checkpointEvery: 1,
  });
  const long = trainLdm2dUNet(options('unet-long', 60), ae, train, validation);
  // The training latents are the means of every image and its horizontal flip.
  const latents = noGrad(() => train.flatMap((x) => [ae.encodeLatent(x), ae.encodeLatent(x.flip(3))]));
  const std = cat(latents.map((z) => z.flatten()))
    .std()
    .item();
  assert.ok(Math.abs(long.scaleFactor * std - 1) < 1e-5, `scale ${long.scaleFactor}, std ${std}`);
  assert.equal(long.unet.latentScale, Math.fround(long.scaleFactor));
  assert.ok(long.unet.stateDict().has('latent_scale'));
  // The untrained U-Net outputs ε̂ = 0: its validation loss is the mean square of the validation
  // noise, drawn from Generator(seed + 7) with each latent's shape in turn.
  const g = new Generator(7);
  const before =
    validation.reduce((s) => s + randn([1, 2, 16, 16], { generator: g }).square().mean().item(), 0) /
    validation.length;
  const final = long.log[long.log.length - 1].validation as number;
  assert.ok(final < 0.8 * before, `validation MSE ${before} → ${final}`);

  const whole = trainLdm2dUNet(options('unet-whole', 4), ae, train, validation);
  trainLdm2dUNet(options('unet-resumed', 4, 2), ae, train, validation);
  const resumed = trainLdm2dUNet(options('unet-resumed', 4), ae, train, validation);
  assert.equal(resumed.scaleFactor, whole.scaleFactor);
  assert.deepEqual(losses(resumed.log), losses(whole.log));
  assert.deepEqual(weights(resumed.unet), weights(whole.unet));
  for (const m of [long.unet, whole.unet, resumed.unet, ae]) m.dispose();
});

test('configuration and option errors are one line', () => {
  const oneLine = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof DiffregError, String(e));
      assert.ok(!e.message.includes('\n'), e.message);
      assert.match(e.message, pattern);
      return true;
    });
  oneLine(
    () => ldm2dConfig({ unet: { headChannels: 5 } }),
    /^unet\.headChannels: expected a divisor of level 1's 64 channels, got 5$/,
  );
  oneLine(
    () => ldm2dConfig({ autoencoder: { channels: [32, 40] } }),
    /^autoencoder\.channels\[1\]: expected a width that is a multiple of normGroups 16, got 40$/,
  );
  oneLine(
    () => ldm2dConfig({ unet: { attentionLevels: [true] } }),
    /^unet\.attentionLevels: expected 4 booleans \(one per level\), got \[true\]$/,
  );
  oneLine(() => ldm2dConfig({ autoencoder: { latentChannels: 0 } }), /^autoencoder\.latentChannels: /);
  oneLine(
    () => ldm2dConfig({ unet: { channelMultipliers: [] } }),
    /^unet\.channelMultipliers: expected a non-empty/,
  );
  oneLine(() => ldm2dConfig({ normGroups: 1.5 }), /^normGroups: expected an integer >= 1, got 1\.5$/);
  const ae = new Ldm2dAutoencoder(TINY);
  oneLine(
    () => ae.encode(zeros([1, 1, 30, 32])),
    /^autoencoder input: H and W must be multiples of 4, got 30x32$/,
  );
  oneLine(
    () => new Ldm2dUNet(TINY).forward(zeros([1, 2, 12, 16]), t1(1)),
    /^U-Net input: h and w must be multiples of 8/,
  );
  const opts = { dir: join(dir, 'bad'), steps: 1, config: TINY };
  oneLine(() => trainAutoencoder({ ...opts, flipAxes: [1] }, train, validation), /^flipAxes: expected/);
  oneLine(() => trainAutoencoder({ ...opts, batchSize: 0 }, train, validation), /^batchSize: expected/);
  oneLine(
    () => trainAutoencoder(opts, [train[0], zeros([1, 1, 32, 32])], validation),
    /^training images\[1\]: expected shape \(1, 1, 64, 64\), got \(1, 1, 32, 32\)$/,
  );
  ae.dispose();
});
