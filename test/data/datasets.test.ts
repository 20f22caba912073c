import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fieldFromFunction, sampleField, Volume, type Vec3 } from '../../src/geometry/index.ts';
import { writeVolume } from '../../src/io/index.ts';
import { dice } from '../../src/eval/metrics.ts';
import {
  acdcDataset,
  dirLabDataset,
  dirLabInitialDisplacement,
  forstnerKeypoints,
  learn2regDataset,
  lpba40Dataset,
  lungMask,
  readLearn2RegDisplacement,
  syntheticLungDataset,
  writeLearn2RegDisplacement,
} from '../../src/data/index.ts';
import { requireShared } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-datasets-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('LPBA40: atlas S01 (moving) → subjects S11–S40 (fixed), 56 labels, unregistered Dice in the published range', async (t) => {
  const root = requireShared(t, 'data', 'brain-lpba40');
  if (!root) return;
  const dataset = lpba40Dataset({ root });
  assert.deepEqual(
    dataset.caseIds,
    Array.from({ length: 30 }, (_, n) => `S${n + 11}`),
  );
  const item = await dataset.load('S23');
  assert.equal(item.labelSet?.length, 56);
  assert.deepEqual(item.fixed.dims, [160, 192, 160]);
  assert.ok(item.fixed.sameGrid(item.moving));
  // every one of the 56 structures occurs in subject and atlas, and nothing else
  for (const labels of [item.fixedLabels, item.movingLabels]) {
    const present = new Set(labels?.data);
    present.delete(0);
    assert.deepEqual(
      [...present].sort((a, b) => a - b),
      item.labelSet,
    );
  }
  // the moving image is the atlas: its labels differ from the subject's
  const d = dice(item.fixedLabels as Volume, item.movingLabels as Volume, { labels: item.labelSet });
  assert.equal(d.perLabel.length, 56);
  // README: S01 vs S11–S40 before registration, mean over 56 labels in 0.428–0.612
  assert.ok(d.mean > 0.428 && d.mean < 0.612, `Dice ${d.mean}`);
  await assert.rejects(dataset.load('S02'), /LPBA40 case "S02": unknown/);
});

test('ACDC: ES (moving) → ED (fixed), labels RV 1, myocardium 2, LV 3, geometry from patients.json', async (t) => {
  const root = requireShared(t, 'data', 'cardiac-acdc');
  if (!root) return;
  const dataset = acdcDataset({ root });
  assert.equal(dataset.caseIds.length, 100);
  assert.equal(dataset.caseIds[0], 'patient001');
  assert.equal(dataset.caseIds[99], 'patient100');
  const info = JSON.parse(readFileSync(join(root, 'patients.json'), 'utf8')).patients.patient042;
  const full = await acdcDataset({ root, cropMargin: 0 }).load('patient042');
  assert.deepEqual(full.fixed.dims, info.dims_xyz);
  full.fixed.spacing.forEach((s, a) => assert.ok(Math.abs(s - info.spacing_mm_xyz[a]) < 1e-5));
  assert.deepEqual([...new Set(full.fixedLabels?.data)].sort(), info.ed_labels_present);
  const count = (v: Volume | undefined, l: number) =>
    (v?.data as Uint8Array).reduce((s, x) => s + (x === l ? 1 : 0), 0);
  // ED has the larger LV cavity (label 3) than ES
  assert.ok(count(full.fixedLabels, 3) > count(full.movingLabels, 3));
  // the default crop keeps every label voxel, all slices, and world positions
  const item = await dataset.load('patient042');
  assert.deepEqual(item.labelSet, [1, 2, 3]);
  assert.ok(item.fixed.dims[0] < info.dims_xyz[0] && item.fixed.dims[1] < info.dims_xyz[1]);
  assert.equal(item.fixed.dims[2], info.dims_xyz[2]);
  for (const l of [1, 2, 3]) {
    assert.equal(count(item.fixedLabels, l), count(full.fixedLabels, l));
    assert.equal(count(item.movingLabels, l), count(full.movingLabels, l));
  }
  const p = item.fixed.voxelToWorld([5, 7, 3]);
  const q = full.fixed.worldToVoxel(p).map(Math.round) as Vec3;
  assert.equal(item.fixed.data[item.fixed.offset(5, 7, 3)], full.fixed.data[full.fixed.offset(...q)]);
});

/** Gaussian blobs of σ = 1.5 voxels with the given amplitudes at integer centres, on a 40³ grid. */
function blobs(centres: Vec3[], amplitudes: number[]): Volume<Float32Array> {
  const n = 40;
  const data = new Float32Array(n ** 3);
  for (let k = 0, t = 0; k < n; k++)
    for (let j = 0; j < n; j++)
      for (let i = 0; i < n; i++, t++)
        centres.forEach(([a, b, c], m) => {
          data[t] += amplitudes[m] * Math.exp(-((i - a) ** 2 + (j - b) ** 2 + (k - c) ** 2) / (2 * 1.5 ** 2));
        });
  return new Volume({ data, dims: [n, n, n], spacing: [1, 1, 1], origin: [-5, 3, 7] });
}

test('Förstner keypoints: finds each blob centre, strongest first, and respects the mask', () => {
  const centres: Vec3[] = [
    [10, 12, 9],
    [28, 10, 20],
    [15, 30, 30],
    [30, 29, 12],
  ];
  const amplitudes = [1, 3, 2, 1.5];
  const volume = blobs(centres, amplitudes);
  const found = forstnerKeypoints(volume, { minDistance: 4, sigmaDerivative: 0.5, sigmaIntegration: 1.5 });
  assert.equal(found.indices.length, 4);
  // strength grows with amplitude² (the structure tensor is quadratic in the image)
  const order = [1, 2, 3, 0];
  found.indices.forEach((index, n) => assert.deepEqual(index, centres[order[n]]));
  assert.deepEqual(found.points[0], volume.voxelToWorld(centres[1]));
  for (let n = 1; n < found.strength.length; n++) assert.ok(found.strength[n] <= found.strength[n - 1]);

  const mask = volume.withData(new Uint8Array(volume.size));
  mask.data[mask.offset(...centres[2])] = 1;
  mask.data[mask.offset(...centres[0])] = 1;
  const masked = forstnerKeypoints(volume, {
    mask,
    minDistance: 4,
    sigmaDerivative: 0.5,
    sigmaIntegration: 1.5,
  });
  assert.deepEqual(masked.indices, [centres[2], centres[0]]);
  assert.equal(forstnerKeypoints(volume, { count: 2, minDistance: 4 }).indices.length, 2);
});

test('lungMask: enclosed air below −400 HU, vessels inside filled, outside air and small pockets left out', () => {
  const [nx, ny, nz] = [48, 40, 20];
  const data = new Int16Array(nx * ny * nz).fill(-1000);
  let lungVoxels = 0;
  for (let k = 0, t = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, t++) {
        const body = ((i - 24) / 21) ** 2 + ((j - 20) / 17) ** 2 <= 1;
        if (!body) continue;
        data[t] = 40;
        const lung =
          k >= 3 &&
          k <= 16 &&
          (((i - 14) / 7) ** 2 + ((j - 20) / 10) ** 2 <= 1 ||
            ((i - 34) / 7) ** 2 + ((j - 20) / 10) ** 2 <= 1);
        if (lung) {
          lungVoxels++;
          data[t] = (i === 14 && j === 20) || (i === 34 && j === 21) ? 60 : -850; // a vessel in each lung
        }
        if (i === 24 && j === 30 && k === 10) data[t] = -700; // a one-voxel gas pocket
      }
  const ct = new Volume({ data, dims: [nx, ny, nz], spacing: [1, 1, 2] });
  const mask = lungMask(ct);
  let count = 0;
  for (let t = 0; t < mask.size; t++) count += mask.data[t];
  assert.equal(count, lungVoxels);
  assert.equal(mask.data[mask.offset(14, 20, 10)], 1);
  assert.equal(mask.data[mask.offset(24, 30, 10)], 0);
  assert.equal(mask.data[mask.offset(0, 0, 10)], 0);
});

test('synthetic lung cases: keypoints in the lungs, exact correspondences through the field, seeds give new cases', async (t) => {
  const ctPath = requireShared(t, 'data', 'lung', 'ct-thorax-256.nii.gz');
  if (!ctPath) return;
  const dataset = syntheticLungDataset({ ctPath, count: 2, seed: 5, quick: true, keypoints: 60 });
  assert.deepEqual(dataset.caseIds, ['lung-s5-01', 'lung-s5-02']);
  const item = await dataset.load('lung-s5-01');
  const fixedPoints = item.fixedPoints as Vec3[];
  const movingPoints = item.movingPoints as Vec3[];
  assert.ok(fixedPoints.length >= 40, `${fixedPoints.length} keypoints`);
  for (const p of fixedPoints)
    assert.equal(
      item.fixedLabels?.data[item.fixed.offset(...(item.fixed.worldToVoxel(p).map(Math.round) as Vec3))],
      1,
    );
  // moving image at the moving point shows what the fixed image shows at the fixed point
  const at = (v: Volume, p: Vec3) => v.data[v.offset(...(v.worldToVoxel(p).map(Math.round) as Vec3))];
  const differences = fixedPoints
    .map((p, n) => Math.abs(at(item.fixed, p) - at(item.moving, movingPoints[n])))
    .sort((a, b) => a - b);
  const spread = fixedPoints.map((p) => Math.abs(at(item.fixed, p) - at(item.fixed, fixedPoints[0])));
  assert.ok(differences[differences.length >> 1] < 0.25 * Math.max(...spread), 'moving(q) ≈ fixed(p)');
  // breathing: mostly cranio-caudal (+z), 15–25 mm at the base
  const motion = fixedPoints.map((p, n) => movingPoints[n].map((q, a) => q - p[a]));
  assert.ok(Math.max(...motion.map((m) => m[2])) > 10 && Math.max(...motion.map((m) => m[2])) <= 25.01);
  assert.ok(motion.every((m) => m[2] >= -1e-6));
  const again = await syntheticLungDataset({ ctPath, count: 2, seed: 5, quick: true, keypoints: 60 }).load(
    'lung-s5-01',
  );
  assert.deepEqual(again.movingPoints, movingPoints);
  const other = await syntheticLungDataset({ ctPath, count: 2, seed: 6, quick: true, keypoints: 60 }).load(
    'lung-s6-01',
  );
  assert.deepEqual(other.fixedPoints, fixedPoints);
  assert.notDeepEqual(other.movingPoints, movingPoints);
});

// Published initial displacement (mean, SD in mm): DIR-Lab tables as given in ../shared/data/README.md
const PUBLISHED: Record<string, [number, number]> = {
  case1: [3.89, 2.78], case2: [4.34, 3.9], case3: [6.94, 4.05], case4: [9.83, 4.86], case5: [7.48, 5.51],
  case6: [10.89, 6.97], case7: [11.03, 7.43], case8: [14.99, 9.01], case9: [7.92, 3.98], case10: [7.3, 6.35],
  copd1: [26.34, 11.42], copd2: [21.79, 6.46], copd3: [12.64, 6.38], copd4: [29.58, 12.94], copd5: [30.08, 13.36],
  copd6: [28.46, 9.17], copd7: [21.6, 7.74], copd8: [26.46, 13.24], copd9: [14.86, 9.82], copd10: [21.81, 10.51],
}; // prettier-ignore

test('DIR-Lab: initial landmark displacement of all 20 cases equals the published values', (t) => {
  const landmarkDir = requireShared(t, 'data', 'lung', 'landmarks');
  if (!landmarkDir) return;
  for (const [id, [mean, sd]] of Object.entries(PUBLISHED)) {
    const s = dirLabInitialDisplacement(id, landmarkDir);
    assert.equal(s.count, 300, id);
    // 4DCT: to the published 2 decimals; COPDgene's published SDs mix ddof conventions (README: within 0.02)
    const copd = id.startsWith('copd');
    assert.ok(Math.abs(s.mean - mean) <= (copd ? 0.011 : 0.005), `${id} mean ${s.mean} vs ${mean}`);
    assert.ok(Math.abs(s.sd - sd) <= (copd ? 0.021 : 0.005), `${id} sd ${s.sd} vs ${sd}`);
  }
});

test('DIR-Lab reader: finds raw images by DIR-Lab names, HU, landmarks on the case grid', async (t) => {
  const landmarkDir = requireShared(t, 'data', 'lung', 'landmarks');
  if (!landmarkDir) return;
  const images = join(dir, 'dirlab', 'Case1Pack', 'Images');
  mkdirSync(images, { recursive: true });
  const n = 256 * 256 * 94;
  const raw = Buffer.alloc(2 * n);
  raw.writeInt16LE(1000, 0); // voxel (0, 0, 0) = 1000 stored = −24 HU
  writeFileSync(join(images, 'case1_T00_s.img'), raw);
  writeFileSync(join(images, 'case1_T50_s.img'), raw);
  const dataset = dirLabDataset({ suite: '4dct', imageDir: join(dir, 'dirlab'), landmarkDir });
  assert.deepEqual(dataset.caseIds, ['case1']);
  const item = await dataset.load('case1');
  assert.deepEqual(item.fixed.dims, [256, 256, 94]);
  assert.equal(item.fixed.data[0], -24);
  assert.equal(item.fixedPoints?.length, 300);
  // first T00 landmark of case 1, 1-based voxel indices in the file → world on the DIR-Lab grid
  const first = readFileSync(join(landmarkDir, 'dirlab-4dct', 'Case1_300_T00_xyz.txt'), 'utf8')
    .trim()
    .split(/\s+/)
    .slice(0, 3)
    .map(Number);
  assert.deepEqual(item.fixedPoints?.[0], item.fixed.voxelToWorld(first.map((v) => v - 1) as Vec3));
  writeFileSync(join(images, 'copd1_iBHCT.img'), Buffer.alloc(10));
  writeFileSync(join(images, 'copd1_eBHCT.img'), Buffer.alloc(10));
  const copd = dirLabDataset({ suite: 'copdgene', imageDir: join(dir, 'dirlab'), landmarkDir });
  await assert.rejects(
    copd.load('copd1'),
    /copd1_iBHCT\.img: has 10 bytes but copd1 \(512x512x121 int16\) needs 63438848/,
  );
  assert.throws(
    () => dirLabDataset({ suite: '4dct', imageDir: join(dir, 'nowhere'), landmarkDir }),
    /DIR-Lab image folder not found/,
  );
});

test('Learn2Reg layout: dataset JSON pairs, keypoints, labels; displacement files round trip in voxel units', async () => {
  const root = join(dir, 'Toy');
  for (const sub of ['imagesTr', 'keypointsTr', 'labelsTr']) mkdirSync(join(root, sub), { recursive: true });
  const grid = new Volume({
    data: new Float32Array(12 * 10 * 8),
    dims: [12, 10, 8],
    spacing: [1.5, 2, 2.5],
    origin: [10, -4, 3],
    direction: [-1, 0, 0, 0, -1, 0, 0, 0, 1], // RAS-aligned array axes, as most Learn2Reg files
  });
  for (const c of ['0001', '0002'])
    for (const m of ['0000', '0001']) {
      const image = grid.withData(Float32Array.from(grid.data, (_, t) => t + Number(c) + Number(m)));
      await writeVolume(join(root, 'imagesTr', `Toy_${c}_${m}.nii.gz`), image);
      writeFileSync(join(root, 'keypointsTr', `Toy_${c}_${m}.csv`), `1,2,3\n4.5,5,6\n`);
    }
  await writeVolume(
    join(root, 'labelsTr', 'Toy_0002_0000.nii.gz'),
    grid.withData(new Uint8Array(grid.size).fill(1)),
  );
  await writeVolume(
    join(root, 'labelsTr', 'Toy_0002_0001.nii.gz'),
    grid.withData(new Uint8Array(grid.size).fill(2)),
  );
  const pairs = ['0001', '0002'].map((c) => ({
    fixed: `./imagesTr/Toy_${c}_0000.nii.gz`,
    moving: `./imagesTr/Toy_${c}_0001.nii.gz`,
  }));
  writeFileSync(
    join(root, 'Toy_dataset.json'),
    JSON.stringify({ name: 'Toy', modality: { 0: 'CT' }, registration_val: pairs }),
  );

  const dataset = learn2regDataset({ root });
  assert.deepEqual(dataset.caseIds, ['0001_0001', '0002_0002']);
  const item = await dataset.load('0002_0002');
  assert.equal(item.modality, 'ct');
  assert.equal(item.moving.data[5], 5 + 2 + 1);
  assert.ok(item.fixed.sameGrid(grid));
  assert.deepEqual(item.fixedPoints?.[1], grid.voxelToWorld([4.5, 5, 6]));
  assert.equal(item.movingLabels?.data[0], 2);
  assert.equal((await dataset.load('0001_0001')).fixedLabels, undefined);

  const field = fieldFromFunction(grid, ([x, y, z]) => [0.3 * x - 1, 2, 0.1 * z * y]);
  const path = writeLearn2RegDisplacement(dir, '0002_0002', field);
  assert.match(path, /disp_0002_0002\.nii\.gz$/);
  const header = gunzipSync(readFileSync(path));
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((n) => header.readInt16LE(40 + 2 * n)),
    [4, 12, 10, 8, 3],
  );
  // voxel units along the array axes: the x component of voxel (0,0,0) is u_x / (−1.5)
  const u0 = sampleField(field, [grid.voxelToWorld([0, 0, 0])])[0];
  const offset = header.readFloatLE(108);
  assert.ok(Math.abs(header.readFloatLE(offset) - u0[0] / -1.5) < 1e-5);
  assert.ok(Math.abs(header.readFloatLE(offset + 4 * grid.size) - u0[1] / -2) < 1e-5);
  const back = await readLearn2RegDisplacement(path);
  assert.ok(back.sameGrid(grid));
  back.data.forEach((v, t) => assert.ok(Math.abs(v - field.data[t]) < 1e-4));
});
