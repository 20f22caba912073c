/**
 * The PNG reader: files from util/png.ts's encoder, hand-filtered bytes for each filter type, bit
 * depth and colour type (filtered rows computed on paper from the PNG specification's predictors),
 * the volume's geometry through readVolume, the 8-bit writer, and one-line errors for what is refused.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { Volume } from '../../src/geometry/index.ts';
import { readVolume, writeVolume } from '../../src/io/index.ts';
import { readPng } from '../../src/io/png.ts';
import { DiffregError } from '../../src/util/errors.ts';
import { encodePng } from '../../src/util/png.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-png-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => join(dir, name);

/** A chunk: big-endian length, type, data, CRC-32 of type and data. */
function pngChunk(type: string, data: number[] | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), Buffer.from(data)]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length - 4);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([length, body, crc]);
}

interface Made {
  width: number;
  height: number;
  bitDepth: number;
  colourType: number;
  /** Filtered scanlines, each starting with its filter type byte. */
  rows: number[][];
  interlace?: number;
}

function makePng(m: Made): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(m.width, 0);
  ihdr.writeUInt32BE(m.height, 4);
  ihdr[8] = m.bitDepth;
  ihdr[9] = m.colourType;
  ihdr[12] = m.interlace ?? 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.from(m.rows.flat()))),
    pngChunk('IEND', []),
  ]);
}

function read(name: string, m: Made): Volume {
  writeFileSync(file(name), makePng(m));
  return readPng(file(name));
}

const values = (v: Volume) => Array.from(v.data);

test('util/png.ts files read back pixel for pixel: grey as stored, RGB as its BT.601 luma', async () => {
  const width = 5;
  const height = 3;
  const grey = Uint8Array.from({ length: width * height }, (_, i) => (i * 37 + 11) % 256);
  writeFileSync(file('grey.png'), encodePng(width, height, grey, 1));
  const volume = await readVolume(file('grey.png'));
  assert.deepEqual(volume.dims, [5, 3, 1]);
  assert.deepEqual(volume.spacing, [1, 1, 1]);
  assert.deepEqual(volume.origin, [0, 0, 0]);
  assert.deepEqual(volume.direction, [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  assert.ok(volume.data instanceof Uint8Array);
  // Column x, row y is voxel (x, y, 0): offset x + width·y, the encoder's row-major order.
  assert.deepEqual(values(volume), Array.from(grey));

  const rgb = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 53 + 7) % 256);
  writeFileSync(file('rgb.png'), encodePng(width, height, rgb, 3));
  const colour = await readVolume(file('rgb.png'));
  for (let p = 0; p < width * height; p++) {
    const expected = 0.299 * rgb[3 * p] + 0.587 * rgb[3 * p + 1] + 0.114 * rgb[3 * p + 2];
    assert.ok(Math.abs(colour.data[p] - expected) < 1e-4, `pixel ${p}: ${colour.data[p]} vs ${expected}`);
  }
});

test('8-bit grey: each of the five filter types on every row', () => {
  // The image [[200, 10, 30], [15, 220, 40], [0, 255, 128]] filtered by hand with each filter type.
  const image = [200, 10, 30, 15, 220, 40, 0, 255, 128];
  const filtered: number[][][] = [
    [[0, 200, 10, 30], [0, 15, 220, 40], [0, 0, 255, 128]],
    [[1, 200, 66, 20], [1, 15, 205, 76], [1, 0, 255, 129]],
    [[2, 200, 10, 30], [2, 71, 210, 10], [2, 241, 35, 88]],
    [[3, 200, 166, 25], [3, 171, 208, 171], [3, 249, 145, 237]],
    [[4, 200, 66, 20], [4, 71, 210, 76], [4, 241, 35, 88]],
  ]; // prettier-ignore
  filtered.forEach((rows, filter) => {
    const v = read(`filter${filter}.png`, { width: 3, height: 3, bitDepth: 8, colourType: 0, rows });
    assert.deepEqual(values(v), image, `filter ${filter}`);
  });
  // Paeth's tie rule: at pixel (1, 1) left 14, up 2, upper-left 10 give p = 6, equally near up and
  // upper-left (4), nearer than left (8): up wins, 50 − 2 = 48.
  const tie = read('paeth-tie.png', {
    width: 2,
    height: 2,
    bitDepth: 8,
    colourType: 0,
    rows: [
      [0, 10, 2],
      [4, 4, 48],
    ],
  });
  assert.deepEqual(values(tie), [10, 2, 14, 50]);
});

/** BT.601 luma of one RGB pixel. */
const luma = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;

test('16-bit grey, grey + alpha, RGB and 16-bit RGBA with mixed filters', () => {
  // [name, bit depth, colour type, width, height, filtered rows, expected pixel values]
  const cases: [string, number, number, number, number, number[][], number[]][] = [
    // 16-bit grey [[1000, 65535], [300, 258]], rows Sub and Paeth (2 bytes per pixel, big-endian).
    ['g16', 16, 0, 2, 2, [[1, 3, 232, 252, 23], [4, 254, 68, 2, 214]], [1000, 65535, 300, 258]],
    // Grey + alpha [[(50, 255), (60, 128)], [(70, 0), (90, 255)]], rows Average and Up: alpha dropped.
    ['ga', 8, 4, 2, 2, [[3, 50, 255, 35, 1], [2, 20, 1, 30, 127]], [50, 60, 70, 90]],
    // RGB [[red, green], [blue, (10, 20, 30)]], rows Paeth and Average.
    ['rgb', 8, 2, 2, 2, [[4, 255, 0, 0, 1, 255, 0], [3, 129, 0, 255, 10, 149, 159]],
      [luma(255, 0, 0), luma(0, 255, 0), luma(0, 0, 255), luma(10, 20, 30)]],
    // 16-bit RGBA, one pixel per row: (1000, 2000, 3000, 65535) and (4000, 5000, 6000, 0), Up and Paeth.
    ['rgba16', 16, 6, 1, 2, [[2, 3, 232, 7, 208, 11, 184, 255, 255], [4, 12, 184, 12, 184, 12, 184, 1, 1]],
      [luma(1000, 2000, 3000), luma(4000, 5000, 6000)]],
  ]; // prettier-ignore
  for (const [name, bitDepth, colourType, width, height, rows, expected] of cases) {
    const v = read(`${name}.png`, { width, height, bitDepth, colourType, rows });
    assert.deepEqual(v.dims, [width, height, 1], name);
    expected.forEach((e, p) =>
      assert.ok(Math.abs(v.data[p] - e) < 1e-3, `${name} pixel ${p}: ${v.data[p]} vs ${e}`),
    );
  }
  // Grey keeps its integer type.
  assert.ok(
    read('g16.png', { width: 1, height: 1, bitDepth: 16, colourType: 0, rows: [[0, 1, 2]] }).data instanceof
      Uint16Array,
  );
});

test('writeVolume .png: a slice of 0–255 round-trips; other volumes are refused in one line', async () => {
  const slice = new Volume({ data: Float32Array.from([0, 12.4, 254.6, 255, 100, 7]), dims: [3, 2, 1] });
  await writeVolume(file('out.png'), slice);
  assert.deepEqual(values(await readVolume(file('out.png'))), [0, 12, 255, 255, 100, 7]);
  const stack = new Volume({ data: new Float32Array(12), dims: [3, 2, 2] });
  await assert.rejects(
    writeVolume(file('stack.png'), stack),
    /stack\.png: a PNG holds one 2-D grey image, not 3x2x2/,
  );
  const bright = new Volume({ data: Float32Array.from([0, 4095]), dims: [2, 1, 1] });
  await assert.rejects(
    writeVolume(file('bright.png'), bright),
    /bright\.png: values 0–4095 do not fit an 8-bit PNG \(0–255\); use \.nii or \.nii\.gz$/,
  );
});

test('refused PNGs: one line naming the file and the problem', () => {
  const base: Made = { width: 1, height: 1, bitDepth: 8, colourType: 0, rows: [[0, 7]] };
  const oneLine = (name: string, bytes: Buffer, pattern: RegExp) => {
    writeFileSync(file(name), bytes);
    assert.throws(
      () => readPng(file(name)),
      (e: unknown) =>
        e instanceof DiffregError &&
        !e.message.includes('\n') &&
        e.message.startsWith(file(name)) &&
        pattern.test(e.message),
    );
  };
  oneLine('interlaced.png', makePng({ ...base, interlace: 1 }), /interlaced \(Adam7\) PNG is not supported/);
  oneLine('palette.png', makePng({ ...base, colourType: 3 }), /colour type palette \(indexed colour\)/);
  oneLine('4bit.png', makePng({ ...base, bitDepth: 4 }), /bit depth 4 is not supported \(8 or 16\)/);
  oneLine('filter5.png', makePng({ ...base, rows: [[5, 7]] }), /row 0 has unknown PNG filter type 5/);
  oneLine('short.png', makePng({ ...base, width: 2 }), /image data hold 2 bytes, the header needs 3/);
  oneLine('text.png', Buffer.from('not a png at all'), /not a PNG file \(bad signature\)/);
  const good = makePng(base);
  const corrupt = Buffer.from(good);
  corrupt[20] ^= 1; // inside IHDR's data
  oneLine('crc.png', corrupt, /PNG chunk IHDR is corrupt \(CRC mismatch\)/);
  oneLine('truncated.png', good.subarray(0, good.length - 12), /PNG without an IEND chunk/);
});
