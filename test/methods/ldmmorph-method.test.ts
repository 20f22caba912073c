/**
 * LDM-Morph as a registration method, on a tiny untrained model exported as the shipped files are:
 * 2-D pairs give a field on the fixed slice; stacks give a field on the fixed grid whose slices are
 * the 2-D results of the slices and that never moves through the plane; moving stacks on other grids
 * are resampled first; the 2-D outputs (NIfTI field, PNG warped image); one-line errors, also from the
 * CLI, whose 2-D rule belongs to the method.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { volumeSlice } from '../../src/data/slices.ts';
import { Grid, resampleVolume, Volume, warpVolume, type Mat3, type Vec3 } from '../../src/geometry/index.ts';
import { readPng, readVolume, writeVolume } from '../../src/io/index.ts';
import { loadLdmMorphModel } from '../../src/methods/ldmmorph/model.ts';
import { ldmMorphMethod, registerSlice, registerStack } from '../../src/methods/ldmmorph/method.ts';
import { sliceGrid, sliceImageOnGrid } from '../../src/methods/ldmmorph/grid.ts';
import { pairFeatures } from '../../src/methods/ldmmorph/predict.ts';
import { cat, Generator, noGrad, randn } from '../../src/engine/index.ts';
import { diffusionFeatures, LDM_MORPH_FEATURE_EXTRACTION } from '../../src/models/ldm2d/index.ts';
import { assertClose } from '../helpers/tensors.ts';
import { methodEntry, type RegistrationCase } from '../../src/methods/method.ts';
import { encodePng } from '../../src/util/png.ts';
import { acdcDataset } from '../../src/data/acdc.ts';
import { runBenchmark } from '../../src/eval/bench/harness.ts';
import { identityMethod } from '../../src/methods/baselines/identity.ts';
import { repoRoot } from '../helpers/shared.ts';
import { exportTinyModel, syntheticAcdc } from './ldmmorph-fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-ldmmorph-method-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const modelDir = join(dir, 'model');
exportTinyModel(modelDir);

// A short-axis stack tilted out of the axial plane (slice normal not along z).
const c = Math.cos(0.4);
const s = Math.sin(0.4);
const tilted: Mat3 = [1, 0, 0, 0, c, -s, 0, s, c];

/** A ring (myocardium-like) of radius `r` voxels around (cx + k, 20) in slice k of a 48×40×depth stack. */
function ring(
  r: number,
  cx: number,
  depth: number,
  geometry: { spacing: Vec3; origin: Vec3; direction: Mat3 },
) {
  const dims: Vec3 = [48, 40, depth];
  const v = new Volume({ data: new Float32Array(dims[0] * dims[1] * depth), dims, ...geometry });
  for (let t = 0; t < v.data.length; t++) {
    const [i, j, k] = [t % 48, Math.floor(t / 48) % 40, Math.floor(t / 1920)];
    const d = Math.hypot(i - cx - k, j - 20);
    v.data[t] = (Math.abs(d - r) < 3 ? 200 : 40) + 5 * k;
  }
  return v;
}

const geometry = { spacing: [1.5, 1.5, 8] as Vec3, origin: [-30, 12, 4] as Vec3, direction: tilted };
const fixedStack = ring(10, 24, 4, geometry);
const movingStack = ring(12, 26, 4, geometry);
const item = (fixed: Volume, moving: Volume, modality: 'mr' | 'ct' = 'mr'): RegistrationCase => ({
  id: 'pair',
  fixed,
  moving,
  modality,
});
const normal: Vec3 = [tilted[2], tilted[5], tilted[8]];

test('a 2-D pair: a field on the fixed slice, in-plane, the same for the same seed', async () => {
  const method = ldmMorphMethod(modelDir);
  const fixed = volumeSlice(fixedStack, 1);
  const moving = volumeSlice(movingStack, 1);
  const r = await method.register(item(fixed, moving), { seed: 3 });
  const field = r.field!;
  assert.ok(field.sameGrid(fixed));
  assert.equal(field.components, 3);
  const n = field.size;
  let largest = 0;
  for (let t = 0; t < n; t++) {
    const u = [field.data[t], field.data[n + t], field.data[2 * n + t]];
    largest = Math.max(largest, Math.hypot(...u));
    assert.ok(Math.abs(u[0] * normal[0] + u[1] * normal[1] + u[2] * normal[2]) < 1e-4, 'through-plane');
  }
  assert.ok(largest > 0.05, `the tiny network moves something (largest ${largest} mm)`);
  const again = await method.register(item(fixed, moving), { seed: 3 });
  assert.deepEqual(again.field!.data, field.data);
  assert.deepEqual(r.details, { slices: 1, variant: 'full' });

  // The 2-D outputs: the field as a one-slice NIfTI of 3 components, the warped image as PNG.
  await writeVolume(join(dir, 'field.nii.gz'), field);
  const back = await readVolume(join(dir, 'field.nii.gz'));
  assert.deepEqual(back.dims, [48, 40, 1]);
  assert.equal(back.components, 3);
  await writeVolume(join(dir, 'warped.png'), warpVolume(moving, field));
  assert.deepEqual((await readVolume(join(dir, 'warped.png'))).dims, [48, 40, 1]);
});

test("pairFeatures: per scale the moving image's features, then the fixed image's, under one noise draw", () => {
  const model = loadLdmMorphModel(modelDir);
  const { ldm } = model;
  const [fixed, moving] = [fixedStack, movingStack].map((v) =>
    sliceImageOnGrid(volumeSlice(v, 1), sliceGrid(volumeSlice(fixedStack, 1), [64, 64]), 'image'),
  );
  const features = pairFeatures(ldm, moving!, fixed!, new Generator(7), LDM_MORPH_FEATURE_EXTRACTION);
  // The noise: one (1, latent channels, 16, 16) draw of Generator(7), used for each image on its own.
  const noise = randn([1, 2, 16, 16], { generator: new Generator(7) });
  const [m, f] = [moving!, fixed!].map((x) => noGrad(() => diffusionFeatures(ldm, x, noise)));
  features.forEach((both, scale) => {
    assert.deepEqual([...both.shape], [1, 2 * m[scale].shape[1], ...m[scale].shape.slice(2)]);
    assertClose(both, cat([m[scale], f[scale]], 1), `scale ${scale}`, 1e-4);
  });
  model.dispose();
});

test('a stack, slice by slice: each slice of the field is the 2-D result of that slice pair', async () => {
  const model = loadLdmMorphModel(modelDir);
  const field = registerStack(model, fixedStack, movingStack, 0);
  assert.ok(field.sameGrid(fixedStack));
  const plane = 48 * 40;
  for (let k = 0; k < 4; k++) {
    const slice = registerSlice(model, volumeSlice(fixedStack, k), volumeSlice(movingStack, k), 0);
    for (let comp = 0; comp < 3; comp++)
      assert.deepEqual(
        field.data.subarray(comp * fixedStack.size + k * plane, comp * fixedStack.size + (k + 1) * plane),
        slice.data.subarray(comp * plane, (comp + 1) * plane),
        `slice ${k} component ${comp}`,
      );
  }
  // A blank slice pair registers to the zero field.
  const blank = new Volume({ data: new Float32Array(plane).fill(9), dims: [48, 40, 1], ...geometry });
  assert.ok(registerSlice(model, blank, volumeSlice(movingStack, 0), 0).data.every((v) => v === 0));

  // A moving stack on another grid is resampled onto the fixed grid first.
  const finer = resampleVolume(
    movingStack,
    new Grid({
      dims: [60, 50, 8],
      spacing: [1.2, 1.2, 4],
      origin: fixedStack.voxelToWorld([-2, -2, -0.25]),
      direction: tilted,
    }),
  );
  const method = ldmMorphMethod(modelDir);
  const r = await method.register(item(fixedStack, finer, 'ct'));
  assert.ok(r.field!.sameGrid(fixedStack));
  const expected = registerStack(model, fixedStack, resampleVolume(finer, fixedStack), 0);
  assert.deepEqual(r.field!.data, expected.data);
  assert.deepEqual(r.details, { slices: 4, variant: 'full' });
  model.dispose();
});

test('the benchmark harness scores slice-by-slice fields on ACDC-like stacks like any 3-D method', async () => {
  const root = join(dir, 'acdc');
  await syntheticAcdc(root, ['patient017']);
  const report = await runBenchmark({
    dataset: acdcDataset({ root }),
    methods: [identityMethod, ldmMorphMethod(modelDir)],
    outDir: join(dir, 'bench'),
  });
  const [identity, ldmmorph] = report.aggregate;
  assert.equal(ldmmorph.failures, 0);
  assert.deepEqual(Object.keys(ldmmorph.dicePerLabel ?? {}), Object.keys(identity.dicePerLabel ?? {}));
  for (const d of Object.values(ldmmorph.dicePerLabel ?? {})) assert.ok(d > 0 && d <= 1);
  assert.ok(ldmmorph.metrics.seconds!.mean > 0);
});

test('bad inputs give one line: 3-D to the 2-D path, mixed or non-matching pairs, missing weights', async () => {
  const model = loadLdmMorphModel(modelDir);
  const line = (pattern: RegExp) => (e: unknown) => {
    const message = (e as Error).message;
    assert.ok(!message.includes('\n'), message);
    assert.match(message, pattern);
    return true;
  };
  const slice = volumeSlice(fixedStack, 0);
  assert.throws(
    () => registerSlice(model, fixedStack, slice, 0),
    line(/^fixed image: expected one 2-D slice \(dims \[nx, ny, 1\]\), got 48x40x4 voxels$/),
  );
  const method = ldmMorphMethod(join(dir, 'nowhere'));
  // Pairs are checked before the model is looked for.
  await assert.rejects(
    method.register(item(slice, movingStack)),
    line(/^moving image: a 2-D fixed image needs a 2-D moving image, got 48x40x4 voxels$/),
  );
  await assert.rejects(
    method.register(item(fixedStack, slice)),
    line(/^moving image: a 3-D fixed image needs a 3-D moving image, got 48x40x1 voxels$/),
  );
  await assert.rejects(
    method.register(item(slice, volumeSlice(movingStack, 2))),
    line(/^moving image: its slice is not in the fixed slice's plane \(up to 2\.00 slice thicknesses away\)/),
  );
  await assert.rejects(
    method.register(item(slice, volumeSlice(movingStack, 0))),
    line(
      /nowhere\/model\.json: LDM-Morph model not found \(train it: diffreg train ldm2d, then diffreg train ldmmorph\)$/,
    ),
  );
  model.dispose();
});

test('a non-MR pair gets a warning on stderr', async () => {
  const written: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => written.push(chunk) > 0) as typeof process.stderr.write;
  try {
    await ldmMorphMethod(modelDir).register(
      item(volumeSlice(fixedStack, 0), volumeSlice(movingStack, 0), 'ct'),
    );
  } finally {
    process.stderr.write = write;
  }
  assert.deepEqual(written, [
    "diffreg: warning: ldmmorph's weights were trained on cardiac cine MR; this CT pair is outside what it learned\n",
  ]);
});

function diffreg(...args: string[]) {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'diffreg.js'), ...args], {
    encoding: 'utf8',
    cwd: repoRoot,
  });
  return { status: r.status, stderr: r.stderr };
}

test('CLI: register --method ldmmorph reads 2-D PNG images; other methods keep refusing them', async () => {
  const png = (name: string, width: number, height: number) => {
    const path = join(dir, name);
    writeFileSync(
      path,
      encodePng(
        width,
        height,
        Uint8Array.from({ length: width * height }, (_, i) => i % 251),
        1,
      ),
    );
    return path;
  };
  const [a, b, tiny] = [png('a.png', 40, 32), png('b.png', 40, 32), png('tiny.png', 4, 32)];
  const stack = join(dir, 'stack.nii.gz');
  await writeVolume(stack, fixedStack);
  const field = join(dir, 'cli-field.nii.gz');
  const oneLine = (r: ReturnType<typeof diffreg>, pattern: RegExp) => {
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trimEnd(), pattern);
  };
  const ldmmorph = ['register', '--method', 'ldmmorph', '--out-field', field];
  // Accepted, read and registered with the shipped model: the field and the warped PNG on the fixed slice.
  const r = diffreg(...ldmmorph, '--fixed', a, '--moving', b, '--out-warped', join(dir, 'w.png'));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readPng(join(dir, 'w.png')).dims, [40, 32, 1]);
  assert.deepEqual((await readVolume(field)).dims, [40, 32, 1]);
  oneLine(
    diffreg(...ldmmorph, '--fixed', tiny, '--moving', b),
    /tiny\.png: 4x32x1 voxels: slices along the third axis of at least 8x8 voxels are needed$/,
  );
  oneLine(
    diffreg(...ldmmorph, '--fixed', stack, '--moving', stack, '--out-warped', join(dir, 'w.png')),
    /^diffreg: --out-warped: a PNG holds one 2-D grey image, not 48x40x4 voxels of 1 component\(s\)$/,
  );
  oneLine(
    diffreg(
      'register',
      '--method',
      'ldmmorph',
      '--fixed',
      a,
      '--moving',
      b,
      '--out-field',
      join(dir, 'f.png'),
    ),
    /^diffreg: --out-field: expected a file name ending in \.nii, \.nii\.gz, \.mha, \.mhd, got/,
  );
  oneLine(
    diffreg('register', '--method', 'voxelmorph', '--fixed', a, '--moving', b, '--out-field', field),
    /a\.png: 40x32x1 voxels is not a 3-D volume: at least 4 voxels along every axis/,
  );
  assert.ok(methodEntry('ldmmorph').accepts2d && !methodEntry('voxelmorph').accepts2d);
});
