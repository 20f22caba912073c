import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../src/geometry/volume.ts';
import { detectVolumeFormat, readVolume, writeVolume } from '../../src/io/volume-io.ts';
import { encodeNifti } from '../../src/io/nifti.ts';
import { requireShared } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-volume-io-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => join(dir, name);

const sample = () =>
  new Volume({
    data: Int16Array.from({ length: 60 }, (_, i) => i * 11 - 300),
    dims: [5, 4, 3],
    spacing: [0.75, 0.75, 2],
    origin: [-12, 34.5, -56],
    direction: [1, 0, 0, 0, 0, 1, 0, -1, 0],
  });

test('writeVolume/readVolume: .nii, .nii.gz, .mha, .mhd round trips through the one entry point', async () => {
  const volume = sample();
  for (const name of ['a.nii', 'a.nii.gz', 'a.mha', 'a.mhd']) {
    await writeVolume(file(name), volume);
    const back = await readVolume(file(name));
    assert.deepEqual(
      [back.dims, back.spacing, back.origin, back.direction],
      [volume.dims, volume.spacing, volume.origin, volume.direction],
      name,
    );
    assert.deepEqual(Array.from(back.data), Array.from(volume.data), name);
    assert.ok(back.data instanceof Int16Array, name);
  }
});

test('format detection by extension; a directory is a DICOM series', () => {
  mkdirSync(file('series'));
  const expected: [string, string][] = [
    ['x.nii.gz', 'nifti'],
    ['X.NII', 'nifti'],
    ['x.hdr', 'nifti'],
    ['x.mhd', 'metaimage'],
    ['x.nhdr', 'nrrd'],
    ['x.dcm', 'dicom'],
    ['X.PNG', 'png'],
    [file('series'), 'dicom'],
  ];
  for (const [path, format] of expected) assert.equal(detectVolumeFormat(path), format, path);
  assert.equal(detectVolumeFormat('case1_T00.img', 'case1'), 'dirlab');
  assert.throws(
    () => detectVolumeFormat('case1_T00.img'),
    /case1_T00\.img: raw \.img without a \.hdr header \(a DIR-Lab \.img is read with its case, e\.g\. case1\)$/,
  );
  assert.throws(
    () => detectVolumeFormat('x.tif'),
    /x\.tif: unknown image extension \(expected \.nii, \.nii\.gz, \.hdr\/\.img, \.mha, \.mhd, \.nrrd, \.nhdr, \.dcm, \.png or a DICOM series folder\)$/,
  );
});

test('ANALYZE-style .hdr/.img pair ("ni1", data at vox_offset 0) reads from either name', async () => {
  const volume = sample();
  const single = encodeNifti(volume);
  const header = Buffer.from(single.subarray(0, 348));
  header.writeFloatLE(0, 108); // vox_offset 0 in the .img
  header.write('ni1\0', 344, 'latin1');
  writeFileSync(file('pair.hdr'), header);
  writeFileSync(file('pair.img'), single.subarray(352));
  for (const name of ['pair.hdr', 'pair.img']) {
    const back = await readVolume(file(name));
    assert.deepEqual(Array.from(back.data), Array.from(volume.data), name);
    assert.deepEqual(back.origin, volume.origin, name);
  }
});

test('DIR-Lab raw .img through readVolume with dirLabCase', async () => {
  const bytes = Buffer.alloc(2 * 512 * 512 * 102);
  bytes.writeInt16LE(-1234, 2 * (7 + 512 * (8 + 512 * 9)));
  writeFileSync(file('copd2_iBHCT.img'), bytes);
  const ct = await readVolume(file('copd2_iBHCT.img'), { dirLabCase: 'copd2' });
  assert.deepEqual(
    [ct.dims, ct.spacing],
    [
      [512, 512, 102],
      [0.645, 0.645, 2.5],
    ],
  );
  assert.equal(ct.data[ct.offset(7, 8, 9)], -1234);
  await assert.rejects(
    readVolume(file('copd2_iBHCT.img'), { format: 'dirlab' }),
    /format dirlab needs dirLabCase/,
  );
});

test('bad input through readVolume/writeVolume: missing file, grid mismatch, unsupported extension', async () => {
  await assert.rejects(readVolume(file('none.nii.gz')), {
    name: 'DiffregError',
    message: `${file('none.nii.gz')}: file not found`,
  });
  const volume = sample();
  await writeVolume(file('grid.nii'), volume);
  const other = new Volume({
    data: new Uint8Array(60),
    dims: [5, 4, 3],
    spacing: [0.75, 0.75, 2.5],
    origin: volume.origin,
    direction: volume.direction,
  });
  await assert.rejects(readVolume(file('grid.nii'), { matchGrid: other }), {
    message: `${file('grid.nii')}: grid mismatch with the reference image: spacing 0.75 0.75 2 vs 0.75 0.75 2.5`,
  });
  assert.ok((await readVolume(file('grid.nii'), { matchGrid: volume })).sameGrid(volume));
  await assert.rejects(
    writeVolume(file('out.tif'), volume),
    /out\.tif: cannot write this extension; use \.nii, \.nii\.gz, \.mha, \.mhd or \.png/,
  );
  await assert.rejects(writeVolume(file('out.nii'), {} as Volume), /volume: expected a Volume/);
});

test('the shared lung masks do not share a grid: readVolume names the difference', async (t) => {
  const fixed = requireShared(t, 'data', 'lung', 'ct-lung-masks', 'CT_3D_lung_fixed_mask.mha');
  const moving = requireShared(t, 'data', 'lung', 'ct-lung-masks', 'CT_3D_lung_moving_mask.mha');
  if (!fixed || !moving) return;
  const reference = await readVolume(fixed);
  await assert.rejects(readVolume(moving, { matchGrid: reference }), {
    message: `${moving}: grid mismatch with the reference image: dims 115x166x131 vs 115x157x129`,
  });
});
