/**
 * DDPM/DDIM schedulers against MONAI's outputs in ../shared/fixtures/scheduler (bit-exact, as the
 * fixture README states is achievable with float32 arithmetic in MONAI's operation order).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Generator, randn, tensor } from '../../src/engine/index.ts';
import { DDIMScheduler, DDPMScheduler, DIFFUSEREG_SCHEDULE } from '../../src/models/index.ts';
import { requireShared } from '../helpers/shared.ts';
import { assertBitExact, get, loadTensors } from '../helpers/tensors.ts';

test('scheduler tables, add_noise, DDPM and DDIM steps reproduce MONAI bit for bit', (t) => {
  const dir = requireShared(t, 'fixtures', 'scheduler');
  if (!dir) return;
  const ref = loadTensors(join(dir, 'scheduler.safetensors'));
  const info = JSON.parse(readFileSync(join(dir, 'scheduler.json'), 'utf8'));
  const ddpm = new DDPMScheduler();
  const ddim = new DDIMScheduler();

  const tables = {
    betas_f32: ddpm.tables.betas,
    alphas_f32: ddpm.tables.alphas,
    alphas_cumprod_f32: ddpm.tables.alphasCumprod,
  };
  for (const [name, ours] of Object.entries(tables)) {
    const expected = get(ref, name).toTypedArray() as Float32Array;
    const differing = expected.filter((v, i) => v !== ours[i]).length;
    assert.equal(differing, 0, `${name}: ${differing} of 1000 entries differ`);
  }
  assert.equal(ddpm.tables.alphasCumprod[20], Number(info.steps.ddpm['20'].alpha_prod_t));

  const x0 = get(ref, 'x0');
  const noise = get(ref, 'noise');
  for (const ts of [0, 20, 100, 500, 999]) {
    assertBitExact(ddpm.addNoise(x0, noise, ts), get(ref, `add_noise_t${ts}`), `add_noise t=${ts}`);
  }
  const batched = ddpm.addNoise(
    get(ref, 'add_noise_batch.original'),
    get(ref, 'add_noise_batch.noise'),
    [20, 500],
  );
  assertBitExact(batched, get(ref, 'add_noise_batch.result'), 'add_noise batch');

  const modelOutput = get(ref, 'step.model_output');
  const sample = get(ref, 'step.sample');
  for (const ts of [0, 20, 500]) {
    const seed = info.steps.ddpm[String(ts)].generator_seed as number;
    if (ts > 0) {
      // libtorch's generator seeded like torch.Generator().manual_seed(seed) draws the same noise.
      assertBitExact(
        randn(modelOutput.shape, { generator: new Generator(seed) }),
        get(ref, `ddpm_step_t${ts}.variance_noise`),
        `noise t=${ts}`,
      );
    }
    const out = ddpm.step(modelOutput, ts, sample, new Generator(seed));
    assertBitExact(out.sample, get(ref, `ddpm_step_t${ts}.prev_sample`), `DDPM step t=${ts}`);
    assertBitExact(
      out.predOriginalSample,
      get(ref, `ddpm_step_t${ts}.pred_original_sample`),
      `DDPM x0 t=${ts}`,
    );
  }

  assert.deepEqual(ddim.setTimesteps(50), info.ddim50_timesteps);
  assert.deepEqual(
    ddim.setTimesteps(50),
    [...(get(ref, 'ddim50.timesteps').toTypedArray() as BigInt64Array)].map(Number),
  );
  for (const ts of [500, 20, 0]) {
    const out = ddim.step(modelOutput, ts, sample);
    assertBitExact(out.sample, get(ref, `ddim50_step_t${ts}.prev_sample`), `DDIM step t=${ts}`);
    assertBitExact(
      out.predOriginalSample,
      get(ref, `ddim50_step_t${ts}.pred_original_sample`),
      `DDIM x0 t=${ts}`,
    );
  }
  for (const ts of [20, 500]) {
    const out = ddim.reversedStep(modelOutput, ts, sample);
    assertBitExact(out.sample, get(ref, `ddim50_reversed_step_t${ts}.next_sample`), `DDIM reversed t=${ts}`);
    assertBitExact(
      out.predOriginalSample,
      get(ref, `ddim50_reversed_step_t${ts}.pred_original_sample`),
      `DDIM reversed x0 t=${ts}`,
    );
  }
  assert.throws(
    () => ddim.reversedStep(modelOutput, 980, sample),
    /timestep: 980 \+ 20 is past the last training timestep 999/,
  );
  // invert to any later timestep: with the stride's target it is the reversed step, bit for bit.
  assertBitExact(
    ddim.invert(modelOutput, 20, 40, sample).sample,
    get(ref, 'ddim50_reversed_step_t20.next_sample'),
    'DDIM invert 20 → 40',
  );
  assert.throws(() => ddim.invert(modelOutput, 40, 40, sample), /target timestep: must be after 40, got 40/);
  assert.throws(() => ddim.invert(modelOutput, 40, 1000, sample), /target timestep/);
  ddim.setTimesteps(1000);
  const medDift = ddim.step(modelOutput, 20, sample);
  assertBitExact(medDift.sample, get(ref, 'ddim1000_step_t20.prev_sample'), 'DDIM(1000) step t=20');
});

test('scheduler options are checked with one-line messages', () => {
  assert.throws(
    () => new DDPMScheduler({ schedule: 'quadratic' as never }),
    /schedule: expected one of linear, scaled_linear, cosine, got "quadratic"/,
  );
  assert.throws(
    () => new DDPMScheduler().alphaCumprod(1000),
    /timestep: expected an integer in \[0, 999\], got 1000/,
  );
  assert.throws(
    () => new DDIMScheduler().setTimesteps(0),
    /numInferenceSteps: expected an integer in \[1, 1000\], got 0/,
  );
});

test('linear and cosine schedules match their closed forms', () => {
  const lin = new DDPMScheduler({
    schedule: 'linear',
    betaStart: 1e-4,
    betaEnd: 0.02,
    numTrainTimesteps: 1000,
  });
  assert.ok(Math.abs(lin.tables.betas[0] - 1e-4) < 1e-9 && Math.abs(lin.tables.betas[999] - 0.02) < 1e-9);
  assert.ok(Math.abs(lin.tables.betas[500] - (1e-4 + (500 * (0.02 - 1e-4)) / 999)) < 1e-8);
  const cos = new DDPMScheduler({ schedule: 'cosine', numTrainTimesteps: 1000 });
  // ᾱ_t = cos²(((t/T + s)/(1 + s))·π/2) / cos²((s/(1 + s))·π/2)
  const s = 0.008;
  const abar = (t: number) =>
    Math.cos(((t / 1000 + s) / (1 + s)) * Math.PI * 0.5) ** 2 / Math.cos((s / (1 + s)) * Math.PI * 0.5) ** 2;
  for (const t of [0, 100, 500, 900])
    assert.ok(Math.abs(cos.tables.alphasCumprod[t] - abar(t)) < 1e-5, `cosine ᾱ_${t}`);
});

test("DiffuseReg's schedule in double precision: tables, the last DDPM step, a DDIM step in closed form", () => {
  const ddpm = new DDPMScheduler(DIFFUSEREG_SCHEDULE);
  const ddim = new DDIMScheduler(DIFFUSEREG_SCHEDULE);
  // β_t = 1e-6 + t·(1e-2 − 1e-6)/1999, ᾱ_t = ∏_{s ≤ t} (1 − β_s)
  const abar: number[] = [];
  let product = 1;
  for (let t = 0; t < 2000; t++) {
    const beta = 1e-6 + (t * (1e-2 - 1e-6)) / 1999;
    product *= 1 - beta;
    abar.push(product);
    assert.ok(Math.abs(ddpm.tables.betas[t] - beta) < 1e-15, `β_${t}`);
    assert.ok(Math.abs(ddpm.tables.alphasCumprod[t] / product - 1) < 1e-12, `ᾱ_${t}`);
  }
  const xt = [0.3, -1.2, 2.5, 0.01];
  const eps = [1.1, -0.4, 0.7, -2];
  const shape = [1, 1, 2, 2];
  const x0 = (a: number) => xt.map((x, i) => (x - Math.sqrt(1 - a) * eps[i]) / Math.sqrt(a));
  const close = (actual: Float32Array, expected: number[], what: string) =>
    expected.forEach((v, i) =>
      assert.ok(
        Math.abs(actual[i] - v) <= 1e-6 * Math.max(1, Math.abs(v)),
        `${what}[${i}]: ${actual[i]} vs ${v}`,
      ),
    );
  // At t = 0 the DDPM step is x̂₀ itself, no noise: coefficient β_0/(1 − ᾱ_0) = 1 (float32 tables give 0.987).
  const last = ddpm.step(tensor(eps).reshape(shape), 0, tensor(xt).reshape(shape), new Generator(1));
  close(last.sample.toTypedArray() as Float32Array, x0(abar[0]), 'DDPM t=0');
  // DDIM-10 steps from t = 1000 to 800: x_800 = √ᾱ_800·x̂₀ + √(1 − ᾱ_800)·ε.
  assert.deepEqual(ddim.setTimesteps(10), [1800, 1600, 1400, 1200, 1000, 800, 600, 400, 200, 0]);
  const step = ddim.step(tensor(eps).reshape(shape), 1000, tensor(xt).reshape(shape));
  const expected = x0(abar[1000]).map((v, i) => Math.sqrt(abar[800]) * v + Math.sqrt(1 - abar[800]) * eps[i]);
  close(step.sample.toTypedArray() as Float32Array, expected, 'DDIM 1000 → 800');
  close(step.predOriginalSample.toTypedArray() as Float32Array, x0(abar[1000]), 'DDIM x̂₀');
});

test('training targets and x̂₀ of the three prediction types, in closed form for the DiffuseReg schedule', () => {
  // ᾱ_700 from the schedule's definition (β_t = 1e-6 + t·(1e-2 − 1e-6)/1999), not from the scheduler.
  let a = 1;
  for (let t = 0; t <= 700; t++) a *= 1 - (1e-6 + (t * (1e-2 - 1e-6)) / 1999);
  const x0 = [0.3, -1.2, 2.5, 0.01];
  const eps = [1.1, -0.4, 0.7, -2];
  const xt = x0.map((x, i) => Math.sqrt(a) * x + Math.sqrt(1 - a) * eps[i]);
  const expected = {
    epsilon: eps,
    sample: x0,
    v_prediction: x0.map((x, i) => Math.sqrt(a) * eps[i] - Math.sqrt(1 - a) * x),
  };
  const shape = [1, 1, 2, 2];
  for (const [type, target] of Object.entries(expected)) {
    const s = new DDPMScheduler({ ...DIFFUSEREG_SCHEDULE, predictionType: type as keyof typeof expected });
    const out = s.trainingTarget(tensor(x0).reshape(shape), tensor(eps).reshape(shape), 700);
    const back = s.predictedOriginal(tensor(target).reshape(shape), tensor(xt).reshape(shape), 700);
    (out.toTypedArray() as Float32Array).forEach((v, i) =>
      assert.ok(Math.abs(v - target[i]) < 1e-6, `${type} target[${i}]: ${v} vs ${target[i]}`),
    );
    (back.toTypedArray() as Float32Array).forEach((v, i) =>
      assert.ok(Math.abs(v - x0[i]) < 1e-5, `${type} x̂₀[${i}]: ${v} vs ${x0[i]}`),
    );
  }
});
