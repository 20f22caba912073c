/**
 * The NIfTI reader on the real (messy) shared headers, cross-checked against ITK (@itk-wasm/image-io),
 * and the expected geometry derived by hand from the affines published in ../shared/data/README.md.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readImageNode } from '@itk-wasm/image-io';
import { Volume, flipXY, type Mat3, type Vec3 } from '../../src/geometry/volume.ts';
import { readNifti, writeNifti } from '../../src/io/nifti.ts';
import { requireShared } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-nifti-shared-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const IDENTITY: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1];

/** ITK's reading of the same file; ITK warnings on stderr are silenced for the call. */
async function readWithItk(path: string) {
  const write = process.stderr.write;
  process.stderr.write = () => true;
  try {
    return await readImageNode(path);
  } finally {
    process.stderr.write = write;
  }
}

async function assertSameAsItk(volume: Volume, path: string) {
  const image = await readWithItk(path);
  assert.deepEqual(image.size, volume.dims);
  const close = (a: ArrayLike<number>, b: readonly number[], what: string) =>
    b.forEach((v, i) => assert.ok(Math.abs(a[i] - v) < 1e-9, `${what}[${i}] ITK ${a[i]} vs ours ${v}`));
  close(image.spacing, volume.spacing, 'spacing');
  close(image.origin, volume.origin, 'origin');
  close(image.direction as Float64Array, volume.direction, 'direction');
  assert.equal(image.data?.constructor, volume.data.constructor);
  const data = image.data as ArrayLike<number>;
  let differing = 0;
  for (let i = 0; i < volume.data.length; i++) if (data[i] !== volume.data[i]) differing++;
  assert.equal(differing, 0, 'voxel values differing from ITK');
}

test('thoracic CT: int16 HU unscaled; a world point maps to the voxel computed from the published affine', async (t) => {
  const path = requireShared(t, 'data', 'lung', 'ct-thorax-256.nii.gz');
  if (!path) return;
  const ct = readNifti(path);
  assert.ok(ct.data instanceof Int16Array, 'stored int16 without scaling stays int16');
  assert.deepEqual(ct.dims, [256, 256, 141]);
  assert.deepEqual(ct.spacing, [1.953125, 1.953125, 2]);
  assert.deepEqual(ct.origin, [-249.51171875, -163.51171875, -164.5]);
  assert.deepEqual(ct.direction, IDENTITY);
  // Published RAS affine: x = 249.51171875 − 1.953125·i, y = 163.51171875 − 1.953125·j, z = −164.5 + 2·k.
  // Voxel (100, 50, 70): RAS (54.19921875, 65.85546875, −24.5), so LPS (−54.19921875, −65.85546875, −24.5).
  const lps: Vec3 = [-54.19921875, -65.85546875, -24.5];
  assert.deepEqual(ct.worldToVoxel(lps), [100, 50, 70]);
  assert.deepEqual(flipXY(ct.voxelToWorld([100, 50, 70])), [54.19921875, 65.85546875, -24.5]);
  // k = 0 is the most inferior slice (z = −164.5 mm), k = 140 the most superior (z = +115.5 mm).
  assert.equal(ct.voxelToWorld([0, 0, 140])[2], 115.5);
  await assertSameAsItk(ct, path);
});

test('thoracic CT round trip: geometry identical and data bit-identical', (t) => {
  const path = requireShared(t, 'data', 'lung', 'ct-thorax-256.nii.gz');
  if (!path) return;
  const ct = readNifti(path);
  writeNifti(join(dir, 'ct.nii.gz'), ct);
  const back = readNifti(join(dir, 'ct.nii.gz'));
  assert.deepEqual(
    [back.dims, back.spacing, back.origin, back.direction],
    [ct.dims, ct.spacing, ct.origin, ct.direction],
  );
  assert.ok(Buffer.from(back.data.buffer).equals(Buffer.from(ct.data.buffer)));
});

test('ACDC patient001 ED: unscaled sform (code 2), spacing from pixdim equals patients.json', async (t) => {
  const path = requireShared(t, 'data', 'cardiac-acdc', 'patient001', 'ed.nii.gz');
  const table = requireShared(t, 'data', 'cardiac-acdc', 'patients.json');
  if (!path || !table) return;
  const info = JSON.parse(readFileSync(table, 'utf8')).patients.patient001;
  const ed = readNifti(path);
  assert.deepEqual(ed.spacing, info.spacing_mm_xyz);
  assert.deepEqual(ed.dims, info.dims_xyz);
  // sform diag(−1,−1,1) in RAS is the identity in LPS, origin 0.
  assert.deepEqual([ed.origin, ed.direction], [[0, 0, 0], IDENTITY]);
  await assertSameAsItk(ed, path);
  const gt = readNifti(path.replace('ed.nii.gz', 'ed_gt.nii.gz'));
  assert.ok(gt.sameGrid(ed), 'segmentation on the image grid');
  await assertSameAsItk(gt, path.replace('ed.nii.gz', 'ed_gt.nii.gz'));
});

test('LPBA40 S01: qform diag(-1,-1,1) gives LPS identity; the label data sit mirrored (documented caveat)', async (t) => {
  const image = requireShared(t, 'data', 'brain-lpba40', 'S01.nii.gz');
  const labelsPath = requireShared(t, 'data', 'brain-lpba40', 'S01.label.nii.gz');
  if (!image || !labelsPath) return;
  const s01 = readNifti(image);
  assert.ok(s01.data instanceof Float32Array);
  assert.deepEqual(
    [s01.dims, s01.spacing, s01.origin, s01.direction],
    [[160, 192, 160], [1, 1, 1], [0, 0, 0], IDENTITY],
  );
  // RAS = diag(−1,−1,1)·(i,j,k): voxel (10,20,30) is RAS (−10,−20,30), i.e. LPS (10,20,30).
  assert.deepEqual(s01.worldToVoxel(flipXY([-10, -20, 30])), [10, 20, 30]);
  await assertSameAsItk(s01, image);

  const labels = readNifti(labelsPath);
  assert.ok(labels.data instanceof Uint8Array && labels.sameGrid(s01));
  // The reader cannot repair data: label 21 ("L superior frontal gyrus") lies at smaller LPS x
  // (toward patient right) than label 22 ("R ..."), as ../shared/data/README.md warns; same for 23/24.
  const meanX = (label: number) => {
    let sum = 0;
    let count = 0;
    for (let k = 0, o = 0; k < 160; k++)
      for (let j = 0; j < 192; j++)
        for (let i = 0; i < 160; i++, o++)
          if (labels.data[o] === label) {
            sum += labels.voxelToWorld([i, j, k])[0];
            count++;
          }
    return sum / count;
  };
  // Measured gaps: 19 mm (21/22) and 57 mm (23/24, middle frontal gyri).
  assert.ok(meanX(21) < meanX(22) - 10, 'the "L" superior frontal gyrus sits on the world-right side');
  assert.ok(meanX(23) < meanX(24) - 10, 'the "L" middle frontal gyrus sits on the world-right side');
});

test('ITK reads our NIfTI: oblique geometry agrees, vector components stay LPS (intent 1007)', async () => {
  const [c, s] = [Math.cos(0.5), Math.sin(0.5)];
  const field = new Volume({
    data: Float32Array.from({ length: 3 * 24 }, (_, i) => i * 0.25 - 4),
    dims: [4, 3, 2],
    components: 3,
    spacing: [0.8, 1.2, 2.5],
    origin: [-10.5, 20.25, 3],
    direction: [c, 0, s, 0, 1, 0, -s, 0, c],
  });
  const path = join(dir, 'field.nii.gz');
  writeNifti(path, field);
  const image = await readWithItk(path);
  assert.equal(image.imageType.components, 3);
  const direction = image.direction as Float64Array;
  field.direction.forEach((v, i) => assert.ok(Math.abs(direction[i] - v) < 1e-6, `direction[${i}]`));
  field.origin.forEach((v, i) => assert.ok(Math.abs(image.origin[i] - v) < 1e-5, `origin[${i}]`));
  field.spacing.forEach((v, i) => assert.ok(Math.abs(image.spacing[i] - v) < 1e-6, `spacing[${i}]`));
  // ITK interleaves components; voxel v, component k must equal our planar data[k·N + v] unchanged.
  const n = 24;
  const data = image.data as Float32Array;
  for (let v = 0; v < n; v++)
    for (let k = 0; k < 3; k++) assert.equal(data[3 * v + k], field.data[k * n + v]);
});
