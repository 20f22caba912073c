/**
 * MetaImage, NRRD and DICOM through ITK (itk-wasm), plus our MetaImage writer. NRRD and DICOM files are
 * made by hand here, so the expected geometry follows from their specifications, not from ITK.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume, type Mat3, type Vec3 } from '../../src/geometry/volume.ts';
import { readItkImage } from '../../src/io/itk.ts';
import { writeMetaImage } from '../../src/io/metaimage.ts';
import { DiffregError } from '../../src/util/errors.ts';
import { requireShared } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-itk-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => join(dir, name);

test('shared lung masks (.mha, zlib-compressed): dims, spacing, offset and values as in the README', async (t) => {
  const fixedPath = requireShared(t, 'data', 'lung', 'ct-lung-masks', 'CT_3D_lung_fixed_mask.mha');
  const movingPath = requireShared(t, 'data', 'lung', 'ct-lung-masks', 'CT_3D_lung_moving_mask.mha');
  if (!fixedPath || !movingPath) return;
  assert.match(readFileSync(fixedPath, 'latin1').slice(0, 400), /CompressedData = True/);
  const fixed = await readItkImage(fixedPath, 'metaimage');
  assert.ok(fixed.data instanceof Uint8Array);
  assert.deepEqual(fixed.dims, [115, 157, 129]);
  assert.deepEqual(fixed.spacing, [1.366, 1.366, 2.5]);
  assert.deepEqual(fixed.origin, [-153.827, -150.352, -1434.5]);
  assert.deepEqual(fixed.direction, [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  assert.ok(fixed.data.every((v) => v === 0 || v === 1));
  assert.ok(fixed.data.some((v) => v === 1));
  const moving = await readItkImage(movingPath, 'metaimage');
  assert.deepEqual(
    [moving.dims, moving.origin],
    [
      [115, 166, 131],
      [-161.831, -162.449, -1399.5],
    ],
  );
});

/** A NRRD file written by hand: short voxels i·3 − 5, axis vectors given per axis (columns). */
function writeNrrd(path: string, space: string) {
  const header = [
    'NRRD0004',
    'type: short',
    'dimension: 3',
    `space: ${space}`,
    'sizes: 4 3 2',
    'space directions: (0,1.5,0) (-2,0,0) (0,0,2.5)',
    'kinds: domain domain domain',
    'endian: little',
    'encoding: raw',
    'space origin: (10,20,30)',
    '',
    '',
  ].join('\n');
  const data = Int16Array.from({ length: 24 }, (_, i) => i * 3 - 5);
  writeFileSync(path, Buffer.concat([Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]));
  return data;
}

test('NRRD: space directions are the axis columns; RAS space is converted to LPS', async () => {
  const data = writeNrrd(file('lps.nrrd'), 'left-posterior-superior');
  const lps = await readItkImage(file('lps.nrrd'), 'nrrd');
  // Axis 0 along +y (1.5 mm), axis 1 along −x (2 mm), axis 2 along +z: columns (0,1,0), (−1,0,0), (0,0,1).
  assert.deepEqual(lps.spacing, [1.5, 2, 2.5]);
  assert.deepEqual(lps.direction, [0, -1, 0, 1, 0, 0, 0, 0, 1]);
  assert.deepEqual(lps.origin, [10, 20, 30]);
  assert.deepEqual(Array.from(lps.data), Array.from(data));
  assert.deepEqual(lps.voxelToWorld([1, 1, 1]), [8, 21.5, 32.5]);

  writeNrrd(file('ras.nrrd'), 'right-anterior-superior');
  const ras = await readItkImage(file('ras.nrrd'), 'nrrd');
  // The same vectors in RAS: negate x and y of the origin and of every axis vector.
  assert.deepEqual(
    ras.origin.map((v) => v + 0),
    [-10, -20, 30],
  );
  assert.deepEqual(
    ras.direction.map((v) => v + 0),
    [0, 1, 0, -1, 0, 0, 0, 0, 1],
  );
});

test('MetaImage writer: .mha compressed, .mhd + raw; vector field and oblique direction survive ITK', async () => {
  const [c, s] = [Math.cos(0.3), Math.sin(0.3)];
  const field = new Volume({
    data: Float32Array.from({ length: 72 }, (_, i) => i * 0.5 - 3),
    dims: [4, 3, 2],
    components: 3,
    spacing: [1.5, 2, 2.5],
    origin: [10.25, -20.5, 30.125],
    direction: [c, -s, 0, s, c, 0, 0, 0, -1],
  });
  for (const [name, compress] of [
    ['field.mha', true],
    ['field.mhd', false],
    ['fieldz.mhd', true],
  ] as const) {
    writeMetaImage(file(name), field, { compress });
    const back = await readItkImage(file(name), 'metaimage');
    assert.equal(back.components, 3);
    assert.deepEqual(
      [back.dims, back.spacing, back.origin, back.direction],
      [field.dims, field.spacing, field.origin, field.direction],
    );
    assert.deepEqual(Array.from(back.data), Array.from(field.data), name);
  }
  // TransformMatrix is column by column: the first three numbers are axis 0's direction.
  const header = readFileSync(file('field.mhd'), 'latin1');
  assert.match(header, new RegExp(`TransformMatrix = ${c} ${s} 0 ${-s} ${c} 0 0 0 -1\\n`));
  assert.match(header, /ElementDataFile = field\.raw\n/);
});

test('4D MetaImage needs frame; components, frames and 2D images map onto Volume', async () => {
  const values = Int16Array.from({ length: 2 * 2 * 1 * 3 }, (_, i) => i);
  const header =
    'ObjectType = Image\nNDims = 4\nDimSize = 2 2 1 3\nElementSpacing = 1 2 3 1\nElementType = MET_SHORT\nElementDataFile = LOCAL\n';
  writeFileSync(file('cine.mha'), Buffer.concat([Buffer.from(header), Buffer.from(values.buffer)]));
  await assert.rejects(
    readItkImage(file('cine.mha'), 'metaimage'),
    /cine\.mha: 4D image with 3 time frames; pass frame \(0\.\.2\)/,
  );
  const frame = await readItkImage(file('cine.mha'), 'metaimage', { frame: 1 });
  assert.deepEqual(
    [Array.from(frame.data), frame.dims, frame.spacing],
    [
      [4, 5, 6, 7],
      [2, 2, 1],
      [1, 2, 3],
    ],
  );

  const flat =
    'ObjectType = Image\nNDims = 2\nDimSize = 3 2\nElementSpacing = 0.5 0.25\nOffset = 4 5\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n';
  writeFileSync(file('flat.mha'), Buffer.concat([Buffer.from(flat), Buffer.from([1, 2, 3, 4, 5, 6])]));
  const image2d = await readItkImage(file('flat.mha'), 'metaimage');
  assert.deepEqual(
    [image2d.dims, image2d.spacing, image2d.origin],
    [
      [3, 2, 1],
      [0.5, 0.25, 1],
      [4, 5, 0],
    ],
  );
});

test('corrupt and missing files: one-line DiffregError naming the file and ITK reason', async () => {
  const header =
    'ObjectType = Image\nNDims = 3\nDimSize = 10 10 10\nElementType = MET_SHORT\nElementDataFile = LOCAL\n';
  writeFileSync(file('cut.mha'), header + 'x'.repeat(50));
  await assert.rejects(readItkImage(file('cut.mha'), 'metaimage'), (e: Error) => {
    assert.ok(e instanceof DiffregError);
    assert.equal(
      e.message,
      `${file('cut.mha')}: cannot read MetaImage (MetaImage: M_ReadElementsData: data not read completely)`,
    );
    return true;
  });
  mkdirSync(file('empty-series'));
  await assert.rejects(
    readItkImage(file('empty-series'), 'dicom'),
    /empty-series: no DICOM files in this directory/,
  );
});

/** Explicit-VR little-endian DICOM element. */
function element(group: number, elem: number, vr: string, value: Buffer | string): Buffer {
  let body = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  if (body.length % 2) body = Buffer.concat([body, Buffer.from(vr === 'UI' ? '\0' : ' ', 'latin1')]);
  const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elem, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(body.length, 8);
  else head.writeUInt16LE(body.length, 6);
  return Buffer.concat([head, body]);
}

const us = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};

/** A minimal CT image file (Part 10: preamble, "DICM", file meta group, data set in tag order). */
function dicomSlice(p: {
  position: Vec3;
  instance: number;
  pixels: Int16Array;
  rows: number;
  columns: number;
  series?: number;
}): Buffer {
  const sopClass = '1.2.840.10008.5.1.4.1.1.2';
  const series = p.series ?? 200;
  const sopInstance = `1.2.826.0.1.3680043.2.1125.7.${series}.${p.instance}`;
  const meta = Buffer.concat([
    element(0x0002, 0x0001, 'OB', Buffer.from([0, 1])),
    element(0x0002, 0x0002, 'UI', sopClass),
    element(0x0002, 0x0003, 'UI', sopInstance),
    element(0x0002, 0x0010, 'UI', '1.2.840.10008.1.2.1'),
    element(0x0002, 0x0012, 'UI', '1.2.826.0.1.3680043.2.1125.7'),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(meta.length);
  const dataset = Buffer.concat([
    element(0x0008, 0x0016, 'UI', sopClass),
    element(0x0008, 0x0018, 'UI', sopInstance),
    element(0x0008, 0x0060, 'CS', 'CT'),
    element(0x0010, 0x0010, 'PN', 'Test^Phantom'),
    element(0x0010, 0x0020, 'LO', 'DIFFREG1'),
    element(0x0020, 0x000d, 'UI', '1.2.826.0.1.3680043.2.1125.7.100'),
    element(0x0020, 0x000e, 'UI', `1.2.826.0.1.3680043.2.1125.7.${series}`),
    element(0x0020, 0x0011, 'IS', '1'),
    element(0x0020, 0x0013, 'IS', String(p.instance)),
    element(0x0020, 0x0032, 'DS', p.position.join('\\')),
    element(0x0020, 0x0037, 'DS', '0\\1\\0\\0\\0\\-1'),
    element(0x0020, 0x0052, 'UI', '1.2.826.0.1.3680043.2.1125.7.300'),
    element(0x0028, 0x0002, 'US', us(1)),
    element(0x0028, 0x0004, 'CS', 'MONOCHROME2'),
    element(0x0028, 0x0010, 'US', us(p.rows)),
    element(0x0028, 0x0011, 'US', us(p.columns)),
    element(0x0028, 0x0030, 'DS', '0.8\\0.6'),
    element(0x0028, 0x0100, 'US', us(16)),
    element(0x0028, 0x0101, 'US', us(16)),
    element(0x0028, 0x0102, 'US', us(15)),
    element(0x0028, 0x0103, 'US', us(1)),
    element(0x0028, 0x1052, 'DS', '-1024'),
    element(0x0028, 0x1053, 'DS', '1'),
    element(0x7fe0, 0x0010, 'OW', Buffer.from(p.pixels.buffer)),
  ]);
  return Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM', 'latin1'),
    element(0x0002, 0x0000, 'UL', groupLength),
    meta,
    dataset,
  ]);
}

test('DICOM series directory (sagittal, files in shuffled order): every voxel lands at its DICOM position', async () => {
  // Image Orientation (Patient): rows run along +y, columns along −z; normal = row × column = −x.
  // Pixel Spacing 0.8\0.6 = (between rows, between columns). Slices at x = 10, 12.5, 15.
  const [rows, columns] = [4, 5];
  const row: Vec3 = [0, 1, 0];
  const column: Vec3 = [0, 0, -1];
  const series = file('series');
  mkdirSync(series);
  writeFileSync(join(series, 'README.txt'), 'not DICOM: skipped by the reader');
  const slices = [10, 12.5, 15].map((x, s) => ({ position: [x, -20, 50] as Vec3, stored: s }));
  const storedValue = (s: number, i: number, j: number) => 1024 + s * 100 + j * 10 + i;
  for (const [order, slice] of [2, 0, 1].map((s) => slices[s]).entries()) {
    const pixels = Int16Array.from({ length: rows * columns }, (_, p) =>
      storedValue(slice.stored, p % columns, Math.floor(p / columns)),
    );
    const bytes = dicomSlice({ position: slice.position, instance: 3 - slice.stored, pixels, rows, columns });
    writeFileSync(join(series, `img${order}`), bytes);
  }
  const volume = await readItkImage(series, 'dicom');
  assert.deepEqual(volume.dims, [columns, rows, 3]);
  volume.spacing.forEach((v, a) =>
    assert.ok(Math.abs(v - [0.6, 0.8, 2.5][a]) < 1e-6, `spacing ${volume.spacing}`),
  );
  const expected: Mat3 = [0, 0, -1, 1, 0, 0, 0, -1, 0]; // columns: row, column, normal (slices sorted along it)
  volume.direction.forEach((v, i) =>
    assert.ok(Math.abs(v - expected[i]) < 1e-6, `direction ${volume.direction}`),
  );
  for (const slice of slices) {
    for (let j = 0; j < rows; j++) {
      for (let i = 0; i < columns; i++) {
        const world = [0, 1, 2].map(
          (a) => slice.position[a] + i * 0.6 * row[a] + j * 0.8 * column[a],
        ) as Vec3;
        const index = volume.worldToVoxel(world);
        index.forEach((v) => assert.ok(Math.abs(v - Math.round(v)) < 1e-6, `index ${index}`));
        const [a, b, k] = index.map(Math.round);
        assert.equal(volume.data[volume.offset(a, b, k)], storedValue(slice.stored, i, j) - 1024);
      }
    }
  }
});

test('a directory with two DICOM series is refused instead of silently reading one', async () => {
  const mixed = file('mixed');
  mkdirSync(mixed);
  const pixels = new Int16Array(4);
  for (const [series, count] of [
    [201, 3],
    [202, 2],
  ]) {
    for (let s = 0; s < count; s++) {
      const bytes = dicomSlice({
        position: [s * 2, 0, 0],
        instance: s + 1,
        pixels,
        rows: 2,
        columns: 2,
        series,
      });
      writeFileSync(join(mixed, `${series}-${s}.dcm`), bytes);
    }
  }
  // Which of the two series GDCM reads is its choice; either way the other one is not dropped silently.
  await assert.rejects(
    readItkImage(mixed, 'dicom'),
    /mixed: holds 5 DICOM files but one series uses only [23]; keep one series per directory$/,
  );
});
