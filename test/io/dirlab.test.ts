import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIRLAB_CASES, dirLabGrid, readDirLabImage } from '../../src/io/dirlab.ts';
import { readLandmarks } from '../../src/io/landmarks.ts';
import { requireShared } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-dirlab-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Voxel value of the synthetic image, as a function of the 0-based index. */
const value = (i: number, j: number, k: number) => ((i + 3 * j + 7 * k) % 4000) - 1000;

test('readDirLabImage: raw int16 little-endian, i fastest, case1 geometry from the table', () => {
  const [nx, ny, nz] = [256, 256, 94];
  const bytes = Buffer.alloc(2 * nx * ny * nz);
  for (let k = 0, o = 0; k < nz; k++)
    for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, o += 2) bytes.writeInt16LE(value(i, j, k), o);
  const path = join(dir, 'case1_T00_s.img');
  writeFileSync(path, bytes);

  const image = readDirLabImage(path, 'case1');
  assert.deepEqual(
    [image.dims, image.spacing, image.origin],
    [
      [256, 256, 94],
      [0.97, 0.97, 2.5],
      [0, 0, 0],
    ],
  );
  assert.deepEqual(image.direction, [1, 0, 0, 0, 1, 0, 0, 0, -1]);
  for (const [i, j, k] of [
    [0, 0, 0],
    [255, 0, 0],
    [0, 255, 0],
    [17, 200, 93],
    [255, 255, 93],
  ]) {
    assert.equal(image.data[image.offset(i, j, k)], value(i, j, k), `voxel ${i},${j},${k}`);
  }
  // DIR-Lab landmark "x y z" (1-based) = voxel (x−1, y−1, z−1): (211, 139, 66) → LPS (203.7, 133.86, −162.5).
  const world = image.voxelToWorld([210, 138, 65]);
  [203.7, 133.86, -162.5].forEach((v, a) => assert.ok(Math.abs(world[a] - v) < 1e-9, `world ${world}`));

  const hu = readDirLabImage(path, 'Case1', { hounsfield: true });
  assert.equal(hu.data[hu.offset(17, 200, 93)], value(17, 200, 93) - 1024);
});

test('readDirLabImage: wrong file size and unknown case are one-line errors', () => {
  const path = join(dir, 'short.img');
  writeFileSync(path, Buffer.alloc(1000));
  assert.throws(() => readDirLabImage(path, 'copd1'), {
    name: 'DiffregError',
    message: `${path}: has 1000 bytes but copd1 (512x512x121 int16) needs 63438848`,
  });
  assert.throws(
    () => readDirLabImage(path, 'case11'),
    /caseId: unknown DIR-Lab case "case11" \(expected case1\.\.case10 or copd1\.\.copd10\)/,
  );
});

test('the built-in case table equals the shared cases.json files', (t) => {
  const dirlab = requireShared(t, 'data', 'lung', 'landmarks', 'dirlab-4dct', 'cases.json');
  const copd = requireShared(t, 'data', 'lung', 'landmarks', 'dirlab-copdgene', 'cases.json');
  if (!dirlab || !copd) return;
  const cases = {
    ...JSON.parse(readFileSync(dirlab, 'utf8')).cases,
    ...JSON.parse(readFileSync(copd, 'utf8')).cases,
  };
  assert.deepEqual(Object.keys(DIRLAB_CASES).sort(), Object.keys(cases).sort());
  for (const [id, entry] of Object.entries(cases) as [
    string,
    { dims_xyz: number[]; spacing_mm_xyz: number[] },
  ][]) {
    assert.deepEqual(DIRLAB_CASES[id].dims, entry.dims_xyz, id);
    assert.deepEqual(DIRLAB_CASES[id].spacing, entry.spacing_mm_xyz, id);
  }
});

test('orientation: with slices toward inferior, exhale landmarks move superior (+z LPS) in all 20 cases', (t) => {
  const root = requireShared(t, 'data', 'lung', 'landmarks');
  if (!root) return;
  const pairs: [string, string, string][] = [];
  for (let c = 1; c <= 10; c++) {
    pairs.push([`case${c}`, `dirlab-4dct/Case${c}_300_T00_xyz.txt`, `dirlab-4dct/Case${c}_300_T50_xyz.txt`]);
    pairs.push([
      `copd${c}`,
      `dirlab-copdgene/copd${c}_300_iBH_xyz_r1.txt`,
      `dirlab-copdgene/copd${c}_300_eBH_xyz_r1.txt`,
    ]);
  }
  for (const [id, inhale, exhale] of pairs) {
    const reference = dirLabGrid(id);
    const a = readLandmarks(join(root, inhale), { reference });
    const b = readLandmarks(join(root, exhale), { reference });
    let dz = 0;
    for (let p = 0; p < a.count; p++) dz += b.point(p)[2] - a.point(p)[2];
    assert.ok(dz / a.count > 0, `${id}: mean superior motion at exhale ${dz / a.count} mm`);
  }
});
