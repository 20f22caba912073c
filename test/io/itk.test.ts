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
    /cine\.mha: 4D image with 3 time frames; choose one \(0\.\.2\)/,
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

test('corrupt and missing files: one-line DiffregError naming the file and the reason', async () => {
  const header =
    'ObjectType = Image\nNDims = 3\nDimSize = 10 10 10\nElementType = MET_SHORT\nElementDataFile = LOCAL\n';
  writeFileSync(file('cut.mha'), header + 'x'.repeat(50));
  await assert.rejects(readItkImage(file('cut.mha'), 'metaimage'), (e: Error) => {
    assert.ok(e instanceof DiffregError);
    assert.equal(e.message, `${file('cut.mha')}: truncated: voxel data need 2000 bytes, the file has 50`);
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

/** Runs `body` with the working directory set to `folder`, restoring it afterwards. */
async function inFolder<T>(folder: string, body: () => Promise<T>): Promise<T> {
  const saved = process.cwd();
  process.chdir(folder);
  try {
    return await body();
  } finally {
    process.chdir(saved);
  }
}

/**
 * A sagittal series (dicomSlice's orientation: slice normal −x) with slice k at x = xs[k], written as
 * `<folder>/s<k>.dcm`; returns the stored pixels of each slice. `cut` drops bytes from slice 1's end.
 */
function writeSeries(folder: string, xs: number[], options: { cut?: number } = {}): Int16Array[] {
  mkdirSync(folder, { recursive: true });
  return xs.map((x, k) => {
    const pixels = Int16Array.from({ length: 6 }, (_, i) => 1024 + 100 * k + i);
    let bytes = dicomSlice({ position: [x, 0, 0], instance: k + 1, pixels, rows: 2, columns: 3 });
    if (options.cut !== undefined && k === 1) bytes = bytes.subarray(0, bytes.length - options.cut);
    writeFileSync(join(folder, `s${k}.dcm`), bytes);
    return pixels;
  });
}

test('relative paths: MetaImage, NRRD, a DICOM file and a DICOM series read from their own folder', async () => {
  const folder = file('relative');
  mkdirSync(join(folder, 'sub'), { recursive: true });
  const volume = new Volume({ data: Int16Array.from({ length: 24 }, (_, i) => i - 7), dims: [4, 3, 2] });
  writeMetaImage(join(folder, 'img.mha'), volume);
  writeMetaImage(join(folder, 'sub', 'img.mhd'), volume, { compress: false });
  const nrrd = writeNrrd(join(folder, 'img.nrrd'), 'left-posterior-superior');
  const slices = writeSeries(join(folder, 'series'), [0, 2, 4]);
  await inFolder(folder, async () => {
    for (const path of ['img.mha', './img.mha', 'sub/img.mhd', 'sub/../img.mha']) {
      assert.deepEqual(
        Array.from((await readItkImage(path, 'metaimage')).data),
        Array.from(volume.data),
        path,
      );
    }
    assert.deepEqual(Array.from((await readItkImage('img.nrrd', 'nrrd')).data), Array.from(nrrd));
    const one = await readItkImage('series/s1.dcm', 'dicom');
    assert.deepEqual(
      Array.from(one.data),
      Array.from(slices[1], (v) => v - 1024),
    );
    for (const path of ['series', './series', 'series/']) {
      const series = await readItkImage(path, 'dicom');
      assert.deepEqual(series.dims, [3, 2, 3], path);
      // Sorted along the normal −x: the slice at the largest x comes first.
      const expected = [...slices].reverse().flatMap((s) => Array.from(s, (v) => v - 1024));
      assert.deepEqual(Array.from(series.data), expected, path);
    }
  });
});

test('compressed MetaImage cut at 60 % or corrupted: one-line error instead of zero-filled voxels', async () => {
  const volume = new Volume({
    data: Int16Array.from({ length: 32768 }, (_, i) => (i * 7919) % 3001),
    dims: [32, 32, 32],
  });
  writeMetaImage(file('whole.mha'), volume);
  const bytes = readFileSync(file('whole.mha'));
  const start = bytes.indexOf('ElementDataFile = LOCAL\n') + 'ElementDataFile = LOCAL\n'.length;
  const payload = bytes.length - start;
  writeFileSync(file('cut60.mha'), bytes.subarray(0, start + Math.round(0.6 * payload)));
  const corrupt = Buffer.from(bytes);
  for (let i = start + 20; i < corrupt.length; i += 5) corrupt[i] ^= 0x5a;
  writeFileSync(file('corrupt.mha'), corrupt);
  for (const name of ['cut60.mha', 'corrupt.mha']) {
    await assert.rejects(readItkImage(file(name), 'metaimage'), (e: Error) => {
      assert.ok(e instanceof DiffregError, `${name}: ${e.stack}`);
      assert.match(
        e.message,
        new RegExp(`^${file(name)}: corrupt or truncated compressed data \\([^\\n]+\\)$`),
      );
      return true;
    });
  }
});

/** A MetaImage header with the given fields over 4x4x4 short voxels. */
function metaHeader(fields: Record<string, string>): string {
  const all: Record<string, string> = {
    ObjectType: 'Image',
    NDims: '3',
    DimSize: '4 4 4',
    ElementSpacing: '1 1 1',
    ElementType: 'MET_SHORT',
    ...fields,
  };
  const data = all.ElementDataFile ?? 'LOCAL';
  delete all.ElementDataFile;
  return (
    Object.entries(all)
      .map(([k, v]) => `${k} = ${v}\n`)
      .join('') + `ElementDataFile = ${data}\n`
  );
}

test('bad MetaImage headers and data: the message names the field or what is missing', async () => {
  const voxels = Buffer.alloc(128, 1);
  const cases: [string, Record<string, string>, Buffer, string][] = [
    ['zero.mha', { ElementSpacing: '0 1 1' }, voxels, 'ElementSpacing "0 1 1": expected 3 positive numbers'],
    [
      'singular.mha',
      { TransformMatrix: '1 0 0 1 0 0 0 0 1' },
      voxels,
      'TransformMatrix "1 0 0 1 0 0 0 0 1": the direction matrix is singular',
    ],
    ['nanoffset.mha', { Offset: '0 nan 0' }, voxels, 'Offset "0 nan 0": expected 3 finite numbers'],
    ['dims.mha', { DimSize: '4 -4 4' }, voxels, 'DimSize "4 -4 4": expected 3 positive integers'],
    [
      'type.mha',
      { ElementType: 'MET_FOO' },
      voxels,
      'unknown ElementType "MET_FOO" (expected one of MET_CHAR, MET_UCHAR, MET_SHORT, MET_USHORT, MET_INT, MET_UINT, MET_LONG, MET_ULONG, MET_LONG_LONG, MET_ULONG_LONG, MET_FLOAT, MET_DOUBLE)',
    ],
    ['short.mha', {}, voxels.subarray(0, 100), 'truncated: voxel data need 128 bytes, the file has 100'],
    [
      'huge.mha',
      { DimSize: '100000 100000 1000' },
      voxels,
      'truncated: voxel data need 20000000000000 bytes, the file has 128',
    ],
    [
      'nodata.mhd',
      { ElementDataFile: 'nodata.raw' },
      Buffer.alloc(0),
      'data file nodata.raw (ElementDataFile) not found',
    ],
  ];
  for (const [name, fields, data, message] of cases) {
    writeFileSync(file(name), Buffer.concat([Buffer.from(metaHeader(fields), 'latin1'), data]));
    await assert.rejects(readItkImage(file(name), 'metaimage'), (e: Error) => {
      assert.ok(e instanceof DiffregError, `${name}: ${e.stack}`);
      assert.equal(e.message, `${file(name)}: ${message}`);
      return true;
    });
  }
});

test('DICOM series with a missing slice, uneven positions or truncated pixel data is refused', async () => {
  writeSeries(file('gap'), [0, 8, 16, 32, 40]);
  await assert.rejects(readItkImage(file('gap'), 'dicom'), {
    name: 'DiffregError',
    message: `${file('gap')}: slice positions are not evenly spaced: 16 mm between s3.dcm and s2.dcm, 8 mm between the other slices (a missing or duplicate slice?)`,
  });
  writeSeries(file('uneven'), [0, 2, 4.5, 6.5]);
  await assert.rejects(
    readItkImage(file('uneven'), 'dicom'),
    /uneven: slice positions are not evenly spaced: 2\.5 mm between s2\.dcm and s1\.dcm, 2 mm/,
  );
  // Within the tolerance (max(1e-3 × gap, 0.02 mm)): a 0.625 mm series printed with two decimals.
  writeSeries(file('rounded'), [0, 0.63, 1.25, 1.88]);
  const even = await readItkImage(file('rounded'), 'dicom');
  assert.deepEqual(even.dims, [3, 2, 4]);
  writeSeries(file('cut'), [0, 2, 4], { cut: 4 });
  await assert.rejects(readItkImage(file('cut'), 'dicom'), {
    name: 'DiffregError',
    message: `${join(file('cut'), 's1.dcm')}: truncated pixel data: 8 of the 12 bytes Rows × Columns × BitsAllocated need`,
  });
  await assert.rejects(
    readItkImage(join(file('cut'), 's1.dcm'), 'dicom'),
    /s1\.dcm: truncated pixel data: 8 of the 12 bytes/,
  );
});
